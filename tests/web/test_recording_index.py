"""The recordings index stays true to the disk: what appears, disappears, grows or is noted
between two listings is seen by the second, whatever the directories' mtimes say."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from reconciler.core.recording_names import RecordingNames
from reconciler.daemon.metrics import Metrics
from reconciler.web.recording_index import RACY_SECONDS, RecordingIndex, Recordings

NAMES = RecordingNames({"support": "support/{date}/{uuid}.wav"}, "acme.example.com")
KEY = ("acme.example.com", (("support", "support/{date}/{uuid}.wav"),))
EXT_NAMES = NAMES  # the extension layout is always read
UUID_A = "aaaaaaaa-0000-4000-8000-000000000000"
UUID_B = "bbbbbbbb-0000-4000-8000-000000000000"


def _day(root: Path) -> Path:
    day = root / "acme" / "support" / "2026-12-01"
    day.mkdir(parents=True, exist_ok=True)
    return day


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look modified ``seconds`` ago (a settled directory or file)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _paths(found: Recordings) -> list[str]:
    return [r.name.path for r in found.newest_first]


def test_a_new_file_and_a_deleted_one_are_seen_at_the_next_listing(tmp_path: Path) -> None:
    day = _day(tmp_path)
    (day / f"{UUID_A}.wav").write_bytes(b"RIFF" + bytes(60))
    index = RecordingIndex(tmp_path)
    assert _paths(index.read("acme", NAMES, KEY)) == [f"support/2026-12-01/{UUID_A}.wav"]
    (day / f"{UUID_B}.wav").write_bytes(b"RIFF" + bytes(60))
    assert len(index.read("acme", NAMES, KEY).newest_first) == 2
    (day / f"{UUID_A}.wav").unlink()
    assert _paths(index.read("acme", NAMES, KEY)) == [f"support/2026-12-01/{UUID_B}.wav"]


def test_a_change_within_the_directorys_clock_tick_is_not_missed(tmp_path: Path) -> None:
    """A file added without moving the directory's mtime (same tick): a directory modified
    just before it was listed is listed again."""
    day = _day(tmp_path)
    (day / f"{UUID_A}.wav").write_bytes(b"RIFF")
    index = RecordingIndex(tmp_path)
    index.read("acme", NAMES, KEY)
    stamp = os.stat(day).st_mtime_ns
    (day / f"{UUID_B}.wav").write_bytes(b"RIFF")
    os.utime(day, ns=(stamp, stamp))
    assert len(index.read("acme", NAMES, KEY).newest_first) == 2


def test_a_settled_directory_is_trusted_and_a_moved_mtime_is_listed_again(tmp_path: Path) -> None:
    day = _day(tmp_path)
    (day / f"{UUID_A}.wav").write_bytes(b"RIFF")
    for path in (day / f"{UUID_A}.wav", day, day.parent, day.parent.parent):
        _age(path, 3600)
    index = RecordingIndex(tmp_path)
    first = index.read("acme", NAMES, KEY)
    assert index.read("acme", NAMES, KEY) is first  # nothing moved: the same listing
    (day / f"{UUID_B}.wav").write_bytes(b"RIFF")
    assert len(index.read("acme", NAMES, KEY).newest_first) == 2


def test_a_recording_still_being_written_shows_its_current_size(tmp_path: Path) -> None:
    day = _day(tmp_path)
    growing = day / f"{UUID_A}.wav"
    growing.write_bytes(b"RIFF")
    index = RecordingIndex(tmp_path)
    index.read("acme", NAMES, KEY)
    _age(day, RACY_SECONDS + 60)  # the directory is settled; only the file moves
    index.read("acme", NAMES, KEY)
    with growing.open("ab") as out:
        out.write(bytes(8000))
    assert index.read("acme", NAMES, KEY).newest_first[0].size == 8004


def test_a_note_names_the_agent_and_a_new_template_reads_paths_again(tmp_path: Path) -> None:
    day = _day(tmp_path)
    (day / f"{UUID_A}.wav").write_bytes(b"RIFF")
    index = RecordingIndex(tmp_path)
    assert index.read("acme", NAMES, KEY).newest_first[0].name.agent is None
    notes = tmp_path / "acme" / ".answered"
    notes.mkdir()
    (notes / f"{UUID_A}.rita").write_text("{}")
    found = index.read("acme", NAMES, KEY)
    assert found.newest_first[0].name.agent == "rita"
    assert [r.name.path for r in found.by_call[UUID_A]] == [f"support/2026-12-01/{UUID_A}.wav"]
    other = RecordingNames({"sales": "sales/{uuid}.wav"}, "acme.example.com")
    assert _paths(index.read("acme", other, ("acme.example.com", "sales"))) == []


def test_links_and_hidden_files_are_never_listed(tmp_path: Path) -> None:
    day = _day(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "2026-12-01"
    elsewhere.mkdir(parents=True)
    (elsewhere / f"{UUID_B}.wav").write_bytes(b"RIFF")
    (tmp_path / "acme" / "sales").symlink_to(tmp_path / "elsewhere")
    (day / f"{UUID_B}.wav").symlink_to(elsewhere / f"{UUID_B}.wav")
    (day / f".{UUID_A}.wav").write_bytes(b"RIFF")
    index = RecordingIndex(tmp_path)
    assert _paths(index.read("acme", NAMES, KEY)) == []


def test_a_directory_replaced_by_a_link_drops_its_recordings(tmp_path: Path) -> None:
    day = _day(tmp_path)
    (day / f"{UUID_A}.wav").write_bytes(b"RIFF")
    index = RecordingIndex(tmp_path)
    assert len(index.read("acme", NAMES, KEY).newest_first) == 1
    moved = tmp_path / "moved"
    day.rename(moved)
    day.symlink_to(moved)
    assert _paths(index.read("acme", NAMES, KEY)) == []


def test_a_tenant_directory_that_is_a_link_or_missing(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path)
    assert index.read("acme", NAMES, KEY).problem is None
    (tmp_path / "real").mkdir()
    (tmp_path / "acme").symlink_to(tmp_path / "real")
    assert "link" in (index.read("acme", NAMES, KEY).problem or "")


def _view(found: Recordings) -> list[tuple[str, str | None, int]]:
    return [(r.name.path, r.name.agent, r.size) for r in found.newest_first]


def test_changes_applied_one_by_one_equal_a_fresh_listing_and_filters_agree(
    tmp_path: Path,
) -> None:
    """Inserted and removed in place (not sorted again), the index holds what a new index
    of the same disk holds, under every filter and for a person's allowed keys."""
    rng = random.Random(19)
    base = tmp_path / "acme"
    notes = base / ".answered"
    notes.mkdir(parents=True)
    index = RecordingIndex(tmp_path)
    uuids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(40)]
    for step in range(120):
        uuid = rng.choice(uuids)
        day = f"2026-12-{rng.randint(1, 3):02d}"
        target = rng.choice(
            [
                base / "support" / day / f"{uuid}.wav",
                base / "extensions" / rng.choice(["1001", "1002"]) / day / f"{uuid}.in.wav",
            ]
        )
        action = rng.random()
        if action < 0.5:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes(rng.randint(1, 99)))
            then = 1_700_000_000 + step
            os.utime(target, (then, then))
        elif action < 0.7 and target.exists():
            target.unlink()
        elif action < 0.85:
            (notes / f"{uuid}.{rng.choice(['rita', 'sam'])}").write_text("")
        else:
            for note in notes.glob(f"{uuid}.*"):
                note.unlink()
        found = index.read("acme", EXT_NAMES, KEY)
        fresh = RecordingIndex(tmp_path).read("acme", EXT_NAMES, KEY)
        assert _view(found) == _view(fresh)
        for chosen in (
            {"date": day},
            {"queue": "support"},
            {"agent": "rita"},
            {"extension": "1001", "date": day},
        ):
            expected = [r.name.path for r in fresh.newest_first if r.matches(chosen)]
            assert [r.name.path for r in found.select(chosen)] == expected
        allowed = [("extension", "1002"), ("agent", "sam")]
        expected = [
            r.name.path
            for r in fresh.newest_first
            if r.name.extension == "1002" or r.name.agent == "sam"
        ]
        assert [r.name.path for r in found.select({}, allowed)] == expected


def test_within_its_fresh_time_a_listing_is_served_from_memory(tmp_path: Path) -> None:
    """A trusted look is reused (no walk per page); new templates always look again."""
    day = _day(tmp_path)
    (day / f"{UUID_A}.wav").write_bytes(b"RIFF")
    index = RecordingIndex(tmp_path, fresh_for=3600)
    first = index.read("acme", NAMES, KEY)
    (day / f"{UUID_B}.wav").write_bytes(b"RIFF")
    assert index.read("acme", NAMES, KEY) is first
    other = RecordingNames({"support": "support/{date}/{uuid}.wav"}, "acme.example.org")
    assert len(index.read("acme", other, ("acme.example.org",)).newest_first) == 2


def _many(root: Path, tenant: str, count: int) -> None:
    """``count`` recordings of ``tenant``, ten to a day's directory."""
    for n in range(count):
        day = root / tenant / "support" / f"2026-11-{1 + n // 10:02d}"
        day.mkdir(parents=True, exist_ok=True)
        (day / f"{n:08x}-0000-4000-8000-000000000000.wav").write_bytes(b"RIFF")


def _names(tenant: str) -> tuple[str, RecordingNames, object]:
    return (tenant, NAMES, KEY)


def _settled(index: RecordingIndex) -> None:
    deadline = time.monotonic() + 60
    while index.stats().indexing or index._walker is not None:
        assert time.monotonic() < deadline, index.stats()
        time.sleep(0.01)


def test_a_first_listing_answers_from_a_partial_index_and_says_so(tmp_path: Path) -> None:
    """No time to walk: the first listing answers at once, marked ``indexing``, and the
    background walker finishes the tenant; later listings are whole and unmarked."""
    _many(tmp_path, "acme", 200)
    index = RecordingIndex(tmp_path, first_wait=0.0)
    first = index.read("acme", NAMES, KEY)
    assert first.indexing and len(first.newest_first) < 200
    _settled(index)
    found = index.read("acme", NAMES, KEY)
    assert not found.indexing and len(found.newest_first) == 200


def test_a_partial_index_shows_what_it_found_so_far(tmp_path: Path) -> None:
    _many(tmp_path, "acme", 300)
    index = RecordingIndex(tmp_path, first_wait=0.0)
    index._start_walker = lambda: None  # type: ignore[method-assign]  # the test walks
    tenant = index._tenant("acme")
    for _ in range(6):  # a directory a step: the tenant's, support/, then four days
        assert not tenant.walk(NAMES, KEY, 0.0)
    partial = index.read("acme", NAMES, KEY)  # one more day
    assert partial.indexing and len(partial.newest_first) == 50
    paths = [r.name.path for r in partial.newest_first]
    assert len(set(paths)) == 50 and all(p.startswith("support/2026-11-") for p in paths)
    while not tenant.walk(NAMES, KEY, 1.0):
        pass
    assert len(index.read("acme", NAMES, KEY).newest_first) == 300


def test_warmed_at_start_in_the_background_and_the_one_asked_for_goes_first(
    tmp_path: Path,
) -> None:
    for tenant in ("acme", "globex", "initech"):
        _many(tmp_path, tenant, 30)
    index = RecordingIndex(tmp_path, first_wait=0.0)
    index._start_walker = lambda: None  # type: ignore[method-assign]  # walked below
    index.warm([_names("globex"), _names("initech")])
    assert index.read("acme", NAMES, KEY).indexing  # asked for: walked before the others
    assert index._next() == ("acme", NAMES, KEY)
    index._walk_all()  # what the thread does
    stats = index.stats()
    assert (stats.tenants, stats.recordings, stats.indexing) == (3, 90, 0)
    for tenant in ("acme", "globex", "initech"):
        assert len(index.read(tenant, NAMES, KEY).newest_first) == 30
    index.warm([_names("globex")])  # offered once: nothing to walk again
    assert index._next() is None


def test_another_tenants_walk_never_holds_up_a_listing(tmp_path: Path) -> None:
    """While the walker is stuck in globex's tree, acme's first listing is answered."""
    _many(tmp_path, "acme", 5)
    _many(tmp_path, "globex", 5)
    index = RecordingIndex(tmp_path)
    stuck, release = threading.Event(), threading.Event()
    step = index._walk_step

    def slow_step(tenant_id: str, names: RecordingNames, key: object) -> bool:
        if tenant_id == "globex":
            stuck.set()
            release.wait(30)
        return step(tenant_id, names, key)

    index._walk_step = slow_step  # type: ignore[method-assign]
    index.warm([_names("globex")])
    assert stuck.wait(30)
    answered: list[Recordings] = []
    reader = threading.Thread(target=lambda: answered.append(index.read("acme", NAMES, KEY)))
    reader.start()
    reader.join(30)
    still_stuck = not release.is_set()
    release.set()
    assert still_stuck and answered and len(answered[0].newest_first) == 5
    assert not answered[0].indexing
    _settled(index)


def test_a_tenant_not_read_for_a_while_is_dropped_and_walked_again_when_read(
    tmp_path: Path,
) -> None:
    _many(tmp_path, "acme", 20)
    _many(tmp_path, "globex", 10)
    index = RecordingIndex(tmp_path, evict_after=60)
    index.read("acme", NAMES, KEY)
    index.read("globex", NAMES, KEY)
    start = time.monotonic()
    assert index.sweep(start + 30) == 0
    index._tenants["acme"].read_at = start + 50  # acme read again later
    assert index.sweep(start + 70) == 1  # globex: not read for 60 s
    stats = index.stats()
    assert (stats.tenants, stats.recordings, stats.evicted) == (1, 20, 1)
    metrics = Metrics()
    metrics.recording_index = index.stats
    scraped = metrics.render().decode()
    for line in (
        "pbx_portal_recordings_tenants 1.0",
        "pbx_portal_recordings_held 20.0",
        "pbx_portal_recordings_evicted_total 1.0",
    ):
        assert line in scraped.splitlines(), scraped
    assert len(index.read("globex", NAMES, KEY).newest_first) == 10
    assert index.stats().tenants == 2

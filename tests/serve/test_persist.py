"""The persisted generation's promises (``serve.persist``, kept by ``serve.generation``):
atomic and private, bound to one database, never emptied by accident, failures visible.
(Its answers and torn files: tests/dataplane/test_generation.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from reconciler.core.errors import Permanent, Transient
from reconciler.core.identity import DatabaseIdentity
from reconciler.serve.generation import (
    GENERATION_VERSION,
    GenerationHeader,
    MappedGeneration,
    open_generation,
    read_generation_header,
    write_generation,
)
from reconciler.serve.persist import (
    EmptySnapshotRefused,
    PersistStatus,
    SnapshotError,
    SnapshotMismatch,
    SnapshotNotPersisted,
)
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import TemplateLoadError
from reconciler.store.identity import dsn_fingerprint
from tests.serve.test_xmlcurl_fixtures import CAPTURED_1001_A1, a1_hashes_for, load_state

IDENTITY = DatabaseIdentity("7000000000000000001", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")
FINGERPRINT = dsn_fingerprint("postgresql://pbx:S3cret-DSN-pw@db1.example.net:5432/pbx")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="rev-1")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    out = tmp_path / "state"
    out.mkdir()
    return out / "xmlcurl.generation"


def save(snapshot: Snapshot, path: Path, **kwargs: object) -> GenerationHeader:
    options: dict[str, object] = {"identity": IDENTITY, "dsn_fingerprint": FINGERPRINT}
    options.update(kwargs)
    return write_generation(snapshot, path, **options)  # type: ignore[arg-type]


def load(path: Path, **kwargs: object) -> MappedGeneration:
    options: dict[str, object] = {"dsn_fingerprint": FINGERPRINT}
    options.update(kwargs)
    return open_generation(path, **options)  # type: ignore[arg-type]


def serves(mapped: MappedGeneration, snapshot: Snapshot) -> bool:
    """The mapped file answers every user and route of ``snapshot``, and nothing else."""
    if (mapped.generation, mapped.counts()) != (snapshot.generation, snapshot.counts()):
        return False
    for tenant in snapshot.tenants.values():
        for user in tenant.users.values():
            found = mapped.user(tenant.domain, user.number)
            if found is None or found[1] != user or found[0].id != tenant.id:
                return False
        for route in tenant.routes.values():
            routed = mapped.route(tenant.domain, route.number)
            if routed is None or routed[1] != route:
                return False
    return all(mapped.did(n) == did for n, did in snapshot.dids.items())


# --- round trip and file hygiene ----------------------------------------------------------


def test_round_trip_against_the_same_database(snapshot: Snapshot, path: Path) -> None:
    save(snapshot, path)
    assert serves(load(path, expected_identity=IDENTITY), snapshot)


def test_round_trip_by_dsn_when_the_database_is_unreachable(snapshot: Snapshot, path: Path) -> None:
    save(snapshot, path)
    spelled_otherwise = dsn_fingerprint("host=DB1.example.net dbname=pbx user=pbx password=x")
    assert serves(load(path, dsn_fingerprint=spelled_otherwise), snapshot)


def test_snapshot_file_is_private(snapshot: Snapshot, path: Path) -> None:
    old_umask = os.umask(0)
    try:
        save(snapshot, path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_replaces_atomically_and_leaves_no_temporary_file(
    snapshot: Snapshot, path: Path
) -> None:
    save(Snapshot(generation="old"), path, allow_empty=True)
    save(snapshot, path)
    assert load(path).generation == "rev-1"
    names = sorted(p.name for p in path.parent.iterdir())  # the index and its data files
    assert names[0] == path.name
    assert all(n.startswith(f"{path.name}.") and n.endswith(".data") for n in names[1:])


def test_file_records_identity_and_counts_but_no_secret(snapshot: Snapshot, path: Path) -> None:
    written = save(snapshot, path)
    raw = path.read_bytes()
    header = json.loads(raw.split(b"\n", 1)[0])
    assert header["format"] == "pbx-reconciler/generation"
    assert header["version"] == GENERATION_VERSION  # 4: calling rights, outbound policies
    assert header["identity"] == IDENTITY.as_dict()
    assert header["counts"] == snapshot.counts()
    assert b"S3cret" not in raw  # neither the DSN's password nor a SIP password
    data = b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}.*.data"))
    assert b"S3cret" not in data and CAPTURED_1001_A1.encode() in data
    assert written.written_at > 1.7e9 and written.users == snapshot.user_count


def test_header_is_read_without_the_body(snapshot: Snapshot, path: Path) -> None:
    save(snapshot, path)
    with path.open("ab") as file:
        file.write(b"garbage after the body")  # the header reader never gets there
    header = read_generation_header(path)
    assert (header.identity, header.users, header.generation) == (
        IDENTITY,
        snapshot.user_count,
        "rev-1",
    )
    assert header.written_at > 1.7e9
    with pytest.raises(SnapshotError, match="truncated or padded"):
        load(path)  # but the whole file is never served


# --- bound to one database ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "reason"),
    [
        (dataclasses.replace(IDENTITY, system_identifier="7000000000000000002"), "cluster"),
        (dataclasses.replace(IDENTITY, database="pbx_restored"), "pbx_restored"),
        (dataclasses.replace(IDENTITY, installation_id="1" * 8), "installation"),
    ],
    ids=["another-cluster", "another-database", "re-created"],
)
def test_another_database_gets_a_mismatch_saying_why(
    snapshot: Snapshot, path: Path, other: DatabaseIdentity, reason: str
) -> None:
    save(snapshot, path)
    with pytest.raises(SnapshotMismatch, match=reason):
        load(path, expected_identity=other)


def test_a_reachable_database_decides_even_when_the_dsn_changed(
    snapshot: Snapshot, path: Path
) -> None:
    save(snapshot, path)
    moved = dsn_fingerprint("postgresql://pbx@db2.example.net/pbx")
    assert serves(load(path, expected_identity=IDENTITY, dsn_fingerprint=moved), snapshot)


def test_unreachable_database_with_another_dsn_gets_a_mismatch(
    snapshot: Snapshot, path: Path
) -> None:
    save(snapshot, path)
    other = dsn_fingerprint("postgresql://pbx:S3cret-DSN-pw@db1.example.net:5432/pbx_new")
    with pytest.raises(SnapshotMismatch, match="pbx_new") as raised:
        load(path, dsn_fingerprint=other)
    assert "S3cret" not in str(raised.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"format": "something-else", "version": 2}',
        b'{"format": "pbx-reconciler/generation", "version": 99}',
        b'{"format": "pbx-reconciler/generation", "version": 2}',
        b'{"format": "pbx-reconciler/generation", "version": 1}',
        b'{"format": "pbx-reconciler/snapshot", "version": 2, "identity": {}}\n[]',
    ],
    ids=[
        "empty",
        "not-json",
        "not-object",
        "other-format",
        "future-version",
        "recordings-only-rows",
        "no-identity",
        "snapshot-json",
    ],
)
def test_unreadable_snapshot_raises_snapshot_error(content: bytes, path: Path) -> None:
    path.write_bytes(content)
    with pytest.raises(SnapshotError):
        load(path)


def test_missing_snapshot_raises_snapshot_error(path: Path) -> None:
    with pytest.raises(SnapshotError):
        load(path)


# --- never emptied by accident; failures are visible ---------------------------------------


def test_empty_snapshot_does_not_replace_a_file_holding_users(
    snapshot: Snapshot, path: Path
) -> None:
    save(snapshot, path)
    with pytest.raises(EmptySnapshotRefused, match=f"{snapshot.user_count} users"):
        save(Snapshot(generation="cold"), path)
    assert serves(load(path), snapshot)


def test_empty_snapshot_replaces_when_the_database_really_serves_no_user(
    snapshot: Snapshot, path: Path
) -> None:
    save(snapshot, path)
    save(Snapshot(generation="all-suspended"), path, allow_empty=True)
    assert load(path).generation == "all-suspended"


def test_empty_snapshot_replaces_a_file_of_another_database(snapshot: Snapshot, path: Path) -> None:
    save(snapshot, path, identity=dataclasses.replace(IDENTITY, database="old"))
    save(Snapshot(generation="fresh"), path)
    assert load(path, expected_identity=IDENTITY).generation == "fresh"


def test_empty_snapshot_replaces_an_unreadable_file(path: Path) -> None:
    path.write_bytes(b"{torn")
    save(Snapshot(generation="fresh"), path)
    assert load(path).generation == "fresh"


def test_failed_write_raises_and_keeps_the_old_file(
    snapshot: Snapshot, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(snapshot, path)

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reconciler.serve.persist.os.replace", disk_full)
    with pytest.raises(SnapshotNotPersisted, match="No space left on device"):
        save(dataclasses.replace(snapshot, generation="new"), path)
    monkeypatch.undo()
    assert serves(load(path), snapshot)
    in_use = read_generation_header(path).data  # nothing else left behind
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, in_use]


def test_unwritable_directory_raises_snapshot_not_persisted(snapshot: Snapshot, path: Path) -> None:
    with pytest.raises(SnapshotNotPersisted):
        save(snapshot, path.parent / "missing" / "xmlcurl.generation")


def test_a_failure_keeps_the_time_of_the_last_good_write() -> None:
    good = PersistStatus(True, 1700000000.0, "100 users written")
    failed = good.failed("disk full")
    assert (failed.persisted, failed.persisted_at, failed.detail) == (
        False,
        1700000000.0,
        "disk full",
    )


def test_errors_hang_from_the_project_tree() -> None:
    assert issubclass(SnapshotMismatch, SnapshotError)
    assert issubclass(SnapshotError, Permanent)
    assert issubclass(TemplateLoadError, Permanent)
    assert issubclass(EmptySnapshotRefused, SnapshotNotPersisted)
    assert issubclass(SnapshotNotPersisted, Transient)

"""The full pass's caches never serve a stale state: whatever changed since the last pass,
in the files or in the database (by another daemon, `pbx apply`, a rotation or a hand-made
edit), is seen by the next full pass, exactly as a pass without caches would see it."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from reconciler.reconcile import Reconciler
from reconciler.store import PostgresStore
from reconciler.store.fingerprints import read_fingerprints
from reconciler.store.memory import MemoryStore
from tests.conftest import EXAMPLE_TENANTS


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    directory = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, directory)
    return directory


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_dsn)
    yield store
    store.close()


def _sql(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def _uncached_view(tenants: Path, store: PostgresStore) -> tuple[object, object]:
    """What a fresh reconciler (no caches at all) plans and reads."""
    fresh = Reconciler(tenants, store)
    planned = fresh.plan_pass(full=True)
    return planned.plan.all_changes, (fresh.applied.state, fresh.applied.a1_hashes)


# Writes another writer can make: each must reach the next full pass.
WRITES: dict[str, str] = {
    "an extension renamed by hand": "UPDATE tenant_acme.extensions SET name = 'Drift'"
    " WHERE number = '1001'",
    "a link deleted by hand": "DELETE FROM tenant_acme.user_extensions WHERE extension = '1001'",
    "a tier changed by hand": "UPDATE tenant_acme.tiers SET level = level + 1",
    "an inbound number deleted by hand": "DELETE FROM tenant_acme.inbound_numbers",
    "a credential rotated": "UPDATE tenant_acme.sip_credentials SET a1_hash ="
    " md5('x') WHERE extension = '1001'",
    "the registry row changed": "UPDATE pbx.tenants SET name = 'Someone else' WHERE id = 'acme'",
    "an update to the same value": "UPDATE tenant_acme.extensions SET name = name",
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_another_writer_s_change_is_seen_by_the_next_full_pass(
    write: str, tenants: Path, store: PostgresStore, pg_dsn: str
) -> None:
    reconciler = Reconciler(tenants, store)
    assert reconciler.run_pass(full=True).ok
    assert reconciler.run_pass(full=True).planned.plan.empty  # caches warm, in sync
    _sql(pg_dsn, WRITES[write])
    planned = reconciler.plan_pass(full=True)
    changes, read = _uncached_view(tenants, store)
    assert planned.plan.all_changes == changes
    assert (reconciler.applied.state, reconciler.applied.a1_hashes) == read
    if write not in ("an update to the same value", "a credential rotated"):
        assert not planned.plan.empty  # the drift is repaired
    if write == "a credential rotated":
        expected = hashlib.md5(b"x").hexdigest()
        assert reconciler.applied.a1_hashes[("acme", "1001")] == expected


def _rewrite_same(path: Path) -> None:
    path.write_bytes(path.read_bytes())


def _touch(path: Path) -> None:
    os.utime(path)


def _edit_keeping_size_and_mtime(path: Path) -> None:
    before = path.stat()
    text = path.read_text()
    edited = text.replace("Alice Smith", "Alice Smyth", 1)
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _edit(path: Path) -> None:
    path.write_text(path.read_text().replace("Alice Smith", "Alice Jones", 1))


def _break(path: Path) -> None:
    path.write_text(path.read_text() + "\nunknown_key: 1\n")


FILE_EVENTS: dict[str, tuple[Callable[[Path], None], bool]] = {
    "touched, unchanged": (_touch, False),
    "rewritten with the same bytes": (_rewrite_same, False),
    "edited": (_edit, True),
    "edited keeping size and mtime": (_edit_keeping_size_and_mtime, True),
    "turned invalid": (_break, False),
}


@pytest.mark.parametrize("event", list(FILE_EVENTS), ids=list(FILE_EVENTS))
def test_a_file_event_is_seen_by_the_next_full_pass_as_without_caches(
    event: str, tenants: Path, store: PostgresStore
) -> None:
    reconciler = Reconciler(tenants, store)
    assert reconciler.run_pass(full=True).ok
    assert reconciler.run_pass(full=True).planned.plan.empty
    change, expect_changes = FILE_EVENTS[event]
    change(tenants / "acme.yaml")
    planned = reconciler.plan_pass(full=True)
    changes, _ = _uncached_view(tenants, store)
    assert planned.plan.all_changes == changes
    assert (not planned.plan.empty) == expect_changes
    assert ("acme" in planned.invalid) == (event == "turned invalid")


def test_a_tenant_turning_invalid_then_fixed_is_planned_again(
    tenants: Path, store: PostgresStore, pg_dsn: str
) -> None:
    reconciler = Reconciler(tenants, store)
    assert reconciler.run_pass(full=True).ok
    original = (tenants / "acme.yaml").read_text()
    _break(tenants / "acme.yaml")
    assert "acme" in reconciler.run_pass(full=True).planned.invalid
    _sql(pg_dsn, "UPDATE tenant_acme.extensions SET name = 'Drift' WHERE number = '1001'")
    assert reconciler.run_pass(full=True).planned.plan.empty  # frozen: left as it is
    (tenants / "acme.yaml").write_text(original)
    planned = reconciler.plan_pass(full=True)
    assert [c.key for c in planned.plan.all_changes] == ["1001"]


def test_fingerprints_hold_while_nothing_is_written_and_move_with_every_write(
    tenants: Path, store: PostgresStore, pg_dsn: str
) -> None:
    assert Reconciler(tenants, store).run_pass(full=True).ok
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        first = read_fingerprints(conn)
        assert read_fingerprints(conn) == first
        conn.execute("SELECT * FROM tenant_acme.extensions FOR UPDATE")
        conn.execute("VACUUM (FREEZE) tenant_acme.extensions")
        assert read_fingerprints(conn) == first  # reads, locks and vacuum are not writes
        for statement in WRITES.values():
            before = read_fingerprints(conn)
            conn.execute(statement)  # type: ignore[arg-type]
            after = read_fingerprints(conn)
            assert after["acme"] != before["acme"], statement
            assert {t: p for t, p in after.items() if t != "acme"} == {
                t: p for t, p in before.items() if t != "acme"
            }


def test_a_full_pass_over_unchanged_inputs_reads_and_plans_nothing_again(
    tenants: Path,
) -> None:
    store = MemoryStore()
    reconciler = Reconciler(tenants, store)
    assert reconciler.run_pass(full=True).ok
    reconciler.run_pass(full=True)
    held = dict(reconciler.applied.state)
    store.calls.clear()
    again = reconciler.run_pass(full=True)
    assert again.planned.plan.empty and not again.state_changed
    assert "read_state" not in store.calls and "read_a1_hashes" not in store.calls
    assert all(reconciler.applied.state[t] is s for t, s in held.items())


def test_a_one_shot_pass_reads_the_records_once_without_hashes_or_fingerprints(
    tenants: Path,
) -> None:
    store = MemoryStore()
    assert Reconciler(tenants, store).run_pass(full=True).ok
    store.calls.clear()
    one_shot = Reconciler(tenants, store, one_shot=True)
    planned = one_shot.plan_pass(full=True)
    assert planned.plan.empty
    assert store.calls.count("read_state") == 1
    assert "read_a1_hashes" not in store.calls and "read_fingerprints" not in store.calls


def test_incremental_passes_hold_the_digests_a_full_read_gives(tenants: Path) -> None:
    """A one-tenant re-read swaps that tenant's a1 and PIN digests only; what it holds
    after adds, removals and a tenant leaving and returning is what the store reads, and a
    mapping handed out before (to the snapshot) never changes under its reader."""
    store = MemoryStore()
    reconciler = Reconciler(tenants, store)
    assert reconciler.run_pass(full=True).ok
    acme, globex = tenants / "acme.yaml", tenants / "globex.yaml"
    original, globex_text = acme.read_text(), globex.read_text()
    added = '  - {number: "1099", name: "New"}\n'
    steps: list[Callable[[], object]] = [
        lambda: acme.write_text(original.replace("extensions:\n", f"extensions:\n{added}", 1)),
        lambda: acme.write_text(original),
        globex.unlink,
        lambda: globex.write_text(globex_text),
    ]
    for step in steps:
        held = reconciler.applied.a1_hashes
        before = dict(held)
        step()
        assert reconciler.run_pass(full=False).ok
        assert held == before
        assert reconciler.applied.a1_hashes == store.read_a1_hashes()
        assert reconciler.applied.voicemail_hashes == store.read_voicemail_hashes()
    assert reconciler.applied.a1_hashes is not held

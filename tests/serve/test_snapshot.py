"""The served view: what is in it, what is left out, and its file on disk."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import time
from pathlib import Path

import pytest

from reconciler.core.model import Extension, Tenant, TenantState
from reconciler.serve.snapshot import (
    DidRoute,
    QueueConfig,
    Route,
    RouteKind,
    Snapshot,
    SnapshotError,
    build_snapshot,
    load_snapshot,
    save_snapshot,
    served_text,
)
from tests.serve.test_xmlcurl_fixtures import CAPTURED_1001_A1, a1_hashes_for, load_state


@pytest.fixture
def state(tmp_path: Path):
    return load_state(tmp_path / "tenants.d")


@pytest.fixture
def snapshot(state) -> Snapshot:
    return build_snapshot(state, a1_hashes_for(state), generation="rev-1")


def test_only_active_tenants_are_served(snapshot: Snapshot) -> None:
    assert sorted(snapshot.tenants) == ["acme.example.com", "globex.example.com"]
    assert snapshot.tenant("initech.example.com") is None


def test_orphaned_tenant_is_not_served(state) -> None:
    orphaned = dict(state)
    acme = state["acme"]
    orphaned["acme"] = dataclasses.replace(
        acme, tenant=dataclasses.replace(acme.tenant, status="orphaned")
    )
    snapshot = build_snapshot(orphaned, a1_hashes_for(state))
    assert snapshot.tenant("acme.example.com") is None
    assert snapshot.queue("support@acme.example.com") is None
    assert snapshot.did("+14155550100") is None


def test_domain_lookup_ignores_case(snapshot: Snapshot) -> None:
    assert snapshot.tenant("ACME.Example.COM") is snapshot.tenant("acme.example.com")


def test_user_carries_the_a1_hash_from_the_store(snapshot: Snapshot) -> None:
    found = snapshot.user("acme.example.com", "1001")
    assert found is not None
    tenant, user = found
    assert tenant.id == "acme"
    assert user.a1_hash == CAPTURED_1001_A1
    assert user.caller_id_name == "Alice Smith"
    assert user.caller_id_number == "1001"
    assert user.max_registrations == 3
    assert user.call_timeout == 30


def test_extension_call_timeout_overrides_the_tenant_default(snapshot: Snapshot) -> None:
    found = snapshot.user("acme.example.com", "1002")
    assert found is not None
    assert found[1].call_timeout == 25
    assert found[1].caller_id_name == "Bob desk phone"  # no caller_id: the extension name


def test_disabled_extension_is_neither_a_user_nor_a_route(snapshot: Snapshot) -> None:
    assert snapshot.user("acme.example.com", "1004") is None
    assert snapshot.route("acme.example.com", "1004") is None


def test_extension_without_a1_hash_is_left_out(state) -> None:
    hashes = a1_hashes_for(state)
    del hashes[("acme", "1002")]
    snapshot = build_snapshot(state, hashes)
    assert snapshot.user("acme.example.com", "1002") is None
    assert snapshot.route("acme.example.com", "1002") is None
    assert snapshot.user("acme.example.com", "1001") is not None


@pytest.mark.parametrize("bad", ["", "not-a-hash", "g" * 32, "0" * 31])
def test_malformed_a1_hash_is_left_out(state, bad: str) -> None:
    hashes = a1_hashes_for(state)
    hashes[("acme", "1001")] = bad
    snapshot = build_snapshot(state, hashes)
    assert snapshot.user("acme.example.com", "1001") is None


def test_a1_hash_is_served_lowercase(state) -> None:
    hashes = a1_hashes_for(state)
    hashes[("acme", "1001")] = CAPTURED_1001_A1.upper()
    found = build_snapshot(state, hashes).user("acme.example.com", "1001")
    assert found is not None and found[1].a1_hash == CAPTURED_1001_A1


def test_agents_are_indexed_by_the_extension_they_answer_on(snapshot: Snapshot) -> None:
    agents = {
        number: user.agents for number, user in snapshot.tenants["acme.example.com"].users.items()
    }
    assert agents == {
        "1001": ("alice@acme.example.com",),
        "1002": ("bob@acme.example.com",),
        "1003": ("carol@acme.example.com",),  # carol answers on 1003
    }


def test_routes_of_every_kind(snapshot: Snapshot) -> None:
    routes = snapshot.tenants["acme.example.com"].routes
    assert routes["1001"] == Route(RouteKind.EXTENSION, "1001", "1001", 30)
    assert routes["7000"] == Route(RouteKind.QUEUE, "7000", "support@acme.example.com")
    assert routes["7001"] == Route(RouteKind.QUEUE, "7001", "sales@acme.example.com")
    assert routes["*22"] == Route(RouteKind.FEATURE, "*22", "Available")
    assert routes["*23"] == Route(RouteKind.FEATURE, "*23", "On Break")
    assert routes["*24"] == Route(RouteKind.FEATURE, "*24", "Logged Out")


def test_dids_land_in_their_tenant_context(snapshot: Snapshot) -> None:
    assert snapshot.did("+14155550100") == DidRoute(
        "+14155550100", "acme", "acme.example.com", "7000"
    )
    assert snapshot.did("+14155550101") == DidRoute(
        "+14155550101", "acme", "acme.example.com", "1001"
    )
    assert snapshot.did("+442071230000") == DidRoute(
        "+442071230000", "globex", "globex.example.com", "1001"
    )


def test_did_to_a_disabled_extension_is_left_out_and_reported(snapshot: Snapshot) -> None:
    assert snapshot.did("+14155550104") is None
    assert any("+14155550104" in p for p in snapshot.problems)


def test_did_of_a_suspended_tenant_is_not_served(snapshot: Snapshot) -> None:
    assert snapshot.did("+15125550100") is None


def test_queues_carry_callcenter_params_with_dashes(snapshot: Snapshot) -> None:
    queue = snapshot.queue("support@acme.example.com")
    assert queue is not None
    params = dict(queue.params)
    assert params["strategy"] == "longest-idle-agent"
    assert params["moh-sound"] == "local_stream://moh"
    assert params["max-wait-time"] == "120"
    assert params["tier-rule-no-agent-no-wait"] == "true"
    assert all("_" not in name for name in params)
    assert snapshot.queue("support@globex.example.com") is not None
    assert snapshot.queue("tps@initech.example.com") is None


def test_two_tenants_claiming_one_domain_are_both_left_out(state) -> None:
    clash = dict(state)
    globex = state["globex"]
    clash["globex"] = dataclasses.replace(
        globex, tenant=dataclasses.replace(globex.tenant, domain="acme.example.com")
    )
    snapshot = build_snapshot(clash, a1_hashes_for(state))
    assert snapshot.tenant("acme.example.com") is None
    assert any("acme.example.com" in p for p in snapshot.problems)


def test_did_claimed_by_two_tenants_is_left_out(state) -> None:
    clash = dict(state)
    globex = state["globex"]
    did = globex.inbound_numbers["+442071230000"]
    moved = dataclasses.replace(did, number="+14155550101")
    clash["globex"] = dataclasses.replace(globex, inbound_numbers={moved.number: moved})
    snapshot = build_snapshot(clash, a1_hashes_for(state))
    assert snapshot.did("+14155550101") is None
    assert any("+14155550101" in p for p in snapshot.problems)


def test_build_is_pure_and_deterministic(state) -> None:
    hashes = a1_hashes_for(state)
    assert build_snapshot(state, hashes, generation="g") == build_snapshot(
        state, hashes, generation="g"
    )


@pytest.mark.parametrize(
    ("text", "served"),
    [
        ("Alice Smith", "Alice Smith"),
        ("A&B <x> \"q\" 'y'", "A&B <x> \"q\" 'y'"),  # XML escaping is the templates' job
        ("${system(touch /tmp/x)}", "\uff04{system(touch /tmp/x)}"),
        ("$${domain}", "$\uff04{domain}"),
        ("cost $5", "cost $5"),
        ("bad\ufffechar", "bad\ufffdchar"),
        ("Zoë 東京 🎧", "Zoë 東京 🎧"),
    ],
)
def test_served_text_is_inert_for_freeswitch_and_valid_xml(text: str, served: str) -> None:
    assert served_text(text) == served


def test_display_names_are_served_inert(state) -> None:
    acme = state["acme"]
    ext = dataclasses.replace(acme.extensions["1002"], name="${system(id)}")
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, extensions={**acme.extensions, "1002": ext})
    found = build_snapshot(changed, a1_hashes_for(state)).user("acme.example.com", "1002")
    assert found is not None
    assert "${" not in found[1].caller_id_name


# --- the file ----------------------------------------------------------------------------


def test_save_and_load_round_trip(snapshot: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "served.snapshot.json"
    save_snapshot(snapshot, path)
    assert load_snapshot(path) == snapshot


def test_snapshot_file_is_private(snapshot: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "served.snapshot.json"
    old_umask = os.umask(0)
    try:
        save_snapshot(snapshot, path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_replaces_atomically_and_leaves_no_temporary_file(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "served.snapshot.json"
    save_snapshot(Snapshot(generation="old"), path)
    save_snapshot(snapshot, path)
    assert load_snapshot(path).generation == "rev-1"
    assert [p.name for p in out.iterdir()] == [path.name]


def test_failed_save_keeps_the_old_file_and_no_temporary_file(
    snapshot: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "served.snapshot.json"
    save_snapshot(snapshot, path)

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reconciler.serve.snapshot.os.replace", disk_full)
    with pytest.raises(OSError):
        save_snapshot(Snapshot(generation="new"), path)
    monkeypatch.undo()
    assert load_snapshot(path) == snapshot
    assert [p.name for p in out.iterdir()] == [path.name]


def test_file_names_its_format_and_holds_no_passwords(snapshot: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "served.snapshot.json"
    save_snapshot(snapshot, path)
    data = json.loads(path.read_text())
    assert data["format"] == "pbx-reconciler/snapshot"
    assert data["version"] == 1
    assert "S3cret-Pass-1001" not in path.read_text()
    assert CAPTURED_1001_A1 in path.read_text()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"format": "something-else", "version": 1}',
        b'{"format": "pbx-reconciler/snapshot", "version": 99}',
        b'{"format": "pbx-reconciler/snapshot", "version": 1}',
    ],
    ids=["empty", "not-json", "not-object", "other-format", "future-version", "truncated"],
)
def test_unreadable_snapshot_raises_snapshot_error(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.snapshot.json"
    path.write_bytes(content)
    with pytest.raises(SnapshotError):
        load_snapshot(path)


def test_missing_snapshot_raises_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError):
        load_snapshot(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["tenants"][0]["routes"][0].__setitem__(0, "teleport"),
        lambda d: d["tenants"][0]["users"][0].pop(),
        lambda d: d["tenants"][0]["users"][0].__setitem__(7, 5),
        lambda d: d["tenants"][0].pop("domain"),
        lambda d: d["dids"].append(["+1", "x"]),
        lambda d: d.__setitem__("queues", 7),
        lambda d: d["columns"]["user"].reverse(),
    ],
    ids=["route-kind", "short-user", "agents-not-list", "no-domain", "short-did", "queues", "cols"],
)
def test_corrupt_content_raises_snapshot_error(snapshot: Snapshot, tmp_path: Path, corrupt) -> None:
    path = tmp_path / "served.snapshot.json"
    save_snapshot(snapshot, path)
    data = json.loads(path.read_text())
    corrupt(data)
    path.write_text(json.dumps(data))
    with pytest.raises(SnapshotError):
        load_snapshot(path)


def test_empty_state_gives_an_empty_snapshot() -> None:
    snapshot = build_snapshot({}, {})
    assert snapshot.counts() == {"tenants": 0, "users": 0, "routes": 0, "dids": 0, "queues": 0}


# --- scale -------------------------------------------------------------------------------


def big_state(tenants: int, extensions: int):
    state = {}
    hashes = {}
    for t in range(tenants):
        tid = f"t{t:04d}"
        domain = f"{tid}.example.com"
        exts = {}
        for e in range(extensions):
            number = str(1000 + e)
            exts[number] = Extension(number=number, name=f"User {number}")
            hashes[(tid, number)] = f"{t:016x}{e:016x}"
        state[tid] = TenantState(
            tenant=Tenant(id=tid, domain=domain, name=tid, status="active"), extensions=exts
        )
    return state, hashes


def test_build_of_100k_extensions_is_fast(tmp_path: Path) -> None:
    state, hashes = big_state(1000, 100)
    started = time.perf_counter()
    snapshot = build_snapshot(state, hashes)
    elapsed = time.perf_counter() - started
    assert snapshot.counts()["users"] == 100_000
    # ~0.2 s measured on the 2-core CI machine; the bound only catches a quadratic slip
    assert elapsed < 3.0
    path = tmp_path / "big.snapshot.json"
    save_snapshot(snapshot, path)
    assert load_snapshot(path).counts() == snapshot.counts()


def test_freeze_moves_the_snapshot_out_of_the_cyclic_gc(state) -> None:
    import gc

    try:
        snapshot = build_snapshot(state, a1_hashes_for(state), freeze=True)
        assert gc.isenabled()
        scanned = {id(o) for o in gc.get_objects()}  # generations 0-2, not the frozen one
        served = snapshot.tenants["acme.example.com"]
        assert gc.is_tracked(served)
        assert id(served) not in scanned
    finally:
        gc.unfreeze()


def test_build_leaves_the_gc_as_it_found_it(state) -> None:
    import gc

    gc.disable()
    try:
        build_snapshot(state, a1_hashes_for(state))
        assert not gc.isenabled()
    finally:
        gc.enable()
    build_snapshot(state, a1_hashes_for(state))
    assert gc.isenabled()


def test_queue_config_rows_are_plain_tuples(snapshot: Snapshot) -> None:
    queue = snapshot.queue("sales@acme.example.com")
    assert isinstance(queue, QueueConfig)
    assert all(isinstance(p, tuple) and len(p) == 2 for p in queue.params)

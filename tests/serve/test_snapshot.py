"""The served view: what is in it and what is left out (its file: test_persist.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.core.identity import DatabaseIdentity
from reconciler.core.model import Extension, Tenant, TenantState
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.snapshot import (
    DidRoute,
    QueueConfig,
    Route,
    RouteKind,
    Snapshot,
    build_snapshot,
    declares_users,
)
from tests.serve.test_xmlcurl_fixtures import CAPTURED_1001_A1, a1_hashes_for, load_state

IDENTITY = DatabaseIdentity("7000000000000000001", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")


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


# --- the second wall: strings FreeSWITCH would interpret --------------------------------


def with_extension(state, number: str, **changes):
    acme = state["acme"]
    ext = dataclasses.replace(acme.extensions[number], **changes)
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, extensions={**acme.extensions, number: ext})
    return changed


def with_queue(state, name: str, **changes):
    acme = state["acme"]
    queue = dataclasses.replace(acme.queues[name], **changes)
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, queues={**acme.queues, name: queue})
    return changed


def with_tenant(state, **changes):
    acme = state["acme"]
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, tenant=dataclasses.replace(acme.tenant, **changes))
    return changed


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "${system(id)}"},
        {"name": "$${domain}"},
        {"name": "braces {x}"},
        {"name": "cost $5"},
        {"name": "bell\x07"},
        {"name": "line\nbreak"},
        {"name": "bad\ufffechar"},
        {"caller_id_name": "${sofia_contact(x)}"},
        {"caller_id_number": "1001${x}"},
        {"caller_id_number": "10 01"},
    ],
    ids=lambda c: repr(c),
)
def test_extension_with_a_string_freeswitch_would_interpret_is_not_served(state, changes) -> None:
    changed = with_extension(state, "1002", **{"caller_id_name": None, **changes})
    snapshot = build_snapshot(changed, a1_hashes_for(state))
    assert snapshot.user("acme.example.com", "1002") is None
    assert snapshot.route("acme.example.com", "1002") is None
    assert snapshot.user("acme.example.com", "1001") is not None  # the rest is served
    assert any("extension '1002'" in p and "not served" in p for p in snapshot.problems)


@pytest.mark.parametrize(
    "name", ["A&B <x> \"q\" 'y'", "Zoë 東京 🎧", "O'Brien & Söhne", "50% off", "a]]>b"]
)
def test_display_text_with_xml_metacharacters_is_served_as_is(state, name: str) -> None:
    changed = with_extension(state, "1002", name=name)
    found = build_snapshot(changed, a1_hashes_for(state)).user("acme.example.com", "1002")
    assert found is not None
    assert found[1].caller_id_name == name  # escaping is the templates' job


@pytest.mark.parametrize(
    "changes",
    [
        {"outbound_caller_id_name": "${system(id)}"},
        {"outbound_caller_id_number": "+1${x}"},
        {"feature_available": "*2 2"},
        {"feature_on_break": "{*23}"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_tenant_with_a_string_freeswitch_would_interpret_is_not_served(state, changes) -> None:
    snapshot = build_snapshot(with_tenant(state, **changes), a1_hashes_for(state))
    assert snapshot.tenant("acme.example.com") is None
    assert snapshot.queue("support@acme.example.com") is None
    assert snapshot.did("+14155550100") is None
    assert snapshot.tenant("globex.example.com") is not None
    assert any(p.startswith("tenant acme:") and "not served" in p for p in snapshot.problems)


@pytest.mark.parametrize(
    "changes",
    [
        {"moh_sound": "${system(id)}"},
        {"announce_sound": "$${sounds_dir}/x.wav"},
        {"moh_sound": "local_stream://moh two"},
        {"record_template": "/tmp/${uuid}.wav"},
        {"record_template": "rec/{caller}.wav"},
        {"record_template": "rec/{uuid"},
        {"agent_no_answer_status": "On\x00Break"},
    ],
    ids=lambda c: repr(c),
)
def test_queue_with_a_string_freeswitch_would_interpret_is_not_served(state, changes) -> None:
    snapshot = build_snapshot(with_queue(state, "support", **changes), a1_hashes_for(state))
    assert snapshot.queue("support@acme.example.com") is None
    assert snapshot.route("acme.example.com", "7000") is None
    assert snapshot.did("+14155550100") is None  # its DID targets the queue
    assert snapshot.queue("sales@acme.example.com") is not None
    assert any("queue 'support'" in p and "not served" in p for p in snapshot.problems)


def test_record_template_placeholders_are_rendered_by_the_reconciler(state) -> None:
    changed = with_queue(state, "support", record_template="rec/{queue}/{date}-{time}-{uuid}.wav")
    queue = build_snapshot(changed, a1_hashes_for(state)).queue("support@acme.example.com")
    assert queue is not None
    assert dict(queue.params)["record-template"] == (
        "/var/lib/pbx/recordings/acme/rec/support@acme.example.com/"
        "${strftime(%Y-%m-%d)}-${strftime(%H%M%S)}-${uuid}.wav"
    )


def test_agent_whose_name_may_not_be_served_is_left_out(state) -> None:
    acme = state["acme"]
    bad = dataclasses.replace(acme.agents["bob"], name="bob ${x}")
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, agents={**acme.agents, "bob": bad})
    snapshot = build_snapshot(changed, a1_hashes_for(state))
    found = snapshot.user("acme.example.com", "1002")
    assert found is not None and found[1].agents == ()
    assert any("agent" in p and "left out" in p for p in snapshot.problems)


def test_inbound_number_that_may_not_be_served_is_left_out(state) -> None:
    acme = state["acme"]
    did = dataclasses.replace(acme.inbound_numbers["+14155550101"], number="+1415${x}")
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, inbound_numbers={did.number: did})
    snapshot = build_snapshot(changed, a1_hashes_for(state))
    assert snapshot.dids.keys() >= {"+442071230000"}
    assert all("$" not in number for number in snapshot.dids)
    assert any("inbound number" in p for p in snapshot.problems)


def test_snapshot_holds_no_display_name_freeswitch_never_gets(snapshot: Snapshot) -> None:
    tenant = snapshot.tenants["acme.example.com"]
    assert not hasattr(tenant, "name")
    assert "display_name" not in tenant.users["1001"]._fields


def test_declares_users_tells_an_empty_database_from_a_suspect_snapshot(state) -> None:
    assert declares_users(state)
    suspended = {
        tid: dataclasses.replace(ts, tenant=dataclasses.replace(ts.tenant, status="suspended"))
        for tid, ts in state.items()
    }
    assert not declares_users(suspended)
    assert not declares_users({})


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


def test_a_snapshot_of_100k_extensions_builds_and_round_trips(tmp_path: Path) -> None:
    """Its speed is measured in bench/ (save-to-served), never asserted here."""
    state, hashes = big_state(1000, 100)
    snapshot = build_snapshot(state, hashes)
    assert snapshot.counts()["users"] == 100_000
    path = tmp_path / "big.generation"
    write_generation(snapshot, path, identity=IDENTITY, dsn_fingerprint="f")
    mapped = open_generation(path, dsn_fingerprint="f")
    assert mapped.counts() == snapshot.counts()
    found, expected = (
        mapped.user("t0999.example.com", "1099"),
        snapshot.user("t0999.example.com", "1099"),
    )
    assert found is not None and expected is not None and found[1] == expected[1]
    mapped.close()


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

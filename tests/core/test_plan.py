"""The planner, pure: table-driven cases and properties, no database."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.guards import without
from reconciler.core.model import (
    KIND_ORDER,
    PLATFORM,
    Agent,
    Extension,
    InboundNumber,
    Kind,
    PlatformAdmin,
    PlatformState,
    Queue,
    Tenant,
    TenantLifecycle,
    TenantState,
    Tier,
)
from reconciler.core.plan import (
    Action,
    Plan,
    Scope,
    apply_changes,
    apply_platform_changes,
    plan,
    plan_platform,
)
from reconciler.core.plan_text import change_dict, render_text, to_json
from tests.strategies import tenant_sets

ACME = Tenant(id="acme", domain="acme.example.com", name="Acme", status="active")


def state(**collections: object) -> TenantState:
    return TenantState(tenant=collections.pop("tenant", ACME), **collections)  # type: ignore[arg-type]


EXT_1001 = Extension(number="1001", name="Alice")
EXT_1002 = Extension(number="1002", name="Bob")
ALICE = Agent(name="alice", type="Callback", contact="user/1001@acme.example.com", extension="1001")
SUPPORT = Queue(name="support", number="7000")
TIER = Tier(queue="support", agent="alice")
DID = InboundNumber(number="+14155550100", destination_kind="queue", destination="support")

FULL = state(
    extensions={"1001": EXT_1001},
    agents={"alice": ALICE},
    queues={"support": SUPPORT},
    tiers={TIER.key: TIER},
    inbound_numbers={DID.key: DID},
)


def lines(p: Plan) -> list[str]:
    return [f"{c.action.value} {c.kind.value} {c.key}" for c in p.all_changes]


CASES = [
    pytest.param({}, {}, [], id="nothing-to-do"),
    pytest.param(
        {"acme": state(extensions={"1001": EXT_1001})},
        {},
        ["+ tenant acme", "+ extension 1001"],
        id="new-tenant-parent-first",
    ),
    pytest.param(
        {"acme": state(extensions={"1001": replace(EXT_1001, name="Alice Smith")})},
        {"acme": state(extensions={"1001": EXT_1001})},
        ["~ extension 1001"],
        id="field-update",
    ),
    pytest.param(
        {"acme": state(extensions={"1001": EXT_1001})},
        {"acme": FULL},
        [
            "- inbound_number +14155550100",
            "- tier support/alice",
            "- queue support",
            "- agent alice",
        ],
        id="deletes-children-first",
    ),
    pytest.param(
        {"acme": FULL},
        {"acme": state(extensions={"1001": EXT_1001})},
        [
            "+ agent alice",
            "+ queue support",
            "+ tier support/alice",
            "+ inbound_number +14155550100",
        ],
        id="creates-parents-first",
    ),
    pytest.param(
        {},
        {"acme": FULL},
        ["~ tenant acme"],
        id="removed-spec-orphans-never-deletes",
    ),
    pytest.param(
        {},
        {"acme": state(tenant=replace(ACME, status=TenantLifecycle.ORPHANED.value))},
        [],
        id="already-orphaned",
    ),
    pytest.param(
        {"acme": state(extensions={"1002": EXT_1002})},
        {"acme": state(extensions={"1001": EXT_1001})},
        ["+ extension 1002", "- extension 1001"],
        id="replace-an-extension",
    ),
]


@pytest.mark.parametrize(("desired", "actual", "expected"), CASES)
def test_plan_cases(desired: dict, actual: dict, expected: list[str]) -> None:
    assert lines(plan(desired, actual)) == expected


def test_a_frozen_tenant_never_appears_in_a_plan() -> None:
    assert plan({}, {"acme": FULL}, frozen=["acme"]).empty
    assert plan({"acme": FULL}, {}, frozen=["acme"]).empty


def test_orphaning_says_why_and_keeps_everything() -> None:
    (change,) = plan({}, {"acme": FULL}).changes
    assert change.action is Action.UPDATE and change.kind is Kind.TENANT
    assert change.after.status == "orphaned"  # type: ignore[union-attr]
    assert "pbx prune" in change.reason
    assert apply_changes({"acme": FULL}, Plan((change,)))["acme"].extensions == FULL.extensions


def test_renderings_say_credentials_are_generated_and_never_show_them() -> None:
    p = plan({"acme": state(extensions={"1001": EXT_1001})}, {})
    text = render_text(p, tenants={"acme": ACME})
    assert "credentials=(sensitive, generated)" in text
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in text
    assert to_json(p)["changes"][1]["credentials"] == "(sensitive: generated on apply)"
    assert change_dict(p.changes[1]) == to_json(p)["changes"][1]


OPS = PlatformAdmin("ops@pbx.example.net", "Ops")
ONCALL = PlatformAdmin("oncall@pbx.example.net", "On-call")

PLATFORM_CASES = [
    pytest.param(None, {"ops@pbx.example.net": OPS}, [], id="absent-or-invalid-file-keeps-all"),
    pytest.param({}, {}, [], id="nothing-to-do"),
    pytest.param(
        {"ops@pbx.example.net": OPS, "oncall@pbx.example.net": ONCALL},
        {},
        ["+ platform_admin oncall@pbx.example.net", "+ platform_admin ops@pbx.example.net"],
        id="creates-in-key-order",
    ),
    pytest.param(
        {"ops@pbx.example.net": replace(OPS, name="Operator")},
        {"ops@pbx.example.net": OPS, "oncall@pbx.example.net": ONCALL},
        ["~ platform_admin ops@pbx.example.net", "- platform_admin oncall@pbx.example.net"],
        id="update-then-delete",
    ),
]


@pytest.mark.parametrize(("desired", "actual", "expected"), PLATFORM_CASES)
def test_platform_plan_cases(desired: dict | None, actual: dict, expected: list[str]) -> None:
    want = None if desired is None else PlatformState(admins=desired)
    changes = plan_platform(want, PlatformState(admins=actual))
    assert lines(Plan(platform=changes)) == expected
    assert all(c.scope is Scope.PLATFORM and c.tenant == PLATFORM for c in changes)


def test_platform_changes_render_first_with_their_scope_and_count_in_the_summary() -> None:
    tenants = plan({"acme": state()}, {})
    p = replace(
        tenants, platform=plan_platform(PlatformState(admins={OPS.key: OPS}), PlatformState())
    )
    assert p.tenants() == ["acme"] and not p.empty
    text = render_text(p, tenants={"acme": ACME})
    assert text.splitlines()[:3] == [
        "platform (_platform.yaml)",
        '  + platform_admin ops@pbx.example.net (name="Ops")',
        "tenant acme (acme.example.com)",
    ]
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in text
    payload = to_json(p)
    assert [c.get("tenant") for c in payload["changes"]] == [None, "acme"]
    assert [c["scope"] for c in payload["changes"]] == ["platform", "tenant"]
    assert payload["summary"] == {"add": 2, "change": 0, "destroy": 0}


def test_guards_keep_the_platform_when_they_hold_a_tenant_back() -> None:
    p = replace(
        plan({"acme": state()}, {}),
        platform=plan_platform(PlatformState(), PlatformState(admins={OPS.key: OPS})),
    )
    held = without(p, {"acme": "held"})
    assert held.changes == () and held.platform == p.platform


# --- properties ---------------------------------------------------------------------------

specs_pairs = st.tuples(tenant_sets(max_size=3), tenant_sets(max_size=3))
settings_ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def desired_of(specs: list) -> dict[str, TenantState]:
    return {s.id: tenant_state_from_spec(s) for s in specs}


@settings_
@given(specs_pairs)
def test_applying_a_plan_converges_and_a_second_plan_is_empty(pair: tuple) -> None:
    before, after = desired_of(pair[0]), desired_of(pair[1])
    first = plan(after, before)
    result = apply_changes(before, first)
    for tenant_id, wanted in after.items():
        assert result[tenant_id] == wanted
    assert plan(after, result).empty


@settings_
@given(specs_pairs, tenant_sets(max_size=3))
def test_the_result_does_not_depend_on_the_path_taken(pair: tuple, detour: list) -> None:
    start, goal = desired_of(pair[0]), desired_of(pair[1])
    via = apply_changes(start, plan(desired_of(detour), start))
    direct = apply_changes(start, plan(goal, start))
    through = apply_changes(via, plan(goal, via))
    for tenant_id in goal:
        assert through[tenant_id] == direct[tenant_id]


@settings_
@given(specs_pairs)
def test_every_change_is_ordered_parents_before_children_then_deletes_reversed(pair: tuple) -> None:
    p = plan(desired_of(pair[1]), desired_of(pair[0]))
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    for tenant_id in p.tenants():
        changes = p.for_tenant(tenant_id).changes
        upserts = [order[c.kind] for c in changes if c.action is not Action.DELETE]
        deletes = [order[c.kind] for c in changes if c.action is Action.DELETE]
        assert upserts == sorted(upserts)
        assert deletes == sorted(deletes, reverse=True)
        assert all(c.action is not Action.DELETE for c in changes[: len(upserts)])


emails = st.sampled_from([f"{n}@pbx.example.net" for n in ("ops", "oncall", "noc", "cto")])
platform_states = st.dictionaries(emails, st.sampled_from(["Ops", "On-call", "NOC"])).map(
    PlatformState.of_admins
)


@settings_
@given(platform_states, platform_states, platform_states)
def test_platform_changes_converge_whatever_the_path(
    start: PlatformState, detour: PlatformState, goal: PlatformState
) -> None:
    direct = apply_platform_changes(start, plan_platform(goal, start))
    assert direct == goal
    assert plan_platform(goal, direct) == ()
    via = apply_platform_changes(start, plan_platform(detour, start))
    assert apply_platform_changes(via, plan_platform(goal, via)) == goal
    assert plan_platform(None, start) == (), "no platform file: nothing changes"


@settings_
@given(specs_pairs, platform_states, platform_states)
def test_a_plan_with_both_scopes_converges_each_scope_alone(
    pair: tuple, have: PlatformState, want: PlatformState
) -> None:
    before, after = desired_of(pair[0]), desired_of(pair[1])
    p = replace(plan(after, before), platform=plan_platform(want, have))
    assert {c.scope for c in p.changes} <= {Scope.TENANT}
    assert p.all_changes == p.platform + p.changes
    assert sum(p.counts().values()) == len(p.changes) + len(p.platform)
    assert apply_platform_changes(have, p.platform) == want
    result = apply_changes(before, p)
    assert all(result[t] == after[t] for t in after)


def test_a_tenant_id_renamed_in_git_is_a_rename_not_an_orphan_and_a_new_tenant() -> None:
    renamed = replace(FULL, tenant=replace(ACME, id="acme2", name="Acme Two"))
    p = plan({"acme2": renamed}, {"acme": FULL})
    assert lines(p) == ["~ tenant acme2", "~ tenant acme2"]
    first, second = p.changes
    assert first.before.id == "acme" and first.after.id == "acme2"  # type: ignore[union-attr]
    assert second.fields == {"name": ("Acme", "Acme Two")}
    assert p.renames() == {"acme2": "acme"}
    after = apply_changes({"acme": FULL}, p)
    assert set(after) == {"acme2"} and after["acme2"] == renamed
    assert plan({"acme2": renamed}, after).empty


def test_a_new_tenant_on_a_domain_still_wanted_by_its_owner_is_no_rename() -> None:
    other = state(tenant=replace(ACME, id="other"))
    p = plan({"acme": FULL, "other": other}, {"acme": FULL})
    assert p.renames() == {}
    assert lines(p)[0] == "+ tenant other"

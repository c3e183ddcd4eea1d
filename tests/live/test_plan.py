"""The live planner, table-driven, and checked for convergence against an in-memory
mod_callcenter (hypothesis): what it plans leaves runtime facts and strangers alone."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.model import Queue, TenantState, Tier
from reconciler.core.served import managed_domains
from reconciler.switch import (
    DesiredLive,
    DesiredQueue,
    LiveQueue,
    LiveState,
    LiveTier,
    desired_live,
    plan_live,
    read_live,
)
from tests.live.memory_switch import MemorySwitch, sync
from tests.live.states import (
    ACME,
    ALICE,
    ALICE_ADDED_ONLY,
    ALICE_STATUS,
    BOB,
    CC,
    DESIRED,
    FIRST_SYNC,
    GLOBEX,
    MATCHING,
    SUPPORT,
    SUPPORT_ACME,
    SUPPORT_DEFAULT,
    SUPPORT_DIGEST,
    acme_state,
    add_live,
    agent,
    stranger,
    tenant_state,
    with_agent,
    with_tier,
    without_agent,
)


@dataclass(frozen=True)
class Case:
    desired: DesiredLive
    live: LiveState
    commands: list[str]
    domains: frozenset[str] = frozenset({ACME, GLOBEX})
    digests: dict[str, str] | None = None
    unmanaged: tuple[str, ...] = ()
    unmanaged_tiers: tuple[tuple[str, str], ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


SUSPENDED = desired_live(acme_state(status="suspended"))

CASES = {
    "first sync: load, add with every owned field, initial status, tiers": Case(
        DESIRED, LiveState(), FIRST_SYNC
    ),
    "no-op when the switch matches": Case(DESIRED, MATCHING, []),
    "agent deleted by hand is added back (with its tiers)": Case(
        DESIRED,
        without_agent(MATCHING, BOB),
        [c for c in FIRST_SYNC if BOB in c],
    ),
    "contact changed by hand is set back": Case(
        DESIRED,
        with_agent(MATCHING, ALICE, contact="user/9999@acme.example.com"),
        [f"{CC} agent set contact {ALICE} user/1001@{ACME}"],
    ),
    "timing params drift: only the differing ones are set": Case(
        DESIRED,
        with_agent(MATCHING, BOB, wrap_up_time=0, no_answer_delay_time=5),
        [
            f"{CC} agent set wrap_up_time {BOB} 10",
            f"{CC} agent set no_answer_delay_time {BOB} 60",
        ],
    ),
    "type stored in another case is drift": Case(
        DESIRED,
        with_agent(MATCHING, ALICE, type="callback"),
        [f"{CC} agent set type {ALICE} Callback"],
    ),
    "runtime status and state are never touched": Case(
        DESIRED,
        with_tier(
            with_agent(
                with_agent(MATCHING, ALICE, status="On Break", state="Idle"),
                BOB,
                status="Logged Out",
                state="In a queue call",
            ),
            (SUPPORT, BOB),
            state="Offering",
        ),
        [],
    ),
    "tier level changed by hand is set back": Case(
        DESIRED,
        with_tier(MATCHING, (SUPPORT, BOB), level=7),
        [f"{CC} tier set level {SUPPORT} {BOB} 2"],
    ),
    "tier position and level both drifted": Case(
        DESIRED,
        with_tier(MATCHING, (SUPPORT, ALICE), level=3, position=4),
        [
            f"{CC} tier set level {SUPPORT} {ALICE} 1",
            f"{CC} tier set position {SUPPORT} {ALICE} 1",
        ],
    ),
    "tier deleted by hand is added back": Case(
        DESIRED,
        replace(MATCHING, tiers={(SUPPORT, ALICE): MATCHING.tiers[(SUPPORT, ALICE)]}),
        [f"{CC} tier add {SUPPORT} {BOB} 2 1"],
    ),
    "extra managed agent and tier are removed, tier first": Case(
        DESIRED,
        add_live(
            MATCHING,
            stranger(f"carol@{ACME}"),
            LiveTier(SUPPORT, f"carol@{ACME}", 1, 1, "Ready"),
        ),
        [
            f"{CC} tier del {SUPPORT} carol@{ACME}",
            f"{CC} agent del carol@{ACME}",
        ],
    ),
    "managed domain matched case-insensitively": Case(
        DESIRED,
        add_live(MATCHING, stranger("dave@ACME.Example.com")),
        [f"{CC} agent del dave@ACME.Example.com"],
    ),
    "unmanaged agents, queues and tiers are left alone and reported": Case(
        DESIRED,
        add_live(
            MATCHING,
            stranger("1000@default"),
            stranger("nodomain"),
            stranger(f"eve@{ACME}.evil.net"),
            SUPPORT_DEFAULT,
            LiveTier("support@default", "1000@default", 1, 1, "Ready"),
            LiveTier("support@default", ALICE, 1, 1, "Ready"),
            LiveTier(SUPPORT, "1000@default", 1, 1, "Ready"),
        ),
        [],
        unmanaged=("1000@default", f"eve@{ACME}.evil.net", "nodomain", "support@default"),
        unmanaged_tiers=(
            (SUPPORT, "1000@default"),
            ("support@default", "1000@default"),
            ("support@default", ALICE),
        ),
    ),
    "suspended tenant: tiers, agents and queue removed from the switch": Case(
        SUSPENDED,
        MATCHING,
        [
            f"{CC} tier del {SUPPORT} {ALICE}",
            f"{CC} tier del {SUPPORT} {BOB}",
            f"{CC} agent del {ALICE}",
            f"{CC} agent del {BOB}",
            f"{CC} queue unload {SUPPORT}",
        ],
    ),
    "queue no longer served: its tiers deleted, then unloaded": Case(
        replace(DESIRED, queues={}, tiers={}),
        MATCHING,
        [
            f"{CC} tier del {SUPPORT} {ALICE}",
            f"{CC} tier del {SUPPORT} {BOB}",
            f"{CC} queue unload {SUPPORT}",
        ],
    ),
    "domain no longer managed at all: left alone": Case(
        DesiredLive(),
        MATCHING,
        [],
        domains=frozenset({GLOBEX}),
        unmanaged=(ALICE, BOB, SUPPORT),
        unmanaged_tiers=((SUPPORT, ALICE), (SUPPORT, BOB)),
    ),
    "listed queue param drift reloads the queue": Case(
        DESIRED,
        replace(
            MATCHING,
            queues={SUPPORT: replace(MATCHING.queues[SUPPORT], params=SUPPORT_DEFAULT.params)},
        ),
        [f"{CC} queue reload {SUPPORT}"],
    ),
    "unlisted param change (announce) reloads when the loaded digest differs": Case(
        DESIRED,
        MATCHING,
        [f"{CC} queue reload {SUPPORT}"],
        digests={SUPPORT: "0123456789abcdef"},
    ),
    "loaded digest equal: no reload": Case(
        DESIRED, MATCHING, [], digests={SUPPORT: SUPPORT_DIGEST}
    ),
    "no digest recorded and listed params match: adopted without reload": Case(
        DESIRED, MATCHING, [], digests={}
    ),
    "listed values compared as the switch stores them": Case(
        DESIRED,
        replace(
            MATCHING,
            queues={
                SUPPORT: replace(
                    MATCHING.queues[SUPPORT],
                    params={**MATCHING.queues[SUPPORT].params, "tier_rules_apply": "False"},
                )
            },
        ),
        [],
    ),
    "an unset string printed as (null) is not drift": Case(
        desired_live({"acme": tenant_state("acme", ACME, queues=[Queue("support", "7000")])}),
        LiveState(
            queues={
                SUPPORT: LiveQueue(
                    SUPPORT,
                    {
                        **DesiredQueue(
                            SUPPORT, Queue("support", "7000").callcenter_params()
                        ).listed(),
                        "moh_sound": "(null)",
                        "record_template": "(null)",
                    },
                )
            }
        ),
        [],
    ),
    "initial status is not applied to an existing agent": Case(
        DESIRED, with_agent(MATCHING, ALICE, status="Logged Out"), []
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan_live(case: Case) -> None:
    plan = plan_live(case.desired, case.live, case.domains, loaded_digests=case.digests)
    assert plan.commands() == case.commands
    assert plan.unmanaged == case.unmanaged
    assert plan.unmanaged_tiers == case.unmanaged_tiers
    assert plan.empty == (not case.commands)


# --- initial status owed by a node that created the agent --------------------------------


@dataclass(frozen=True)
class OwedCase:
    live: LiveState
    commands: list[str]
    still_owed: frozenset[str]  # plan.owed_statuses: what the plan sends a status to
    owed: frozenset[str] = frozenset({ALICE})
    desired: DesiredLive = DESIRED


OWED_CASES = {
    "owed and still Logged Out: the status set is planned once": OwedCase(
        with_agent(MATCHING, ALICE, status="Logged Out"), [ALICE_STATUS], frozenset({ALICE})
    ),
    "owed after a bare add: the fields first, then the status": OwedCase(
        ALICE_ADDED_ONLY,
        [c for c in FIRST_SYNC if ALICE in c and " agent set " in c],
        frozenset({ALICE}),
    ),
    "owed but a person set another status: theirs, debt dropped": OwedCase(
        with_agent(MATCHING, ALICE, status="On Break"), [], frozenset()
    ),
    "owed but a person made her Available (On Demand): debt dropped": OwedCase(
        with_agent(MATCHING, ALICE, status="Available (On Demand)"), [], frozenset()
    ),
    "owed but removed from the spec: deleted, debt dropped": OwedCase(
        with_agent(MATCHING, ALICE, status="Logged Out"),
        [f"{CC} tier del {SUPPORT} {ALICE}", f"{CC} agent del {ALICE}"],
        frozenset(),
        desired=replace(
            DESIRED,
            agents={BOB: DESIRED.agents[BOB]},
            tiers={(SUPPORT, BOB): DESIRED.tiers[(SUPPORT, BOB)]},
        ),
    ),
    "owed but the spec no longer declares an initial status: debt dropped": OwedCase(
        with_agent(MATCHING, ALICE, status="Logged Out"),
        [],
        frozenset(),
        desired=replace(
            DESIRED,
            agents={**DESIRED.agents, ALICE: replace(DESIRED.agents[ALICE], initial_status=None)},
        ),
    ),
    "owed but the switch lost the agent: re-created, status in its own if_created": OwedCase(
        without_agent(MATCHING, ALICE),
        [c for c in FIRST_SYNC if ALICE in c],
        frozenset({ALICE}),
    ),
    "not owed: a Logged Out agent is never given a status": OwedCase(
        ALICE_ADDED_ONLY,
        [c for c in FIRST_SYNC if ALICE in c and " agent set " in c and "status" not in c],
        frozenset(),
        owed=frozenset(),
    ),
    "owed names without an initial status or unknown to the spec set nothing": OwedCase(
        with_agent(MATCHING, BOB, status="Logged Out"),
        [],
        frozenset(),
        owed=frozenset({BOB, f"ghost@{ACME}", "1000@default"}),
    ),
}


@pytest.mark.parametrize("case", OWED_CASES.values(), ids=OWED_CASES.keys())
def test_plan_live_pays_an_owed_initial_status_once(case: OwedCase) -> None:
    plan = plan_live(case.desired, case.live, {ACME}, owed_statuses=case.owed)
    assert plan.commands() == case.commands
    assert plan.owed_statuses == case.still_owed
    statuses = [c for c in plan.commands() if " agent set status " in c]
    assert statuses == ([ALICE_STATUS] if ALICE in case.still_owed else [])


def test_an_owed_status_is_an_update_that_says_why() -> None:
    plan = plan_live(DESIRED, ALICE_ADDED_ONLY, {ACME}, owed_statuses={ALICE})
    (change,) = plan.changes
    assert (change.key, change.action.verb) == (f"agent:{ALICE}", "update")
    assert change.fields[-1] == "status" and change.commands[-1] == ALICE_STATUS
    assert "owed" in change.reason


def test_values_with_blanks_are_quoted_for_the_tokenizer() -> None:
    desired = desired_live(
        {"acme": tenant_state("acme", ACME, agents=[agent("zoe", initial_status="On Break")])}
    )
    plan = plan_live(desired, LiveState(), {ACME})
    assert plan.commands()[-1] == f"{CC} agent set status zoe@{ACME} 'On Break'"


def test_plan_order_is_tier_del_then_agents_and_queues_then_tier_add() -> None:
    desired = replace(
        DESIRED,
        agents={ALICE: DESIRED.agents[ALICE]},
        tiers={(SUPPORT, ALICE): DESIRED.tiers[(SUPPORT, ALICE)]},
    )
    live = add_live(
        without_agent(replace(MATCHING, queues={}), ALICE),
        LiveQueue(f"old@{ACME}", SUPPORT_ACME.params),
        LiveTier(f"old@{ACME}", BOB, 1, 1, "Ready"),
    )
    plan = plan_live(desired, live, {ACME})
    assert [(c.kind.value, c.action.verb, c.phase) for c in plan.changes] == [
        ("tier", "delete", 0),
        ("tier", "delete", 0),
        ("agent", "delete", 1),
        ("queue", "delete", 1),
        ("queue", "create", 1),
        ("agent", "create", 1),
        ("tier", "create", 2),
    ]
    assert plan.changes[-1].requires == (f"queue:{SUPPORT}", f"agent:{ALICE}")


def test_plan_renders_as_json() -> None:
    data = plan_live(DESIRED, LiveState(), {ACME}).to_dict()
    assert data["summary"] == {"add": 5, "change": 0, "destroy": 0}
    assert data["changes"][0] == {
        "kind": "queue",
        "action": "create",
        "name": SUPPORT,
        "commands": [f"{CC} queue load {SUPPORT}"],
        "reason": "not loaded",
    }


# --- convergence -----------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "d"])
STATUS = st.sampled_from([None, "Available", "On Break", "Logged Out"])


@st.composite
def tenant_states(draw: st.DrawFn, tenant_id: str, domain: str) -> TenantState:
    agent_names = draw(st.sets(NAMES, max_size=4))
    agents = [
        agent(
            n,
            domain,
            extension=str(draw(st.integers(1000, 1003))),
            type=draw(st.sampled_from(["Callback", "uuid-standby"])),
            wrap_up_time=draw(st.integers(0, 3)),
            initial_status=draw(STATUS),
        )
        for n in sorted(agent_names)
    ]
    queue_names = draw(st.sets(st.sampled_from(["q1", "q2"]), max_size=2))
    queues = [
        Queue(
            name=q,
            number="7000",
            strategy=draw(st.sampled_from(["ring-all", "longest-idle-agent"])),
            announce_frequency=draw(st.integers(0, 2)),
            tier_rules_apply=draw(st.booleans()),
        )
        for q in sorted(queue_names)
    ]
    tiers = [
        Tier(q, a, draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        for q in sorted(queue_names)
        for a in sorted(agent_names)
        if draw(st.booleans())
    ]
    status = draw(st.sampled_from(["active", "active", "suspended"]))
    return tenant_state(tenant_id, domain, status=status, agents=agents, queues=queues, tiers=tiers)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, TenantState], dict[str, TenantState], int]:
    before = {
        "acme": draw(tenant_states("acme", ACME)),
        "globex": draw(tenant_states("globex", GLOBEX)),
    }
    after = {
        "acme": draw(tenant_states("acme", ACME)),
        "globex": draw(tenant_states("globex", GLOBEX)),
    }
    return before, after, draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_planned_commands_converge_and_leave_runtime_and_strangers_alone(
    scenario: tuple[dict[str, TenantState], dict[str, TenantState], int],
) -> None:
    before, after, seed = scenario
    rng = random.Random(seed)

    async def run() -> None:
        first = desired_live(before)
        switch = MemorySwitch(dict(first.queues))
        _, digests = await sync(switch, first, managed_domains(before))
        # People and the switch act: statuses change, hand edits, strangers appear.
        for a in switch.agents.values():
            a["status"] = rng.choice(["Available", "On Break", "Logged Out"])
            a["state"] = rng.choice(["Waiting", "Idle", "In a queue call"])
        for t in switch.tiers.values():
            t["state"] = rng.choice(["Ready", "Standby", "Offering"])
        if switch.agents and rng.random() < 0.5:
            victim = rng.choice(sorted(switch.agents))
            switch.agents[victim]["contact"] = "user/0@x"
            switch.agents[victim]["type"] = str(switch.agents[victim]["type"]).lower()
        if switch.tiers and rng.random() < 0.5:
            switch.tiers[rng.choice(sorted(switch.tiers))]["level"] = 99
        if switch.agents and rng.random() < 0.3:
            await switch.api(f"{CC} agent del {rng.choice(sorted(switch.agents))}")
        await switch.api(f"{CC} agent add 1000@default Callback")
        switch.served["support@default"] = DesiredQueue("support@default", {"strategy": "ring-all"})
        await switch.api(f"{CC} queue load support@default")
        await switch.api(f"{CC} tier add support@default 1000@default 1 1")
        strangers = {("support@default", "1000@default")}
        for queue in first.queues:  # a stranger put into one of our queues by hand
            await switch.api(f"{CC} tier add {queue} 1000@default 1 1")
            strangers.add((queue, "1000@default"))
        runtime = {n: (a["status"], a["state"]) for n, a in switch.agents.items()}
        tier_states = {k: t["state"] for k, t in switch.tiers.items()}

        second = desired_live(after)
        switch.served = {**second.queues, "support@default": switch.served["support@default"]}
        _, digests = await sync(switch, second, managed_domains(after), digests)
        switch.log.clear()
        again, _ = await sync(switch, second, managed_domains(after), digests)
        assert again.empty, again.commands()
        assert switch.log == [f"{CC} agent list", f"{CC} tier list", f"{CC} queue list"]

        live = await read_live(switch.api)
        assert set(live.agents) == {*second.agents, "1000@default"}
        assert set(live.queues) == {*second.queues, "support@default"}
        assert set(live.tiers) == {*second.tiers, *strangers}
        for want in second.agents.values():  # an oracle independent of the planner
            have = live.agents[want.name]
            assert (have.type, have.contact, have.wrap_up_time, have.busy_delay_time) == (
                want.type,
                want.contact,
                want.wrap_up_time,
                want.busy_delay_time,
            )
        for want_tier in second.tiers.values():
            have_tier = live.tiers[want_tier.key]
            assert (have_tier.level, have_tier.position) == (want_tier.level, want_tier.position)
        for want_queue in second.queues.values():
            assert dict(live.queues[want_queue.name].params) == want_queue.listed()
        for name, a in live.agents.items():
            if name in runtime:  # an agent that survived keeps its runtime status and state
                assert (a.status, a.state) == runtime[name]
        for key, t in live.tiers.items():
            if key in tier_states:
                assert t.state == tier_states[key]
        for q in second.queues.values():  # announce-* changes reached the switch too
            assert digests[q.name] == q.digest
            assert switch.loaded_from[q.name] == q.digest

    asyncio.run(run())

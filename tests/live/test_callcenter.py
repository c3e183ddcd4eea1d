"""mod_callcenter, pure parts: listings parsed exactly as captured, the live planner table-driven
and checked for convergence against an in-memory mod_callcenter, and apply's reply handling."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.model import Agent, Queue, Tenant, TenantState, Tier
from reconciler.core.served import managed_domains
from reconciler.live.callcenter import (
    CallcenterError,
    DesiredLive,
    DesiredQueue,
    LiveAgent,
    LivePlan,
    LiveQueue,
    LiveState,
    LiveTier,
    apply_live,
    desired_live,
    live_state,
    next_digests,
    next_owed_statuses,
    parse_agent_list,
    parse_queue_list,
    parse_tier_list,
    plan_live,
    read_live,
)
from reconciler.live.esl import EslConnectionError

AGENT_HEADER = (
    "name|instance_id|uuid|type|contact|status|state|max_no_answer|wrap_up_time|"
    "reject_delay_time|busy_delay_time|no_answer_delay_time|last_bridge_start|last_bridge_end|"
    "last_offered_call|last_status_change|no_answer_count|calls_answered|talk_time|ready_time|"
    "external_calls_count"
)
QUEUE_HEADER = (
    "name|strategy|moh_sound|time_base_score|tier_rules_apply|tier_rule_wait_second|"
    "tier_rule_wait_multiply_level|tier_rule_no_agent_no_wait|discard_abandoned_after|"
    "abandoned_resume_allowed|max_wait_time|max_wait_time_with_no_agent|"
    "max_wait_time_with_no_agent_time_reached|record_template|calls_answered|calls_abandoned|"
    "ring_progressively_delay|skip_agents_with_external_calls|agent_no_answer_status"
)
TIER_HEADER = "queue|agent|state|level|position"


def body(transcripts: Path, name: str) -> str:
    """The api/response body of one captured exchange, byte for byte."""
    recv = json.loads((transcripts / "esl" / f"{name}.json").read_text())["recv"]
    head, _, rest = recv.partition("\n\n")
    length = int(dict(line.split(": ", 1) for line in head.splitlines())["Content-Length"])
    return rest[:length]


# --- parsers ---------------------------------------------------------------------------

ALICE_1001 = LiveAgent(
    name="1001@acme.example.com",
    type="Callback",
    contact="user/1001@acme.example.com",
    max_no_answer=3,
    wrap_up_time=10,
    reject_delay_time=10,
    busy_delay_time=60,
    no_answer_delay_time=30,
    status="Available",
    state="Waiting",
)
FRESH_1002 = LiveAgent(
    name="1002@acme.example.com",
    type="callback",
    contact="",
    max_no_answer=0,
    wrap_up_time=0,
    reject_delay_time=0,
    busy_delay_time=0,
    no_answer_delay_time=0,
    status="Logged Out",
    state="Waiting",
)


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("agent_list_empty", []),
        ("agent_list_name", [ALICE_1001]),
        ("agent_list_after_del", [ALICE_1001]),
        ("agent_list_two", [ALICE_1001, FRESH_1002]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_agent_list_transcripts_parse_exactly(
    transcripts: Path, transcript: str, expected: list[LiveAgent]
) -> None:
    assert parse_agent_list(body(transcripts, transcript)) == expected


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("tier_list_empty", []),
        (
            "tier_list_rows",
            [
                LiveTier("support@default", "1002@acme.example.com", 1, 1, "Ready"),
                LiveTier("support@default", "1001@acme.example.com", 1, 2, "Standby"),
            ],
        ),
        (
            "xmlcurl_tier_list",
            [LiveTier("support@acme.example.com", "1001@acme.example.com", 1, 1, "Ready")],
        ),
        (
            "xmlcurl_tier_list_queue_gone",
            [LiveTier("support@acme.example.com", "1001@acme.example.com", 1, 1, "Ready")],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_tier_list_transcripts_parse_exactly(
    transcripts: Path, transcript: str, expected: list[LiveTier]
) -> None:
    assert parse_tier_list(body(transcripts, transcript)) == expected


SUPPORT_DEFAULT = LiveQueue(
    name="support@default",
    params={
        "strategy": "longest-idle-agent",
        "moh_sound": "local_stream://moh",
        "time_base_score": "system",
        "tier_rules_apply": "false",
        "tier_rule_wait_second": "300",
        "tier_rule_wait_multiply_level": "true",
        "tier_rule_no_agent_no_wait": "false",
        "discard_abandoned_after": "60",
        "abandoned_resume_allowed": "false",
        "max_wait_time": "0",
        "max_wait_time_with_no_agent": "0",
        "max_wait_time_with_no_agent_time_reached": "5",
        "record_template": "",
        "ring_progressively_delay": "0",
        "skip_agents_with_external_calls": "true",
        "agent_no_answer_status": "On Break",
    },
)
SUPPORT_ACME = LiveQueue(
    name="support@acme.example.com",
    params={
        **SUPPORT_DEFAULT.params,
        "time_base_score": "queue",
        "tier_rule_wait_second": "0",
        "tier_rule_wait_multiply_level": "false",
        "tier_rule_no_agent_no_wait": "true",
        "max_wait_time": "120",
    },
)


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("queue_list_empty", []),
        ("queue_list", [SUPPORT_DEFAULT]),
        ("xmlcurl_queue_list", [SUPPORT_ACME, SUPPORT_DEFAULT]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_queue_list_transcripts_parse_exactly(
    transcripts: Path, transcript: str, expected: list[LiveQueue]
) -> None:
    assert parse_queue_list(body(transcripts, transcript)) == expected


def test_served_queue_listing_matches_what_we_would_serve(transcripts: Path) -> None:
    """The captured served queue (strategy, moh-sound, max-wait-time 120, the rest defaults)
    lists exactly what ``DesiredQueue.listed`` predicts: no reload loop on a real switch."""
    queue = Queue(name="support", number="7000", moh_sound="local_stream://moh", max_wait_time=120)
    want = DesiredQueue("support@acme.example.com", queue.callcenter_params())
    (have,) = [
        q for q in parse_queue_list(body(transcripts, "xmlcurl_queue_list")) if q.name == want.name
    ]
    assert dict(have.params) == want.listed()


@pytest.mark.parametrize(
    "transcript",
    ["agent_list_two", "tier_list_rows", "xmlcurl_queue_list"],
)
def test_columns_are_read_by_header_not_position(transcripts: Path, transcript: str) -> None:
    text = body(transcripts, transcript)
    lines = text.split("\n")
    rows = [line.split("|") for line in lines[:-2]]
    order = list(range(len(rows[0])))
    random.Random(7).shuffle(order)
    shuffled = "\n".join("|".join(row[i] for i in order) for row in rows) + "\n+OK\n"
    parse = {"a": parse_agent_list, "t": parse_tier_list, "x": parse_queue_list}[transcript[0]]
    assert shuffled != text
    assert parse(shuffled) == parse(text)


def test_first_column_moved_still_parses(transcripts: Path) -> None:
    """An upgraded schema may not start with ``name``: the header is still recognized."""
    text = body(transcripts, "agent_list_two")
    rows = [line.split("|") for line in text.split("\n")[:-2]]
    moved = "\n".join("|".join(row[1:] + row[:1]) for row in rows) + "\n+OK\n"
    assert parse_agent_list(moved) == parse_agent_list(text)


@pytest.mark.parametrize(
    "transcript",
    ["cc_single_token", "cc_unknown_target", "api_unknown_command", "cc_no_args"],
)
def test_error_replies_raise_with_the_text(transcripts: Path, transcript: str) -> None:
    text = body(transcripts, transcript)
    with pytest.raises(CallcenterError) as info:
        parse_agent_list(text)
    assert text.strip().splitlines()[0] in str(info.value)
    assert info.value.reply == text


@pytest.mark.parametrize("text", ["", "+OK\n", "+OK", "\n+OK\n", "+OK\r\n"], ids=repr)
def test_empty_output_is_an_empty_list(text: str) -> None:
    assert parse_agent_list(text) == []
    assert parse_tier_list(text) == []
    assert parse_queue_list(text) == []


def test_row_with_a_pipe_in_a_value_is_reported_not_guessed() -> None:
    text = f"{TIER_HEADER}\nq@a|x|y@a|Ready|1|1\nq@a|b@a|Ready|1|2\n+OK\n"
    state = live_state("+OK\n", text, f"{QUEUE_HEADER}\n+OK\n")
    assert list(state.tiers) == [("q@a", "b@a")]
    assert state.unparsed == ("q@a|x|y@a|Ready|1|1",)


def test_unreadable_output_raises() -> None:
    with pytest.raises(CallcenterError, match="header"):
        parse_tier_list("queue|agent|level\nq|a|1\n+OK\n")
    with pytest.raises(CallcenterError, match="no header"):
        parse_tier_list("1\n")
    with pytest.raises(CallcenterError, match="not a number"):
        parse_tier_list(f"{TIER_HEADER}\nq|a|Ready|one|1\n+OK\n")


# --- builders for the planner ----------------------------------------------------------

ACME = "acme.example.com"
GLOBEX = "globex.example.com"


def tenant_state(
    tenant_id: str,
    domain: str,
    *,
    status: str = "active",
    agents: Iterable[Agent] = (),
    queues: Iterable[Queue] = (),
    tiers: Iterable[Tier] = (),
) -> TenantState:
    return TenantState(
        tenant=Tenant(id=tenant_id, domain=domain, name=tenant_id.title(), status=status),
        agents={a.key: a for a in agents},
        queues={q.key: q for q in queues},
        tiers={t.key: t for t in tiers},
    )


def agent(name: str, domain: str = ACME, **kw: object) -> Agent:
    ext = kw.pop("extension", "1001")
    return Agent(
        name=name,
        type=str(kw.pop("type", "Callback")),
        contact=str(kw.pop("contact", f"user/{ext}@{domain}")),
        extension=str(ext),
        **kw,  # type: ignore[arg-type]
    )


def acme_state(**tenant_kw: object) -> dict[str, TenantState]:
    return {
        "acme": tenant_state(
            "acme",
            ACME,
            agents=[
                agent("alice", extension="1001", initial_status="Available"),
                agent("bob", extension="1002"),
            ],
            queues=[Queue(name="support", number="7000", moh_sound="local_stream://moh")],
            tiers=[
                Tier("support", "alice", 1, 1),
                Tier("support", "bob", 2, 1),
            ],
            **tenant_kw,  # type: ignore[arg-type]
        )
    }


def as_live(desired: DesiredLive, **extra: object) -> LiveState:
    """The live state of a switch that already matches ``desired``, with runtime values."""
    agents = {
        a.name: LiveAgent(
            name=a.name,
            type=a.type,
            contact=a.contact,
            max_no_answer=a.max_no_answer,
            wrap_up_time=a.wrap_up_time,
            reject_delay_time=a.reject_delay_time,
            busy_delay_time=a.busy_delay_time,
            no_answer_delay_time=a.no_answer_delay_time,
            status="Available",
            state="Waiting",
        )
        for a in desired.agents.values()
    }
    tiers = {
        t.key: LiveTier(t.queue, t.agent, t.level, t.position, "Ready")
        for t in desired.tiers.values()
    }
    queues = {q.name: LiveQueue(q.name, q.listed(), 3, 1) for q in desired.queues.values()}
    return LiveState(agents=agents, tiers=tiers, queues=queues, **extra)  # type: ignore[arg-type]


def with_agent(live: LiveState, name: str, **changes: object) -> LiveState:
    agents = dict(live.agents)
    agents[name] = replace(agents[name], **changes)  # type: ignore[arg-type]
    return replace(live, agents=agents)


def without_agent(live: LiveState, name: str) -> LiveState:
    return replace(
        live,
        agents={k: v for k, v in live.agents.items() if k != name},
        tiers={k: v for k, v in live.tiers.items() if k[1] != name},
    )


def with_tier(live: LiveState, key: tuple[str, str], **changes: object) -> LiveState:
    tiers = dict(live.tiers)
    tiers[key] = replace(tiers[key], **changes)  # type: ignore[arg-type]
    return replace(live, tiers=tiers)


def add_live(live: LiveState, *items: LiveAgent | LiveTier | LiveQueue) -> LiveState:
    agents, tiers, queues = dict(live.agents), dict(live.tiers), dict(live.queues)
    for item in items:
        if isinstance(item, LiveAgent):
            agents[item.name] = item
        elif isinstance(item, LiveTier):
            tiers[item.key] = item
        else:
            queues[item.name] = item
    return replace(live, agents=agents, tiers=tiers, queues=queues)


def stranger(name: str) -> LiveAgent:
    return replace(FRESH_1002, name=name)


ALICE = f"alice@{ACME}"
BOB = f"bob@{ACME}"
SUPPORT = f"support@{ACME}"
CC = "callcenter_config"
DESIRED = desired_live(acme_state())
MATCHING = as_live(DESIRED)
SUPPORT_DIGEST = DESIRED.queues[SUPPORT].digest

FIRST_SYNC = [
    f"{CC} queue load {SUPPORT}",
    f"{CC} agent add {ALICE} Callback",
    f"{CC} agent set contact {ALICE} user/1001@{ACME}",
    f"{CC} agent set max_no_answer {ALICE} 3",
    f"{CC} agent set wrap_up_time {ALICE} 10",
    f"{CC} agent set reject_delay_time {ALICE} 10",
    f"{CC} agent set busy_delay_time {ALICE} 60",
    f"{CC} agent set no_answer_delay_time {ALICE} 60",
    f"{CC} agent set status {ALICE} Available",
    f"{CC} agent add {BOB} Callback",
    f"{CC} agent set contact {BOB} user/1002@{ACME}",
    f"{CC} agent set max_no_answer {BOB} 3",
    f"{CC} agent set wrap_up_time {BOB} 10",
    f"{CC} agent set reject_delay_time {BOB} 10",
    f"{CC} agent set busy_delay_time {BOB} 60",
    f"{CC} agent set no_answer_delay_time {BOB} 60",
    f"{CC} tier add {SUPPORT} {ALICE} 1 1",
    f"{CC} tier add {SUPPORT} {BOB} 2 1",
]


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

ALICE_STATUS = f"{CC} agent set status {ALICE} Available"
ALICE_ADDED_ONLY = with_agent(  # `agent add` ran, the connection dropped before any set
    MATCHING,
    ALICE,
    contact="",
    max_no_answer=0,
    wrap_up_time=0,
    reject_delay_time=0,
    busy_delay_time=0,
    no_answer_delay_time=0,
    status="Logged Out",
)


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


@dataclass(frozen=True)
class ApplyOwedCase:
    """One pass's apply, then what the node still owes. ``start``: empty (the plan creates
    alice), ``logged_out`` (synced, alice back to Logged Out, a debt passed in), ``taken``
    (someone adds alice between our listing and our add). ``cut``: the command at which the
    connection dies (``ran``: the switch executed it, the reply was lost)."""

    start: str
    expected: frozenset[str]
    cut: str | None = None
    ran: bool = False
    fail: dict[str, str] = field(default_factory=dict)


ALICE_ADD = f"{CC} agent add {ALICE} Callback"
ALICE_CONTACT = f"{CC} agent set contact {ALICE} user/1001@{ACME}"
OWED = frozenset({ALICE})
NOTHING: frozenset[str] = frozenset()

APPLY_OWED_CASES = {
    "create confirmed to the status set: nothing owed": ApplyOwedCase("empty", NOTHING),
    "create cut after the add: owed": ApplyOwedCase("empty", OWED, cut=ALICE_CONTACT),
    "create cut at the add, which ran: owed (the next pass checks it exists)": ApplyOwedCase(
        "empty", OWED, cut=ALICE_ADD, ran=True
    ),
    "create cut at the add, which never ran: owed, dropped next pass (no agent)": ApplyOwedCase(
        "empty", OWED, cut=ALICE_ADD
    ),
    "create cut at the status set: owed (the next pass sees if it ran)": ApplyOwedCase(
        "empty", OWED, cut=ALICE_STATUS, ran=True
    ),
    "create whose add was refused: nothing owed": ApplyOwedCase(
        "empty", NOTHING, fail={ALICE_ADD: "-ERR Agent type invalid!\n"}
    ),
    "create whose set failed after the add: owed": ApplyOwedCase(
        "empty", OWED, fail={ALICE_CONTACT: "-ERR Agent not found!\n"}
    ),
    "create that found the agent there: not ours, nothing owed": ApplyOwedCase("taken", NOTHING),
    "debt paid: the status set answered +OK, dropped": ApplyOwedCase("logged_out", NOTHING),
    "debt refused: still owed": ApplyOwedCase(
        "logged_out", OWED, fail={ALICE_STATUS: "-ERR Agent not found!\n"}
    ),
    "debt cut at the status set: still owed": ApplyOwedCase("logged_out", OWED, cut=ALICE_STATUS),
}


@pytest.mark.parametrize("case", APPLY_OWED_CASES.values(), ids=APPLY_OWED_CASES.keys())
async def test_next_owed_statuses_after_apply(case: ApplyOwedCase) -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    live, owed = LiveState(), NOTHING
    if case.start == "logged_out":
        await sync(switch, DESIRED, {ACME})
        switch.agents[ALICE]["status"] = "Logged Out"
        live, owed = await read_live(switch.api), OWED
    elif case.start == "taken":
        await switch.api(f"{CC} agent add {ALICE} Callback")
    plan = plan_live(DESIRED, live, {ACME}, owed_statuses=owed)
    assert ALICE in plan.owed_statuses
    switch.fail.update(case.fail)
    switch.log.clear()
    down = False

    async def api(command: str) -> str:
        nonlocal down
        if down or command == case.cut:
            if not down and case.ran:
                await switch.api(command)
            down = True
            raise EslConnectionError("cut")
        return await switch.api(command)

    report = await apply_live(api, plan)
    assert next_owed_statuses(plan, report) == case.expected
    assert report.ok == (case.cut is None and not case.fail)


def test_a_plan_not_applied_keeps_the_debts_it_carries_and_creates_none() -> None:
    update = plan_live(DESIRED, ALICE_ADDED_ONLY, {ACME}, owed_statuses={ALICE})
    create = plan_live(DESIRED, LiveState(), {ACME})
    assert next_owed_statuses(update, None) == OWED
    assert next_owed_statuses(create, None) == NOTHING
    assert next_owed_statuses(LivePlan(), None) == NOTHING


async def test_a_status_lost_to_a_cut_is_paid_once_on_the_next_pass() -> None:
    """Pass 1 dies right after alice's add; pass 2 (the resync) sets her fields and her
    initial status; pass 3 has nothing to do and owes nothing."""
    switch = MemorySwitch(dict(DESIRED.queues))
    plan = plan_live(DESIRED, LiveState(), {ACME})

    async def cut_after_add(command: str) -> str:
        if command.startswith(f"{CC} agent set") and ALICE in command:
            raise EslConnectionError("cut")
        return await switch.api(command)

    report = await apply_live(cut_after_add, plan, concurrency=1)
    owed = next_owed_statuses(plan, report)
    assert owed == OWED and switch.agents[ALICE]["status"] == "Logged Out"

    resync = plan_live(DESIRED, await read_live(switch.api), {ACME}, owed_statuses=owed)
    assert ALICE_STATUS in resync.commands()
    report = await apply_live(switch.api, resync)
    assert report.ok, report.errors()
    owed = next_owed_statuses(resync, report)
    assert owed == NOTHING and switch.agents[ALICE]["status"] == "Available"

    switch.agents[ALICE]["status"] = "Logged Out"  # a person logs her out: hers to decide
    again = plan_live(DESIRED, await read_live(switch.api), {ACME}, owed_statuses=owed)
    assert again.empty and next_owed_statuses(again, None) == NOTHING


def test_values_with_blanks_are_quoted_for_the_tokenizer() -> None:
    desired = desired_live(
        {"acme": tenant_state("acme", ACME, agents=[agent("zoe", initial_status="On Break")])}
    )
    plan = plan_live(desired, LiveState(), {ACME})
    assert plan.commands()[-1] == f"{CC} agent set status zoe@{ACME} 'On Break'"


def test_managed_domains_include_every_tenant_served_or_not() -> None:
    state = {
        **acme_state(status="suspended"),
        "globex": tenant_state("globex", "Globex.Example.com"),
    }
    assert managed_domains(state) == {ACME, GLOBEX}
    assert desired_live(state) == DesiredLive()


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


# --- an in-memory mod_callcenter -------------------------------------------------------


def tokenize(line: str) -> list[str]:
    """switch_separate_string as mod_callcenter uses it: blanks split, '...' groups, \\ escapes."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            current.append(line[i + 1])
            started = True
            i += 2
            continue
        if c == "'":
            quoted = not quoted
            started = True
        elif c == " " and not quoted:
            if started:
                tokens.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if started:
        tokens.append("".join(current))
    return tokens


class MemorySwitch:
    """mod_callcenter reduced to what the planner relies on; replies as captured."""

    def __init__(self, served: dict[str, DesiredQueue]) -> None:
        self.served = served
        self.agents: dict[str, dict[str, object]] = {}
        self.tiers: dict[tuple[str, str], dict[str, object]] = {}
        self.queues: dict[str, dict[str, str]] = {}
        self.loaded_from: dict[str, str] = {}  # queue -> digest of the config it was loaded with
        self.log: list[str] = []
        self.fail: dict[str, str] = {}

    def lazy_queue(self, name: str) -> bool:
        if name not in self.queues and name in self.served:
            self.queues[name] = self.served[name].listed()
            self.loaded_from[name] = self.served[name].digest
        return name in self.queues

    async def api(self, command: str) -> str:
        self.log.append(command)
        await asyncio.sleep(0)
        if command in self.fail:
            return self.fail[command]
        t = tokenize(command)
        assert t[0] == "callcenter_config"
        target, action, args = t[1], t[2], t[3:]
        if (target, action) == ("agent", "list"):
            return self.agent_list()
        if (target, action) == ("tier", "list"):
            return self.tier_list()
        if (target, action) == ("queue", "list"):
            rows = [
                "|".join(
                    [name, *(p[c] for c in QUEUE_HEADER.split("|")[1:14]), "0", "0"]
                    + [p[c] for c in QUEUE_HEADER.split("|")[16:]]
                )
                for name, p in self.queues.items()
            ]
            return "\n".join([QUEUE_HEADER, *rows, "+OK", ""])
        if (target, action) == ("agent", "add"):
            name, typ = args
            if typ.lower() not in ("callback", "uuid-standby"):
                return "-ERR Agent type invalid!\n"
            if name in self.agents:
                return "-ERR Agent already exist!\n"
            self.agents[name] = {
                "type": typ,
                "contact": "",
                "status": "Logged Out",
                "state": "Waiting",
                **dict.fromkeys(
                    [
                        "max_no_answer",
                        "wrap_up_time",
                        "reject_delay_time",
                        "busy_delay_time",
                        "no_answer_delay_time",
                    ],
                    0,
                ),
            }
            return "+OK\n"
        if (target, action) == ("agent", "del"):
            self.agents.pop(args[0], None)
            self.tiers = {k: v for k, v in self.tiers.items() if k[1] != args[0]}
            return "+OK\n"
        if (target, action) == ("agent", "set"):
            key, name, value = args
            if name not in self.agents:
                return "-ERR Agent not found!\n"
            numeric = key.endswith(("_time", "max_no_answer"))
            self.agents[name][key] = int(value) if numeric else value
            return "+OK\n"
        if (target, action) == ("tier", "add"):
            queue, name, level, position = args
            if not self.lazy_queue(queue):
                return "-ERR Queue not found!\n"
            if name not in self.agents:
                return "-ERR Agent not found!\n"
            if (queue, name) in self.tiers:
                return "-ERR Tier already exist!\n"
            self.tiers[(queue, name)] = {
                "level": int(level),
                "position": int(position),
                "state": "Ready",
            }
            return "+OK\n"
        if (target, action) == ("tier", "set"):
            key, queue, name, value = args
            if (queue, name) not in self.tiers:
                return "-ERR Unknown Error!\n"
            if not self.lazy_queue(queue):
                return "-ERR Agent not found!\n"
            self.tiers[(queue, name)][key] = int(value)
            return "+OK\n"
        if (target, action) == ("tier", "del"):
            self.tiers.pop((args[0], args[1]), None)
            return "+OK\n"
        if (target, action) == ("queue", "load"):
            return "+OK\n" if self.lazy_queue(args[0]) else "-ERR Invalid Queue not found!\n"
        if (target, action) == ("queue", "unload"):
            self.queues.pop(args[0], None)
            return "+OK\n"
        if (target, action) == ("queue", "reload"):
            self.queues.pop(args[0], None)
            return "+OK\n" if self.lazy_queue(args[0]) else "-ERR Invalid Queue not found!\n"
        return "-ERR no reply\n"

    def agent_list(self) -> str:
        if not self.agents:
            return "+OK\n"
        rows = []
        for name, a in self.agents.items():
            cells = dict.fromkeys(AGENT_HEADER.split("|"), "0")
            cells.update({k: str(v) for k, v in a.items()}, name=name, instance_id="single_box")
            cells["uuid"] = ""
            rows.append("|".join(cells.values()))
        return "\n".join([AGENT_HEADER, *rows, "+OK", ""])

    def tier_list(self) -> str:
        if not self.tiers:
            return "+OK\n"
        rows = [
            f"{q}|{a}|{t['state']}|{t['level']}|{t['position']}" for (q, a), t in self.tiers.items()
        ]
        return "\n".join([TIER_HEADER, *rows, "+OK", ""])

    def mutations(self) -> list[str]:
        return [c for c in self.log if not c.endswith(" list")]


async def sync(
    switch: MemorySwitch,
    desired: DesiredLive,
    domains: Iterable[str],
    digests: dict[str, str] | None = None,
) -> tuple[LivePlan, dict[str, str]]:
    plan = plan_live(desired, await read_live(switch.api), domains, loaded_digests=digests)
    report = await apply_live(switch.api, plan)
    assert report.ok, report.errors()
    assert next_owed_statuses(plan, report) == frozenset(), "a clean apply owes nothing"
    return plan, next_digests(digests or {}, plan, report)


async def test_read_live_and_apply_first_sync_then_nothing() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    _, digests = await sync(switch, DESIRED, {ACME})
    sent = switch.mutations()
    assert sorted(sent) == sorted(FIRST_SYNC)
    for name in (ALICE, BOB):  # pipelined across agents, in order within one
        assert [c for c in sent if f" {name} " in c] == [c for c in FIRST_SYNC if f" {name} " in c]
    assert sent.index(f"{CC} tier add {SUPPORT} {BOB} 2 1") > sent.index(
        f"{CC} queue load {SUPPORT}"
    )
    assert digests == {SUPPORT: SUPPORT_DIGEST}
    assert switch.agents[ALICE]["status"] == "Available"
    assert switch.agents[BOB]["status"] == "Logged Out"
    switch.log.clear()
    again, _ = await sync(switch, DESIRED, {ACME}, digests)
    assert again.empty
    assert switch.mutations() == []


async def test_add_that_finds_the_agent_there_sets_fields_but_not_status() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    plan = plan_live(DESIRED, LiveState(), {ACME})
    # Someone adds alice between our listing and our add, and puts her on break.
    await switch.api(f"{CC} agent add {ALICE} callback")
    await switch.api(f"{CC} agent set status {ALICE} 'On Break'")
    report = await apply_live(switch.api, plan)
    assert report.ok
    (alice,) = [r for r in report.results if r.change.key == f"agent:{ALICE}"]
    assert alice.existed
    assert switch.agents[ALICE]["status"] == "On Break"
    assert switch.agents[ALICE]["contact"] == f"user/1001@{ACME}"
    assert switch.agents[ALICE]["type"] == "callback"  # fixed by the next pass
    assert plan_live(DESIRED, await read_live(switch.api), {ACME}).commands() == [
        f"{CC} agent set type {ALICE} Callback"
    ]


async def test_tier_add_that_finds_the_tier_sets_level_and_position() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    await sync(switch, DESIRED, {ACME})
    plan = plan_live(DESIRED, without_agent(as_live(DESIRED), BOB), {ACME})
    switch.tiers[(SUPPORT, BOB)]["level"] = 9
    report = await apply_live(switch.api, plan)
    assert report.ok
    assert switch.tiers[(SUPPORT, BOB)]["level"] == 2


async def test_failures_are_recorded_and_dependants_skipped_others_go_on() -> None:
    switch = MemorySwitch({})  # callcenter.conf does not serve the queue
    plan = plan_live(DESIRED, LiveState(), {ACME})
    report = await apply_live(switch.api, plan)
    assert not report.ok
    assert [r.change.key for r in report.failed] == [f"queue:{SUPPORT}"]
    assert "-ERR Invalid Queue not found!" in report.errors()[0]
    assert {r.change.key for r in report.skipped} == {
        f"tier:{SUPPORT} {ALICE}",
        f"tier:{SUPPORT} {BOB}",
    }
    assert set(switch.agents) == {ALICE, BOB}  # independent changes went through
    assert next_digests({}, plan, report) == {}


async def test_an_unexpected_reply_fails_the_change_and_stops_its_commands() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    switch.fail[f"{CC} agent set contact {ALICE} user/1001@{ACME}"] = "-ERR Agent not found!\n"
    report = await apply_live(switch.api, plan_live(DESIRED, LiveState(), {ACME}))
    (failed,) = report.failed
    assert failed.change.key == f"agent:{ALICE}"
    assert f"{CC} agent set max_no_answer {ALICE} 3" not in switch.log
    assert f"{CC} agent set status {ALICE} Available" not in switch.log
    # the tier needing alice is skipped; bob's goes on
    assert [r.change.key for r in report.skipped] == [f"tier:{SUPPORT} {ALICE}"]
    assert (SUPPORT, BOB) in switch.tiers


async def test_lost_connection_skips_the_rest() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    calls = 0

    async def api(command: str) -> str:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise EslConnectionError("gone")
        return await switch.api(command)

    report = await apply_live(api, plan_live(DESIRED, LiveState(), {ACME}), concurrency=1)
    assert not report.ok
    assert len(report.skipped) >= 2
    assert all("connection lost" in e for e in report.errors())
    assert calls <= 5


async def test_independent_changes_are_pipelined() -> None:
    """All changes of a phase are in flight together: 100 agents cost ~ 7 round trips."""
    desired = desired_live(
        {"acme": tenant_state("acme", ACME, agents=[agent(f"a{i}") for i in range(100)])}
    )
    in_flight = peak = 0

    async def api(command: str) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "+OK\n"

    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await apply_live(api, plan_live(desired, LiveState(), {ACME}))
    assert report.ok and report.commands_sent == 700
    assert peak == 100
    assert loop.time() - start < 1.0


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


def test_a_domain_claimed_twice_is_not_pushed_like_it_is_not_served() -> None:
    """The snapshot serves neither tenant of a clashing domain; pushing their agents and
    queues would mix two tenants in one namespace and load queues nobody serves."""
    state = {
        **acme_state(),
        "acme2": tenant_state("acme2", ACME.upper(), agents=[agent("alice")]),
        "pub": tenant_state("pub", "public", agents=[agent("x", "public")]),
    }
    assert desired_live(state) == DesiredLive()
    assert managed_domains(state) == {ACME, "public"}

"""Desired and live states the planner and apply tests are built from: the acme tenant,
a switch that matches it, and the listing records the transcripts parse into."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from reconciler.core.model import Agent, Queue, Tenant, TenantState, Tier
from reconciler.switch import (
    DesiredLive,
    LiveAgent,
    LiveQueue,
    LiveState,
    LiveTier,
    desired_live,
)

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

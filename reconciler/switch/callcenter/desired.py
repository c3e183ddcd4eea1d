"""What every switch should hold: the queues, agents and tiers of served tenants, as
FreeSWITCH names them, and which names are ours at all.

Ownership. The reconciler owns, for names ending in ``@<managed domain>``: which queues are
loaded and with which params, which agents exist with their type, contact and timing params,
and which tiers exist with their level and position. Status and state are runtime facts
owned by people and by the switch (an agent's ``initial_status`` is set once, by the node
that created it). Everything outside the managed domains is left alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.model import State, fs_name
from reconciler.core.served import served_queue_params, served_tenants
from reconciler.switch.callcenter.listings import QUEUE_LISTED_PARAMS


@dataclass(frozen=True, slots=True)
class DesiredAgent:
    name: str  # fs name
    type: str
    contact: str
    max_no_answer: int
    wrap_up_time: int
    reject_delay_time: int
    busy_delay_time: int
    no_answer_delay_time: int
    initial_status: str | None = None


@dataclass(frozen=True)
class DesiredQueue:
    """``params``: as served in callcenter.conf (dash names); ``digest`` covers all of them,
    including the ones ``queue list`` does not show (announce-sound, announce-frequency)."""

    name: str  # fs name
    params: Mapping[str, str]

    @property
    def digest(self) -> str:
        return queue_digest(self.params)

    def listed(self) -> dict[str, str]:
        """What ``queue list`` should print for the configuration columns."""
        return {k: self.params.get(k.replace("_", "-"), "") for k in QUEUE_LISTED_PARAMS}


@dataclass(frozen=True, slots=True)
class DesiredTier:
    queue: str  # fs name
    agent: str  # fs name
    level: int
    position: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.agent)


@dataclass(frozen=True)
class DesiredLive:
    agents: Mapping[str, DesiredAgent] = field(default_factory=dict)
    queues: Mapping[str, DesiredQueue] = field(default_factory=dict)
    tiers: Mapping[tuple[str, str], DesiredTier] = field(default_factory=dict)


def queue_digest(params: Mapping[str, str]) -> str:
    """Short stable hash of a queue's served params: tells a reload is due when a param the
    listing cannot show changed."""
    blob = json.dumps(sorted(params.items()), separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def desired_live(state: State, roots: AudioRoots = DEFAULT_ROOTS) -> DesiredLive:
    """What every switch should hold: the queues, agents and tiers of served tenants.

    Served means what the snapshot serves (``served_tenants``): pushing anything else would
    load a queue that callcenter.conf refuses, or mix two tenants in one namespace."""
    agents: dict[str, DesiredAgent] = {}
    queues: dict[str, DesiredQueue] = {}
    tiers: dict[tuple[str, str], DesiredTier] = {}
    for domain, tenant_state in served_tenants(state).by_domain.items():
        for a in tenant_state.agents.values():
            name = fs_name(a.name, domain)
            agents[name] = DesiredAgent(
                name=name,
                type=a.type,
                contact=a.contact,
                max_no_answer=a.max_no_answer,
                wrap_up_time=a.wrap_up_time,
                reject_delay_time=a.reject_delay_time,
                busy_delay_time=a.busy_delay_time,
                no_answer_delay_time=a.no_answer_delay_time,
                initial_status=a.initial_status,
            )
        for q in tenant_state.queues.values():
            name = fs_name(q.name, domain)
            try:  # as callcenter.conf serves it; a queue it cannot serve is not pushed
                params = served_queue_params(q, tenant_state.tenant.id, domain, roots)
            except ValueError:
                continue
            queues[name] = DesiredQueue(name=name, params=params)
        for t in tenant_state.tiers.values():
            tier = DesiredTier(
                queue=fs_name(t.queue, domain),
                agent=fs_name(t.agent, domain),
                level=t.level,
                position=t.position,
            )
            tiers[tier.key] = tier
    return DesiredLive(agents=agents, queues=queues, tiers=tiers)


def domain_of(name: str) -> str:
    """The lowercase domain of a FreeSWITCH ``name@domain`` ("" when there is none)."""
    local, at, domain = name.rpartition("@")
    return domain.lower() if at and local else ""


def is_managed(name: str, domains: Collection[str]) -> bool:
    """``name@domain`` with domain one of ours (compared case-insensitively, as DNS does)."""
    domain = domain_of(name)
    return bool(domain) and domain in domains

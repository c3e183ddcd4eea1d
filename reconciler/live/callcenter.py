"""mod_callcenter knowledge: parse its listings, decide the commands that turn the live state of
one switch into the declared one, and send them.

Neighbours: ``model`` (records, ``fs_name``), ``plan`` (``Action``), ``esl`` (``quote_arg`` and
the connection errors). Deciding (``desired_live``, ``plan_live``, ``next_digests``,
``next_owed_statuses``) is pure;
doing (``read_live``, ``apply_live``) takes an ``api`` callable ``async (command) -> body`` so the
same code runs on an ``EslConnection``, an ``EslClient`` or a test double.

Ownership. The reconciler owns, for names ending in ``@<managed domain>``: which queues are
loaded and with which params, which agents exist with their type, contact and timing params,
and which tiers exist with their level and position. Status and state (agents and tiers) are
runtime facts owned by people and by the switch: never set, except an agent's
``initial_status`` once, after this reconciler created it (right after the add, or on a later
pass while that status is still owed: see ``plan_live``). Everything outside the managed
domains is left alone and reported as unmanaged. A tier is touched only when both its queue
and its agent are managed.

Exceptions::

    CallcenterError          a listing answered -ERR/-USAGE or could not be read
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.model import Kind, State, fs_name
from reconciler.core.plan import Action
from reconciler.core.served import served_tenants
from reconciler.live.esl import EslConnectionError, quote_arg

log = logging.getLogger(__name__)

Api = Callable[[str], Awaitable[str]]
"""``async (command) -> body``: one ``api`` command, the reply body exactly as sent."""

CC = "callcenter_config"

# Agent params this reconciler owns, as ``agent set`` spells them (type is given at add).
AGENT_NUMBER_FIELDS: tuple[str, ...] = (
    "max_no_answer",
    "wrap_up_time",
    "reject_delay_time",
    "busy_delay_time",
    "no_answer_delay_time",
)
AGENT_SET_FIELDS: tuple[str, ...] = ("contact", *AGENT_NUMBER_FIELDS)

# `queue list` columns that show configuration (the rest are the name and runtime counters).
QUEUE_LISTED_PARAMS: tuple[str, ...] = (
    "strategy",
    "moh_sound",
    "time_base_score",
    "tier_rules_apply",
    "tier_rule_wait_second",
    "tier_rule_wait_multiply_level",
    "tier_rule_no_agent_no_wait",
    "discard_abandoned_after",
    "abandoned_resume_allowed",
    "max_wait_time",
    "max_wait_time_with_no_agent",
    "max_wait_time_with_no_agent_time_reached",
    "record_template",
    "ring_progressively_delay",
    "skip_agents_with_external_calls",
    "agent_no_answer_status",
)
_QUEUE_COUNTERS = ("calls_answered", "calls_abandoned")
_CLAMP_MAX = 86400  # mod_callcenter clamps integer queue params to 0..86400
FRESH_AGENT_STATUS = "Logged Out"  # the status `agent add` gives a new agent


class CallcenterError(Exception):
    """mod_callcenter refused a command or answered something unreadable."""

    def __init__(self, message: str, *, command: str | None = None, reply: str | None = None):
        super().__init__(message)
        self.command = command
        self.reply = reply


# --- live records and parsers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveAgent:
    """An agent as ``agent list`` shows it; NULL columns read as ``""`` (text) or 0 (numbers)."""

    name: str
    type: str
    contact: str
    max_no_answer: int
    wrap_up_time: int
    reject_delay_time: int
    busy_delay_time: int
    no_answer_delay_time: int
    status: str
    state: str


@dataclass(frozen=True, slots=True)
class LiveTier:
    queue: str
    agent: str
    level: int
    position: int
    state: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.agent)


@dataclass(frozen=True)
class LiveQueue:
    """A loaded queue: ``params`` holds the configuration columns of ``queue list`` (underscore
    names, text as printed); the counters are runtime and restart on reload."""

    name: str
    params: Mapping[str, str]
    calls_answered: int = 0
    calls_abandoned: int = 0


@dataclass(frozen=True)
class LiveState:
    """What one switch holds. ``unparsed``: rows whose field count did not match the header
    (a ``|`` or newline inside a value); reported, never acted upon."""

    agents: Mapping[str, LiveAgent] = field(default_factory=dict)
    tiers: Mapping[tuple[str, str], LiveTier] = field(default_factory=dict)
    queues: Mapping[str, LiveQueue] = field(default_factory=dict)
    unparsed: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Table:
    rows: list[dict[str, str]]
    unparsed: list[str]


def _table(text: str, first_column: str, required: Iterable[str], what: str) -> _Table:
    """Rows of a ``|``-separated listing, keyed by its header line.

    Tolerates: empty output (``+OK`` only, or nothing), a trailing ``+OK``, CRLF. An ``-ERR`` or
    ``-USAGE`` reply raises. The header is found by its first column name, so column order is
    free (an upgraded database can order columns differently)."""
    stripped = text.strip()
    if stripped.startswith(("-ERR", "-USAGE")):
        raise CallcenterError(f"{what}: {stripped.splitlines()[0]}", reply=text)
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and lines[-1].strip() in ("", "+OK"):
        lines.pop()
    if not lines:
        return _Table([], [])
    header = lines[0].split("|")
    if first_column not in header:
        raise CallcenterError(f"{what}: no header line, got {lines[0]!r}", reply=text)
    missing = [c for c in required if c not in header]
    if missing:
        raise CallcenterError(f"{what}: header lacks {', '.join(missing)}", reply=text)
    rows: list[dict[str, str]] = []
    unparsed: list[str] = []
    for line in lines[1:]:
        cells = line.split("|")
        if len(cells) != len(header):
            unparsed.append(line)
            continue
        rows.append(dict(zip(header, cells, strict=True)))
    return _Table(rows, unparsed)


def _int(value: str, what: str) -> int:
    if value == "":
        return 0
    try:
        return int(value)
    except ValueError as exc:
        raise CallcenterError(f"{what}: {value!r} is not a number") from exc


_AGENT_COLUMNS = ("name", "type", "contact", "status", "state", *AGENT_NUMBER_FIELDS)


def parse_agent_list(text: str) -> list[LiveAgent]:
    """``callcenter_config agent list`` body -> agents, in listing order."""
    return _agents(_table(text, "name", _AGENT_COLUMNS, "agent list"))


def _agents(table: _Table) -> list[LiveAgent]:
    return [
        LiveAgent(
            name=row["name"],
            type=row["type"],
            contact=row["contact"],
            status=row["status"],
            state=row["state"],
            **{f: _int(row[f], f"agent list {f}") for f in AGENT_NUMBER_FIELDS},
        )
        for row in table.rows
    ]


_TIER_COLUMNS = ("queue", "agent", "state", "level", "position")


def parse_tier_list(text: str) -> list[LiveTier]:
    """``callcenter_config tier list`` body -> tiers, in listing order."""
    return _tiers(_table(text, "queue", _TIER_COLUMNS, "tier list"))


def _tiers(table: _Table) -> list[LiveTier]:
    return [
        LiveTier(
            queue=row["queue"],
            agent=row["agent"],
            level=_int(row["level"], "tier list level"),
            position=_int(row["position"], "tier list position"),
            state=row["state"],
        )
        for row in table.rows
    ]


def parse_queue_list(text: str) -> list[LiveQueue]:
    """``callcenter_config queue list`` body -> loaded queues, in listing (hash) order.

    Only the configuration columns the header carries land in ``params``: a column an older
    or newer module does not print is simply not compared."""
    return _queues(_table(text, "name", ("name",), "queue list"))


def _queues(table: _Table) -> list[LiveQueue]:
    return [
        LiveQueue(
            name=row["name"],
            params={k: row[k] for k in QUEUE_LISTED_PARAMS if k in row},
            calls_answered=_int(row.get("calls_answered", ""), "queue list calls_answered"),
            calls_abandoned=_int(row.get("calls_abandoned", ""), "queue list calls_abandoned"),
        )
        for row in table.rows
    ]


def live_state(agent_list: str, tier_list: str, queue_list: str) -> LiveState:
    """The three listing bodies -> one ``LiveState``."""
    agents = _table(agent_list, "name", _AGENT_COLUMNS, "agent list")
    tiers = _table(tier_list, "queue", _TIER_COLUMNS, "tier list")
    queues = _table(queue_list, "name", ("name",), "queue list")
    return LiveState(
        agents={a.name: a for a in _agents(agents)},
        tiers={t.key: t for t in _tiers(tiers)},
        queues={q.name: q for q in _queues(queues)},
        unparsed=tuple(agents.unparsed + tiers.unparsed + queues.unparsed),
    )


# --- desired live state ----------------------------------------------------------------


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


def desired_live(state: State) -> DesiredLive:
    """What every switch should hold: the queues, agents and tiers of served tenants.

    Served means what the snapshot serves: an active tenant whose domain no other active
    tenant claims and is not the reserved ``public`` context. Anything else would push a
    queue that callcenter.conf refuses (or two tenants' agents into one namespace)."""
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
            queues[name] = DesiredQueue(name=name, params=q.callcenter_params())
        for t in tenant_state.tiers.values():
            tier = DesiredTier(
                queue=fs_name(t.queue, domain),
                agent=fs_name(t.agent, domain),
                level=t.level,
                position=t.position,
            )
            tiers[tier.key] = tier
    return DesiredLive(agents=agents, queues=queues, tiers=tiers)


def is_managed(name: str, domains: Collection[str]) -> bool:
    """``name@domain`` with domain one of ours (compared case-insensitively, as DNS does)."""
    local, at, domain = name.rpartition("@")
    return bool(at and local and domain.lower() in domains)


# --- the live plan ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveChange:
    """One object to change on a switch, with the exact commands that do it.

    ``commands`` run in order. When the first is an add, ``if_created`` run only if it
    created the object (the initial status) and ``if_existed`` only if the switch said it
    already existed (the add lost a race: the object is then brought in line by sets).
    ``fields``: what differs (UPDATE) or what is set (CREATE). ``requires``: keys of CREATE
    changes in the same plan this one depends on; if one failed, this one is skipped.
    ``reason`` is for humans; apply never branches on it.
    """

    kind: Kind
    action: Action
    name: str
    commands: tuple[str, ...]
    if_created: tuple[str, ...] = ()
    if_existed: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    reason: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.name}"

    @property
    def phase(self) -> int:
        """Barrier group: 0 tier del; 1 agents and queues; 2 tier add/set. Changes within a
        phase are independent and run concurrently."""
        if self.kind is Kind.TIER:
            return 0 if self.action is Action.DELETE else 2
        return 1

    def all_commands(self) -> tuple[str, ...]:
        """Every command this change may send (if_existed excluded: it is a fallback)."""
        return self.commands + self.if_created

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "action": self.action.verb,
            "name": self.name,
            "commands": list(self.all_commands()),
        }
        if self.fields:
            out["fields"] = list(self.fields)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class LivePlan:
    """Ordered, deterministic changes for one switch.

    ``queue_digests``: the param digest of each desired queue, recorded by the caller once the
    queue is known to be loaded with it (see ``next_digests``). ``owed_statuses``: the agents
    this plan sends an initial status to (in a CREATE's ``if_created``, or an UPDATE paying a
    debt); what is still owed once it ran is ``next_owed_statuses``. ``unmanaged_*``: live
    names outside the managed domains, left alone."""

    changes: tuple[LiveChange, ...] = ()
    queue_digests: Mapping[str, str] = field(default_factory=dict)
    owed_statuses: frozenset[str] = frozenset()
    unmanaged_agents: tuple[str, ...] = ()
    unmanaged_queues: tuple[str, ...] = ()
    unmanaged_tiers: tuple[tuple[str, str], ...] = ()
    unparsed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def unmanaged(self) -> tuple[str, ...]:
        """Unmanaged agent and queue names, sorted."""
        return tuple(sorted({*self.unmanaged_agents, *self.unmanaged_queues}))

    def commands(self) -> list[str]:
        return [c for change in self.changes for c in change.all_commands()]

    def counts(self) -> dict[Action, int]:
        counts = dict.fromkeys(Action, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "changes": [c.to_dict() for c in self.changes],
            "unmanaged": {
                "agents": list(self.unmanaged_agents),
                "queues": list(self.unmanaged_queues),
                "tiers": [f"{q} {a}" for q, a in self.unmanaged_tiers],
            },
            "summary": {
                "add": counts[Action.CREATE],
                "change": counts[Action.UPDATE],
                "destroy": counts[Action.DELETE],
            },
        }


def _cmd(target: str, action: str, *args: object) -> str:
    """One callcenter_config command; every argument passes through the tokenizer quoting."""
    return " ".join([CC, target, action, *(quote_arg(str(a)) for a in args)])


def _agent_set(key: str, name: str, value: object) -> str:
    return " ".join([CC, "agent", "set", key, quote_arg(name), quote_arg(str(value))])


def _tier_set(key: str, queue: str, agent: str, value: int) -> str:
    return " ".join([CC, "tier", "set", key, quote_arg(queue), quote_arg(agent), str(value)])


def _norm_listed(column: str, value: str) -> str:
    """Compare listed values as the switch stores them: integers clamped, booleans lowercase,
    an unset string empty (1.10 prints NULL as empty; a printf of NULL would say "(null)",
    which must not read as drift and reload the queue on every pass)."""
    text = value.strip()
    if text == "(null)":
        return ""
    if text.lstrip("-").isdigit():
        return str(min(max(int(text), 0), _CLAMP_MAX))
    if text.lower() in ("true", "false"):
        return text.lower()
    return text


def _queue_drift(want: DesiredQueue, have: LiveQueue) -> list[str]:
    listed = want.listed()
    return [
        column
        for column in QUEUE_LISTED_PARAMS
        if column in have.params
        and _norm_listed(column, have.params[column]) != _norm_listed(column, listed[column])
    ]


def _agent_drift(want: DesiredAgent, have: LiveAgent) -> list[str]:
    return [f for f in ("type", *AGENT_SET_FIELDS) if getattr(want, f) != getattr(have, f)]


def plan_live(
    desired: DesiredLive,
    live: LiveState,
    managed_domains: Collection[str],
    *,
    loaded_digests: Mapping[str, str] | None = None,
    owed_statuses: Collection[str] | None = None,
) -> LivePlan:
    """Changes that bring ``live`` in line with ``desired`` for names in ``managed_domains``.

    Queue params: a loaded queue is reloaded when a listed configuration column differs, or
    when ``loaded_digests`` (the digest this node last loaded or reloaded it with) differs
    from the desired digest; that catches announce-sound/-frequency, which the listing does
    not show. A loaded queue with no recorded digest (the reconciler restarted, or just met
    the node) and matching listed columns is adopted without a reload: a reload restarts the
    queue's counters, and the node loads queues from the same callcenter.conf at startup.

    Initial status: an agent's status belongs to people, so it is set only for an agent this
    node created. A CREATE carries the ``initial_status`` set in ``if_created`` (sent only if
    the add created the agent). When that set was not confirmed (the connection dropped after
    the add, or with the add's reply, so it may have run; or a set before it failed), the
    caller keeps the agent in ``owed_statuses`` (see ``next_owed_statuses``) and later passes
    pay the debt, the reconnect's resync first: for an owed agent the switch holds,
    the status set is planned (an UPDATE, after any field sets) only while its live status is
    still the fresh ``Logged Out`` and the spec still declares an ``initial_status``.
    Otherwise the debt is dropped: a person changed the status (it is theirs now), the agent
    left the spec, or the switch lost it (it is re-created with its own ``if_created``).
    Agents not in ``owed_statuses`` never get a status from an UPDATE.

    Order (also the apply order, by phase): tier del; agent del, queue unload, queue load and
    reload, agent add and set; tier add and set. Within each group, sorted by name.
    """
    domains = frozenset(d.lower() for d in managed_domains)
    digests = loaded_digests or {}
    owed_in = frozenset(owed_statuses or ())
    owed_out: set[str] = set()

    def managed(name: str) -> bool:
        return is_managed(name, domains)

    tier_dels: list[LiveChange] = []
    agent_dels: list[LiveChange] = []
    queue_unloads: list[LiveChange] = []
    queue_loads: list[LiveChange] = []
    agent_upserts: list[LiveChange] = []
    tier_upserts: list[LiveChange] = []

    # Queues.
    for name in sorted(desired.queues):
        want = desired.queues[name]
        have = live.queues.get(name)
        if have is None:
            queue_loads.append(
                LiveChange(
                    Kind.QUEUE,
                    Action.CREATE,
                    name,
                    (_cmd("queue", "load", name),),
                    reason="not loaded",
                )
            )
            continue
        drift = _queue_drift(want, have)
        recorded = digests.get(name)
        if drift:
            reason = "listed params differ"
        elif recorded is not None and recorded != want.digest:
            drift = ["digest"]
            reason = "served params changed since last load (announce-* are not listed)"
        else:
            continue
        queue_loads.append(
            LiveChange(
                Kind.QUEUE,
                Action.UPDATE,
                name,
                (_cmd("queue", "reload", name),),
                fields=tuple(drift),
                reason=reason,
            )
        )
    for name in sorted(live.queues):
        if name in desired.queues or not managed(name):
            continue
        queue_unloads.append(
            LiveChange(
                Kind.QUEUE,
                Action.DELETE,
                name,
                (_cmd("queue", "unload", name),),
                reason="no longer served",
            )
        )

    # Agents.
    for name in sorted(desired.agents):
        want_agent = desired.agents[name]
        have_agent = live.agents.get(name)
        if have_agent is None:
            sets = tuple(_agent_set(f, name, getattr(want_agent, f)) for f in AGENT_SET_FIELDS)
            status = (
                (_agent_set("status", name, want_agent.initial_status),)
                if want_agent.initial_status
                else ()
            )
            if status:
                owed_out.add(name)
            agent_upserts.append(
                LiveChange(
                    Kind.AGENT,
                    Action.CREATE,
                    name,
                    (_cmd("agent", "add", name, want_agent.type), *sets),
                    if_created=status,
                    fields=("type", *AGENT_SET_FIELDS),
                )
            )
            continue
        changed = _agent_drift(want_agent, have_agent)
        commands = [_agent_set(f, name, getattr(want_agent, f)) for f in changed]
        reason = ""
        if (
            name in owed_in
            and want_agent.initial_status
            and have_agent.status == FRESH_AGENT_STATUS
        ):
            owed_out.add(name)
            changed.append("status")
            commands.append(_agent_set("status", name, want_agent.initial_status))
            reason = "initial status still owed: this node created the agent, the set was lost"
        if changed:
            agent_upserts.append(
                LiveChange(
                    Kind.AGENT,
                    Action.UPDATE,
                    name,
                    tuple(commands),
                    fields=tuple(changed),
                    reason=reason,
                )
            )
    for name in sorted(live.agents):
        if name in desired.agents or not managed(name):
            continue
        agent_dels.append(
            LiveChange(Kind.AGENT, Action.DELETE, name, (_cmd("agent", "del", name),))
        )

    # Tiers: owned only when both ends are managed.
    created = {c.key for c in queue_loads + agent_upserts if c.action is Action.CREATE}
    for key in sorted(desired.tiers):
        want_tier = desired.tiers[key]
        have_tier = live.tiers.get(key)
        queue, agent = key
        label = f"{queue} {agent}"
        if have_tier is None:
            requires = tuple(k for k in (f"queue:{queue}", f"agent:{agent}") if k in created)
            tier_upserts.append(
                LiveChange(
                    Kind.TIER,
                    Action.CREATE,
                    label,
                    (_cmd("tier", "add", queue, agent, want_tier.level, want_tier.position),),
                    if_existed=(
                        _tier_set("level", queue, agent, want_tier.level),
                        _tier_set("position", queue, agent, want_tier.position),
                    ),
                    fields=("level", "position"),
                    requires=requires,
                )
            )
            continue
        changed = [
            f for f in ("level", "position") if getattr(want_tier, f) != getattr(have_tier, f)
        ]
        if changed:
            tier_upserts.append(
                LiveChange(
                    Kind.TIER,
                    Action.UPDATE,
                    label,
                    tuple(_tier_set(f, queue, agent, getattr(want_tier, f)) for f in changed),
                    fields=tuple(changed),
                )
            )
    unmanaged_tiers: list[tuple[str, str]] = []
    for key in sorted(live.tiers):
        queue, agent = key
        if not (managed(queue) and managed(agent)):
            unmanaged_tiers.append(key)
            continue
        if key in desired.tiers:
            continue
        tier_dels.append(
            LiveChange(
                Kind.TIER,
                Action.DELETE,
                f"{queue} {agent}",
                (_cmd("tier", "del", queue, agent),),
            )
        )

    return LivePlan(
        changes=(
            *tier_dels,
            *agent_dels,
            *queue_unloads,
            *queue_loads,
            *agent_upserts,
            *tier_upserts,
        ),
        queue_digests={name: q.digest for name, q in sorted(desired.queues.items())},
        owed_statuses=frozenset(owed_out),
        unmanaged_agents=tuple(n for n in sorted(live.agents) if not managed(n)),
        unmanaged_queues=tuple(n for n in sorted(live.queues) if not managed(n)),
        unmanaged_tiers=tuple(unmanaged_tiers),
        unparsed=live.unparsed,
    )


# --- execution -------------------------------------------------------------------------


async def read_live(api: Api) -> LiveState:
    """The three listings, requested together (pipelined on one connection)."""
    agents, tiers, queues = await asyncio.gather(
        api(f"{CC} agent list"), api(f"{CC} tier list"), api(f"{CC} queue list")
    )
    return live_state(agents, tiers, queues)


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """``ok``: every command answered ``+OK``. ``existed``: the add found the object already
    there (drift; repaired by the sets). ``skipped``: not attempted (reason in ``error``).
    ``created``: the add of a CREATE answered ``+OK``. ``add_unconfirmed``: the add went out
    (or was being sent) and no reply came (the connection dropped, a timeout): it may have
    created the object."""

    change: LiveChange
    ok: bool
    error: str | None = None
    existed: bool = False
    skipped: bool = False
    sent: int = 0
    created: bool = False
    add_unconfirmed: bool = False


@dataclass(frozen=True)
class LiveApplyReport:
    results: tuple[ChangeResult, ...] = ()

    @property
    def applied(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> tuple[ChangeResult, ...]:
        return tuple(r for r in self.results if not r.ok and not r.skipped)

    @property
    def skipped(self) -> tuple[ChangeResult, ...]:
        return tuple(r for r in self.results if r.skipped)

    @property
    def commands_sent(self) -> int:
        return sum(r.sent for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def errors(self) -> list[str]:
        return [f"{r.change.key}: {r.error}" for r in self.results if not r.ok]

    def succeeded(self, key: str) -> bool:
        return any(r.ok and r.change.key == key for r in self.results)


_EXISTS = ("-ERR Agent already exist!", "-ERR Tier already exist!")


class _ConnectionLost(Exception):
    """The connection died under a change; carries what is known of its add."""

    def __init__(self, message: str, *, created: bool, add_unconfirmed: bool) -> None:
        super().__init__(message)
        self.created = created
        self.add_unconfirmed = add_unconfirmed


async def _run_change(api: Api, change: LiveChange) -> ChangeResult:
    sent = 0
    existed = created = False
    commands = list(change.commands)
    i = 0
    while i < len(commands):
        command = commands[i]
        is_add = i == 0 and change.action is Action.CREATE
        try:
            reply = await api(command)
        except EslConnectionError as exc:
            raise _ConnectionLost(str(exc), created=created, add_unconfirmed=is_add) from exc
        except Exception as exc:  # a timeout or protocol error: this change failed
            return ChangeResult(
                change,
                ok=False,
                error=f"{command}: {exc!r}",
                sent=sent + 1,
                created=created,
                add_unconfirmed=is_add,
            )
        sent += 1
        text = reply.strip()
        if is_add and text in _EXISTS:
            existed = True
            commands += change.if_existed
        elif not text.startswith("+OK"):
            return ChangeResult(
                change,
                ok=False,
                error=f"{command}: {text or '(empty reply)'}",
                sent=sent,
                created=created,
            )
        elif is_add:
            created = True
        if i == len(change.commands) - 1 and not existed:
            commands += change.if_created
        i += 1
    return ChangeResult(change, ok=True, existed=existed, sent=sent, created=created)


async def apply_live(api: Api, plan: LivePlan, *, concurrency: int = 256) -> LiveApplyReport:
    """Send the plan, phase by phase; changes within a phase are issued concurrently (the ESL
    connection pipelines them and matches replies in order). Every reply is checked; a
    failure is recorded and independent changes go on; a change whose prerequisite failed is
    skipped. A lost connection skips everything not yet sent: the node resyncs on reconnect.
    """
    results: dict[str, ChangeResult] = {}
    limit = asyncio.Semaphore(max(1, concurrency))
    lost: list[str] = []

    async def run(change: LiveChange) -> ChangeResult:
        if lost:
            return ChangeResult(change, ok=False, skipped=True, error=f"connection lost: {lost[0]}")
        failed = [k for k in change.requires if k in results and not results[k].ok]
        if failed:
            return ChangeResult(
                change, ok=False, skipped=True, error=f"prerequisite failed: {', '.join(failed)}"
            )
        async with limit:
            if lost:
                return ChangeResult(
                    change, ok=False, skipped=True, error=f"connection lost: {lost[0]}"
                )
            try:
                return await _run_change(api, change)
            except _ConnectionLost as exc:
                lost.append(str(exc))
                return ChangeResult(
                    change,
                    ok=False,
                    error=f"connection lost: {exc}",
                    created=exc.created,
                    add_unconfirmed=exc.add_unconfirmed,
                )

    for phase in sorted({c.phase for c in plan.changes}):
        batch = [c for c in plan.changes if c.phase == phase]
        for result in await asyncio.gather(*(run(c) for c in batch)):
            results[result.change.key] = result
            if not result.ok:
                log.warning("live change failed: %s: %s", result.change.key, result.error)
    return LiveApplyReport(tuple(results[c.key] for c in plan.changes))


def next_digests(
    previous: Mapping[str, str], plan: LivePlan, report: LiveApplyReport | None
) -> dict[str, str]:
    """The digests a node should remember after applying ``plan``: a queue keeps the desired
    digest when it was loaded or reloaded successfully or needed nothing; a failed load or
    reload forgets it (next pass decides again); unloaded queues are dropped."""
    outcome = {r.change.key: r.ok for r in report.results} if report is not None else {}
    touched = {c.key for c in plan.changes if c.kind is Kind.QUEUE}
    out: dict[str, str] = {}
    for name, digest in plan.queue_digests.items():
        key = f"{Kind.QUEUE.value}:{name}"
        if key not in touched or outcome.get(key, False):
            out[name] = digest
        elif name in previous and key not in outcome:
            out[name] = previous[name]
    return out


def next_owed_statuses(plan: LivePlan, report: LiveApplyReport | None) -> frozenset[str]:
    """The agents whose initial status a node still owes after applying ``plan`` (pass them to
    the next ``plan_live`` as ``owed_statuses``).

    An agent in ``plan.owed_statuses`` stays owed unless its status set answered ``+OK``: a
    CREATE whose add created the agent (or may have: the reply was lost) but did not finish;
    an UPDATE paying the debt that failed, was skipped or was not applied. A CREATE whose add
    failed, found the agent already there, or never went out owes nothing: the agent is not
    this node's creation (or does not exist, and the next CREATE carries its own status).
    Every debt the planner did not carry into ``plan`` is dropped (see ``plan_live``)."""
    results = {r.change.key: r for r in report.results} if report is not None else {}
    owed: set[str] = set()
    for change in plan.changes:
        if change.kind is not Kind.AGENT or change.name not in plan.owed_statuses:
            continue
        result = results.get(change.key)
        if change.action is Action.UPDATE:
            if result is None or not result.ok:
                owed.add(change.name)
        elif (
            change.action is Action.CREATE
            and result is not None
            and not result.ok
            and (result.created or result.add_unconfirmed)
        ):
            owed.add(change.name)
    return frozenset(owed)

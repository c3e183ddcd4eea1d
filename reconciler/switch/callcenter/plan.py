"""The live plan: the changes, with their exact commands, that turn what one switch holds
into what it should hold. Pure: values in, a value out; nothing here touches a socket.

Per kind, one function decides: queues (load, reload, unload), agents (add with every owned
field, set what drifted, delete; an owed initial status), tiers (add, set level/position,
delete; owned only when both ends are managed). ``plan_live`` orders them into phases.
A change whose command could not be built safely (``commands.UnsafeArgument``) is kept in
the plan as *refused*: it carries the reason and no command, and apply reports it failed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from reconciler.core.model import Kind
from reconciler.core.plan import Action, summary_counts
from reconciler.switch.callcenter import commands as cmd
from reconciler.switch.callcenter.desired import DesiredAgent, DesiredLive, DesiredQueue, is_managed
from reconciler.switch.callcenter.listings import (
    AGENT_SET_FIELDS,
    QUEUE_LISTED_PARAMS,
    LiveAgent,
    LiveQueue,
    LiveState,
)
from reconciler.switch.errors import UnsafeArgument

_CLAMP_MAX = 86400  # mod_callcenter clamps integer queue params to 0..86400


@dataclass(frozen=True, slots=True)
class LiveChange:
    """One object to change on a switch, with the exact commands that do it.

    ``commands`` run in order. When the first is an add, ``if_created`` run only if it
    created the object (the initial status) and ``if_existed`` only if the switch said it
    already existed (the add lost a race: the object is then brought in line by sets).
    ``fields``: what differs (UPDATE) or what is set (CREATE). ``requires``: keys of CREATE
    changes in the same plan this one depends on; if one failed, this one is skipped.
    ``refused``: why no command could be built safely (then ``commands`` is empty and the
    change fails without sending anything). ``reason`` is for humans; apply never branches
    on it.
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
    refused: str = ""

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
        if self.refused:
            out["refused"] = self.refused
        return out


@dataclass(frozen=True)
class LivePlan:
    """Ordered, deterministic changes for one switch.

    ``queue_digests``: the param digest of each desired queue, recorded by the caller once the
    queue is known to be loaded with it (see ``apply.next_digests``). ``owed_statuses``: the
    agents this plan sends an initial status to (in a CREATE's ``if_created``, or an UPDATE
    paying a debt); what is still owed once it ran is ``apply.next_owed_statuses``.
    ``unmanaged_*``: live names outside the managed domains, left alone."""

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

    @property
    def refused(self) -> tuple[LiveChange, ...]:
        return tuple(c for c in self.changes if c.refused)

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
            "summary": summary_counts(counts),
        }


@dataclass(frozen=True)
class _Commands:
    commands: tuple[str, ...]
    if_created: tuple[str, ...] = ()
    if_existed: tuple[str, ...] = ()


def _change(
    kind: Kind,
    action: Action,
    name: str,
    build: Callable[[], _Commands],
    *,
    fields: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    reason: str = "",
) -> LiveChange:
    """A change whose commands ``build`` spells; refused (no command) if one is unsafe."""
    try:
        built = build()
    except UnsafeArgument as exc:
        return LiveChange(
            kind,
            action,
            name,
            (),
            fields=fields,
            requires=requires,
            reason=reason,
            refused=str(exc),
        )
    return LiveChange(
        kind,
        action,
        name,
        built.commands,
        built.if_created,
        built.if_existed,
        fields=fields,
        requires=requires,
        reason=reason,
    )


# --- queues ----------------------------------------------------------------------------


def _norm_listed(value: str) -> str:
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
        and _norm_listed(have.params[column]) != _norm_listed(listed[column])
    ]


def _queue_change(
    want: DesiredQueue, have: LiveQueue | None, recorded: str | None
) -> LiveChange | None:
    name = want.name
    if have is None:
        return _change(
            Kind.QUEUE,
            Action.CREATE,
            name,
            lambda: _Commands((cmd.queue_command("load", name),)),
            reason="not loaded",
        )
    drift = _queue_drift(want, have)
    if drift:
        reason = "listed params differ"
    elif recorded is not None and recorded != want.digest:
        drift = ["digest"]
        reason = "served params changed since last load (announce-* are not listed)"
    else:
        return None
    return _change(
        Kind.QUEUE,
        Action.UPDATE,
        name,
        lambda: _Commands((cmd.queue_command("reload", name),)),
        fields=tuple(drift),
        reason=reason,
    )


def plan_queues(
    desired: DesiredLive,
    live: LiveState,
    managed: Callable[[str], bool],
    digests: Mapping[str, str],
) -> tuple[list[LiveChange], list[LiveChange]]:
    """(loads and reloads, unloads), each sorted by name."""
    loads = [
        change
        for name in sorted(desired.queues)
        if (change := _queue_change(desired.queues[name], live.queues.get(name), digests.get(name)))
        is not None
    ]
    unloads = [
        _change(
            Kind.QUEUE,
            Action.DELETE,
            name,
            partial(lambda n: _Commands((cmd.queue_command("unload", n),)), name),
            reason="no longer served",
        )
        for name in sorted(live.queues)
        if name not in desired.queues and managed(name)
    ]
    return loads, unloads


# --- agents ----------------------------------------------------------------------------


def _agent_drift(want: DesiredAgent, have: LiveAgent) -> list[str]:
    return [f for f in ("type", *AGENT_SET_FIELDS) if getattr(want, f) != getattr(have, f)]


def _agent_create(want: DesiredAgent) -> LiveChange:
    name = want.name

    def build() -> _Commands:
        sets = tuple(cmd.agent_set(f, name, getattr(want, f)) for f in AGENT_SET_FIELDS)
        status = want.initial_status
        return _Commands(
            (cmd.agent_add(name, want.type), *sets),
            if_created=(cmd.agent_set("status", name, status),) if status else (),
        )

    return _change(Kind.AGENT, Action.CREATE, name, build, fields=("type", *AGENT_SET_FIELDS))


def _agent_update(want: DesiredAgent, have: LiveAgent, owed: bool) -> LiveChange | None:
    """Set what drifted; plus the initial status when this node still owes it and the agent
    is still ``Logged Out`` (a person who set another status owns it now)."""
    name = want.name
    changed = _agent_drift(want, have)
    values: list[tuple[str, str | int]] = [(f, getattr(want, f)) for f in changed]
    reason = ""
    if owed and want.initial_status and have.status == cmd.FRESH_AGENT_STATUS:
        changed.append("status")
        values.append(("status", want.initial_status))
        reason = "initial status still owed: this node created the agent, the set was lost"
    if not changed:
        return None
    return _change(
        Kind.AGENT,
        Action.UPDATE,
        name,
        lambda: _Commands(tuple(cmd.agent_set(f, name, v) for f, v in values)),
        fields=tuple(changed),
        reason=reason,
    )


def plan_agents(
    desired: DesiredLive,
    live: LiveState,
    managed: Callable[[str], bool],
    owed_in: frozenset[str],
) -> tuple[list[LiveChange], list[LiveChange], frozenset[str]]:
    """(adds and sets, deletes, the agents this plan sends an initial status to)."""
    upserts: list[LiveChange] = []
    owed_out: set[str] = set()
    for name in sorted(desired.agents):
        want = desired.agents[name]
        have = live.agents.get(name)
        change = _agent_create(want) if have is None else _agent_update(want, have, name in owed_in)
        if change is None:
            continue
        if want.initial_status and (have is None or "status" in change.fields):
            owed_out.add(name)
        upserts.append(change)
    deletes = [
        _change(
            Kind.AGENT,
            Action.DELETE,
            name,
            partial(lambda n: _Commands((cmd.agent_del(n),)), name),
        )
        for name in sorted(live.agents)
        if name not in desired.agents and managed(name)
    ]
    return upserts, deletes, frozenset(owed_out)


# --- tiers -----------------------------------------------------------------------------


def _tier_upsert(
    desired: DesiredLive, live: LiveState, key: tuple[str, str], created: set[str]
) -> LiveChange | None:
    want = desired.tiers[key]
    have = live.tiers.get(key)
    queue, agent = key
    label = f"{queue} {agent}"
    if have is None:
        return _change(
            Kind.TIER,
            Action.CREATE,
            label,
            lambda: _Commands(
                (cmd.tier_add(queue, agent, want.level, want.position),),
                if_existed=(
                    cmd.tier_set("level", queue, agent, want.level),
                    cmd.tier_set("position", queue, agent, want.position),
                ),
            ),
            fields=("level", "position"),
            requires=tuple(k for k in (f"queue:{queue}", f"agent:{agent}") if k in created),
        )
    changed = tuple(f for f in ("level", "position") if getattr(want, f) != getattr(have, f))
    if not changed:
        return None
    return _change(
        Kind.TIER,
        Action.UPDATE,
        label,
        lambda: _Commands(tuple(cmd.tier_set(f, queue, agent, getattr(want, f)) for f in changed)),
        fields=changed,
    )


def plan_tiers(
    desired: DesiredLive,
    live: LiveState,
    managed: Callable[[str], bool],
    created: set[str],
) -> tuple[list[LiveChange], list[LiveChange], tuple[tuple[str, str], ...]]:
    """(adds and sets, deletes, unmanaged tiers). ``created``: keys of the queue and agent
    CREATE changes of the same plan, which a new tier requires."""
    upserts = [
        change
        for key in sorted(desired.tiers)
        if (change := _tier_upsert(desired, live, key, created)) is not None
    ]
    deletes: list[LiveChange] = []
    unmanaged: list[tuple[str, str]] = []
    for queue, agent in sorted(live.tiers):
        if not (managed(queue) and managed(agent)):
            unmanaged.append((queue, agent))
        elif (queue, agent) not in desired.tiers:
            deletes.append(
                _change(
                    Kind.TIER,
                    Action.DELETE,
                    f"{queue} {agent}",
                    partial(lambda q, a: _Commands((cmd.tier_del(q, a),)), queue, agent),
                )
            )
    return upserts, deletes, tuple(unmanaged)


# --- the plan --------------------------------------------------------------------------


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
    not show. A loaded queue with no recorded digest and matching listed columns is adopted
    without a reload: a reload restarts the queue's counters.

    Initial status: set only for an agent this node created. A CREATE carries it in
    ``if_created``; when that set was not confirmed the caller keeps the agent in
    ``owed_statuses`` (see ``apply.next_owed_statuses``) and a later pass pays the debt
    with an UPDATE, only while the agent is still the fresh ``Logged Out`` and the spec
    still declares an ``initial_status``; otherwise the debt is dropped.

    Order (also the apply order, by phase): tier del; agent del, queue unload, queue load and
    reload, agent add and set; tier add and set. Within each group, sorted by name.
    """
    domains = frozenset(d.lower() for d in managed_domains)
    managed = partial(is_managed, domains=domains)
    queue_loads, queue_unloads = plan_queues(desired, live, managed, loaded_digests or {})
    agent_upserts, agent_dels, owed = plan_agents(
        desired, live, managed, frozenset(owed_statuses or ())
    )
    created = {c.key for c in queue_loads + agent_upserts if c.action is Action.CREATE}
    tier_upserts, tier_dels, unmanaged_tiers = plan_tiers(desired, live, managed, created)
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
        owed_statuses=owed,
        unmanaged_agents=tuple(n for n in sorted(live.agents) if not managed(n)),
        unmanaged_queues=tuple(n for n in sorted(live.queues) if not managed(n)),
        unmanaged_tiers=unmanaged_tiers,
        unparsed=live.unparsed,
    )

"""Reading a switch and sending a live plan to it, with what a node remembers afterwards.

Doing takes an ``api`` callable ``async (command) -> body`` so the same code runs on an
``EslConnection``, an ``EslClient`` or a test double; deciding what to remember
(``next_digests``, ``next_owed_statuses``) is pure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.core.model import Kind
from reconciler.core.plan import Action
from reconciler.switch.api import Api
from reconciler.switch.callcenter import commands as cmd
from reconciler.switch.callcenter.listings import LiveState, live_state
from reconciler.switch.callcenter.plan import LiveChange, LivePlan
from reconciler.switch.errors import NodeUnreachable

log = logging.getLogger(__name__)

"""``async (command) -> body``: one ``api`` command, the reply body exactly as sent."""


async def read_live(api: Api) -> LiveState:
    """The three listings, requested together (pipelined on one connection)."""
    agents, tiers, queues = await asyncio.gather(
        api(cmd.LIST_AGENTS), api(cmd.LIST_TIERS), api(cmd.LIST_QUEUES)
    )
    return live_state(agents, tiers, queues)


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """``ok``: every command answered ``+OK``. ``existed``: the add found the object already
    there (drift; repaired by the sets). ``skipped``: not attempted (reason in ``error``).
    ``created``: the add of a CREATE answered ``+OK``. ``add_unconfirmed``: the add went out
    (or was being sent) and no reply came (the connection dropped, a timeout): it may have
    created the object. A refused change (``change.refused``) failed without sending."""

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
    if change.refused:
        return ChangeResult(change, ok=False, error=f"refused, not sent: {change.refused}")
    sent = 0
    existed = created = False
    commands = list(change.commands)
    i = 0
    while i < len(commands):
        command = commands[i]
        is_add = i == 0 and change.action is Action.CREATE
        try:
            reply = await api(command)
        except NodeUnreachable as exc:
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
            error = f"{command}: {text or '(empty reply)'}"
            return ChangeResult(change, ok=False, error=error, sent=sent, created=created)
        elif is_add:
            created = True
        if i == len(change.commands) - 1 and not existed:
            commands += change.if_created
        i += 1
    return ChangeResult(change, ok=True, existed=existed, sent=sent, created=created)


class _Applier:
    """One apply: the results so far, the concurrency limit, whether the connection died."""

    def __init__(self, api: Api, concurrency: int) -> None:
        self.api = api
        self.results: dict[str, ChangeResult] = {}
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.lost: str | None = None

    def _skip(self, change: LiveChange) -> ChangeResult | None:
        if self.lost is not None:
            return ChangeResult(
                change, ok=False, skipped=True, error=f"connection lost: {self.lost}"
            )
        failed = [k for k in change.requires if k in self.results and not self.results[k].ok]
        if failed:
            error = f"prerequisite failed: {', '.join(failed)}"
            return ChangeResult(change, ok=False, skipped=True, error=error)
        return None

    async def run(self, change: LiveChange) -> ChangeResult:
        if (skipped := self._skip(change)) is not None:
            return skipped
        async with self.limit:
            if (skipped := self._skip(change)) is not None:
                return skipped
            try:
                return await _run_change(self.api, change)
            except _ConnectionLost as exc:
                self.lost = self.lost or str(exc)
                return ChangeResult(
                    change,
                    ok=False,
                    error=f"connection lost: {exc}",
                    created=exc.created,
                    add_unconfirmed=exc.add_unconfirmed,
                )


async def apply_live(api: Api, plan: LivePlan, *, concurrency: int = 256) -> LiveApplyReport:
    """Send the plan, phase by phase; changes within a phase are issued concurrently (the ESL
    connection pipelines them and matches replies in order). Every reply is checked; a
    failure (a refused change too) is recorded and logged, and independent changes go on; a
    change whose prerequisite failed is skipped. A lost connection skips everything not yet
    sent: the node resyncs on reconnect.
    """
    applier = _Applier(api, concurrency)
    for phase in sorted({c.phase for c in plan.changes}):
        batch = [c for c in plan.changes if c.phase == phase]
        for result in await asyncio.gather(*(applier.run(c) for c in batch)):
            applier.results[result.change.key] = result
            if not result.ok:
                log.warning("live change failed: %r: %s", result.change.key, result.error)
    return LiveApplyReport(tuple(applier.results[c.key] for c in plan.changes))


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


@dataclass(frozen=True)
class NodeMemory:
    """What a node remembers between passes and reconnects (lost with the process): the
    digests of the queue configs it loaded, and the agents whose initial status it owes."""

    digests: Mapping[str, str] = field(default_factory=dict)
    owed_statuses: frozenset[str] = frozenset()

    def after(self, plan: LivePlan, report: LiveApplyReport | None) -> NodeMemory:
        return NodeMemory(
            next_digests(self.digests, plan, report), next_owed_statuses(plan, report)
        )

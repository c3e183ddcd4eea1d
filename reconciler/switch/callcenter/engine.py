"""The callcenter engine: one switch's mod_callcenter queues, agents and tiers pushed over
ESL, drift repaired, one node's trouble never another's; and ``CallcenterEngines``, every
node's engine at once.

Neighbours: ``apply`` (read a switch, send a plan), ``plan`` (decide), the node's
``NodeSession`` (its COMMANDS lane keeps the connection alive and calls ``on_connect`` after
every (re)connect). The daemon calls ``CallcenterEngines.reconcile`` after each applied
pass, with the same applied state that xml_curl serves (so a queue is unloaded only once
callcenter.conf stopped serving it); ``pbx plan`` calls ``plan_only``.

Each ``CallcenterEngine`` keeps the latest desired state it was given, so on every
(re)connect (a network blink, a FreeSWITCH restart with callcenter.db kept or wiped) it
resyncs at once without the daemon's help. Passes on one node are serialized; nodes run
concurrently. Nothing raises out of ``reconcile``/``plan_only``: a failure is a
``NodeReport`` with ``errors``. It runs on the leader only (``Runs.LEADER``): every daemon
holds the connection, only the leader gives it a desired state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

from reconciler.esl import EslConnection, OpenStream
from reconciler.switch.api import connection_api
from reconciler.switch.callcenter.apply import LiveApplyReport, NodeMemory, apply_live, read_live
from reconciler.switch.callcenter.desired import DesiredLive
from reconciler.switch.callcenter.listings import LiveState
from reconciler.switch.callcenter.plan import LivePlan, plan_live
from reconciler.switch.callcenter.report import (
    NodeReport,
    applied_report,
    failure_report,
    log_report,
    plan_report,
)
from reconciler.switch.errors import (
    CallcenterError,
    NodeTimeout,
    NodeUnreachable,
    translated,
)
from reconciler.switch.leader_engine import LeaderEngine
from reconciler.switch.node_spec import NodeSpec
from reconciler.switch.reconnect import ReconnectPolicy
from reconciler.switch.session import NodeSession

log = logging.getLogger(__name__)


class CallcenterEngine(LeaderEngine[tuple[DesiredLive, frozenset[str]], NodeReport]):
    """One node's mod_callcenter (an ``Engine`` on the COMMANDS lane): the desired state last
    given, and this node's ``NodeMemory`` (the queue digests it loaded, the initial statuses
    it owes); the memory outlives passes and reconnects, so the resync a reconnect runs pays
    a debt once.

    ``on_report(report)`` runs after every pass whatever triggered it (its errors are
    logged): the place to count drift repaired by reconnect resyncs too."""

    activity = "callcenter"

    def __init__(
        self,
        session: NodeSession,
        *,
        api_timeout: float = 30.0,
        concurrency: int = 256,
        on_report: Callable[[NodeReport], None] | None = None,
    ) -> None:
        self.spec = session.spec
        self._concurrency = concurrency
        self._memory = NodeMemory()
        self.last_sync: datetime | None = None
        super().__init__(session, api_timeout=api_timeout, on_report=on_report)

    def __repr__(self) -> str:
        return f"<CallcenterEngine {self.name} {self.client.state.value}>"

    async def start(self) -> None:
        """Start the node's session (in the background); returns at once."""
        await self.session.start()

    async def stop(self) -> None:
        await self.session.stop()

    def set_desired(self, desired: DesiredLive, managed_domains: Collection[str]) -> None:
        """Remember what the node should hold; used by every later (re)connect."""
        self._desired = (desired, frozenset(d.lower() for d in managed_domains))

    async def reconcile(self, desired: DesiredLive, managed_domains: Collection[str]) -> NodeReport:
        """Read the node, plan, apply. Never raises; disconnected -> a report saying so (the
        next connect resyncs with this desired state)."""
        self.set_desired(desired, managed_domains)
        return await self._pass("reconcile", None)

    async def resync(self) -> NodeReport:
        """A pass with the desired state last given (nothing given yet: nothing to do)."""
        return await self._pass("resync", None)

    async def plan_only(
        self,
        desired: DesiredLive,
        managed_domains: Collection[str],
        *,
        connect_timeout: float = 2.0,
    ) -> NodeReport:
        """Read and plan, never write. Uses the live connection when there is one, else a
        short-lived one (``connect_timeout``) so ``pbx plan`` works with the switch down."""
        started = time.monotonic()
        conn = self.client.connection
        own: EslConnection | None = None
        try:
            if conn is None:
                with translated(self.name):
                    own = conn = await EslConnection.open(
                        self.spec.host, self.spec.port, self.spec.password, timeout=connect_timeout
                    )
            live = await read_live(connection_api(conn, self.name, self._api_timeout))
            plan = self._plan(desired, frozenset(d.lower() for d in managed_domains), live)
        except (NodeUnreachable, NodeTimeout, OSError) as exc:
            return self._report_failure("plan", started, None, f"unreachable: {exc}", False)
        except CallcenterError as exc:
            return self._report_failure("plan", started, None, str(exc), True)
        finally:
            if own is not None:
                await own.close(timeout=1.0)
        duration = time.monotonic() - started
        return plan_report(self.name, plan, duration=duration, last_sync=self.last_sync)

    # -- internals ------------------------------------------------------------------------

    def _plan(self, desired: DesiredLive, domains: frozenset[str], live: LiveState) -> LivePlan:
        return plan_live(
            desired,
            live,
            domains,
            loaded_digests=self._memory.digests,
            owed_statuses=self._memory.owed_statuses,
        )

    def _report_failure(
        self, trigger: str, started: float, plan: LivePlan | None, error: str, connected: bool
    ) -> NodeReport:
        duration = time.monotonic() - started
        logged = trigger != "plan" and not error.startswith("not connected")
        return failure_report(
            self.name, trigger, plan, error, connected, duration, self.last_sync, logged=logged
        )

    async def on_connect(self, conn: EslConnection) -> None:
        """Every (re)connect: resync at once on this very connection."""
        if self._desired is None:
            log.info(
                "esl node connected; nothing declared yet", extra={"fields": {"node": self.name}}
            )
            return
        await self._pass("connect", conn)

    def _crash_report(self, trigger: str, exc: Exception) -> NodeReport:
        return NodeReport(self.name, self.connected, trigger, errors=(f"internal error: {exc!r}",))

    async def _guarded_pass(self, trigger: str, conn: EslConnection | None) -> NodeReport:
        started = time.monotonic()
        desired = self._desired
        conn = conn or self.client.connection
        if conn is None or conn.closed:
            reason = self.client.last_error or self.client.state.value
            return self._report_failure(trigger, started, None, f"not connected: {reason}", False)
        if desired is None:
            return NodeReport(self.name, connected=True, trigger=trigger, last_sync=self.last_sync)
        api = connection_api(conn, self.name, self._api_timeout)
        plan: LivePlan | None = None
        applied = LiveApplyReport()
        try:
            plan = self._plan(*desired, await read_live(api))
            if not plan.empty:
                applied = await apply_live(api, plan, concurrency=self._concurrency)
            self._memory = self._memory.after(plan, applied)
        except NodeUnreachable as exc:
            return self._report_failure(trigger, started, plan, f"connection lost: {exc}", False)
        except (NodeTimeout, CallcenterError) as exc:
            return self._report_failure(trigger, started, plan, f"read failed: {exc}", True)
        connected = not conn.closed
        if applied.ok and connected:
            self.last_sync = datetime.now(UTC)
        report = applied_report(
            self.name,
            trigger,
            plan,
            applied,
            connected=connected,
            duration=time.monotonic() - started,
            last_sync=self.last_sync,
        )
        log_report(report)
        return report


class CallcenterEngines:
    """Every node's callcenter engine, concurrently and independently: one node down only
    marks its own report.

    ``nodes``: the sessions to add an engine to (the daemon shares them with the other
    engines), or ``NodeSpec``s to make sessions of their own. ``engine_options`` go to each
    ``CallcenterEngine``; ``on_report`` there sees every pass, including the resyncs a
    (re)connect runs on its own (``reconcile`` returns only the passes it ran)."""

    def __init__(
        self,
        nodes: Iterable[NodeSession | NodeSpec],
        *,
        reconnect: ReconnectPolicy | None = None,
        connect: OpenStream | None = None,
        connect_timeout: float = 5.0,
        **engine_options: Any,
    ) -> None:
        sessions = [
            n
            if isinstance(n, NodeSession)
            else NodeSession(
                n, reconnect=reconnect, connect=connect, connect_timeout=connect_timeout
            )
            for n in nodes
        ]
        self.nodes: tuple[CallcenterEngine, ...] = tuple(
            CallcenterEngine(session, **engine_options) for session in sessions
        )

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes), return_exceptions=True)

    async def __aenter__(self) -> CallcenterEngines:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def set_desired(self, desired: DesiredLive, managed_domains: Collection[str]) -> None:
        for node in self.nodes:
            node.set_desired(desired, managed_domains)

    def clear_desired(self) -> None:
        for node in self.nodes:
            node.clear_desired()

    async def reconcile(
        self, desired: DesiredLive, managed_domains: Collection[str]
    ) -> tuple[NodeReport, ...]:
        """One pass on every node at once; a report per node, in node order."""
        return await self._each("reconcile", lambda n: n.reconcile(desired, managed_domains))

    async def plan_only(
        self,
        desired: DesiredLive,
        managed_domains: Collection[str],
        *,
        connect_timeout: float = 2.0,
    ) -> tuple[NodeReport, ...]:
        """Read and plan on every node, no writes; an unreachable node says so."""
        return await self._each(
            "plan",
            lambda n: n.plan_only(desired, managed_domains, connect_timeout=connect_timeout),
        )

    def reports(self) -> tuple[NodeReport | None, ...]:
        return tuple(node.last_report for node in self.nodes)

    async def _each(
        self,
        trigger: str,
        run: Callable[[CallcenterEngine], Coroutine[Any, Any, NodeReport]],
    ) -> tuple[NodeReport, ...]:
        tasks = [
            asyncio.create_task(run(node), name=f"live-{trigger}-{node.name}")
            for node in self.nodes
        ]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        reports: list[NodeReport] = []
        for node, outcome in zip(self.nodes, outcomes, strict=True):
            if isinstance(outcome, NodeReport):
                reports.append(outcome)
                continue
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            log.error(
                "live %s crashed", trigger, exc_info=outcome, extra={"fields": {"node": node.name}}
            )
            reports.append(
                NodeReport(
                    node.name,
                    node.connected,
                    trigger,
                    errors=(f"internal error: {outcome!r}",),
                    last_sync=node.last_sync,
                )
            )
        return tuple(reports)

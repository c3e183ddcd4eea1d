"""Live reconciliation of every FreeSWITCH node: the declared mod_callcenter queues, agents
and tiers pushed over ESL, drift repaired, one node's trouble never another's.

Neighbours: ``callcenter`` (read, plan, apply: all mod_callcenter knowledge), ``esl``
(``EslClient`` keeps one connection per node alive). The daemon calls
``LiveReconciler.reconcile`` after each applied pass, with the same applied state that
xml_curl serves (so a queue is unloaded only once callcenter.conf stopped serving it);
``pbx plan`` calls ``plan_only``.

Each ``NodeReconciler`` keeps the latest desired state it was given, so on every (re)connect
(a network blink, a FreeSWITCH restart with callcenter.db kept or wiped) it resyncs at once
without the daemon's help. Passes on one node are serialized; nodes run concurrently. Nothing
raises out of ``reconcile``/``plan_only``: a failure is a ``NodeReport`` with ``errors``.

Exceptions::

    NodeSpecError(ValueError)   a --freeswitch value that cannot be used (password masked)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.core.logs import register_secret
from reconciler.core.plan import Action
from reconciler.live.callcenter import (
    CallcenterError,
    DesiredLive,
    LiveApplyReport,
    LivePlan,
    apply_live,
    next_digests,
    next_owed_statuses,
    plan_live,
    read_live,
)
from reconciler.live.esl import (
    EslClient,
    EslClientState,
    EslConnection,
    EslConnectionError,
    EslError,
)

log = logging.getLogger(__name__)

DEFAULT_ESL_PORT = 8021


# --- node specs ------------------------------------------------------------------------


class NodeSpecError(ValueError):
    """A ``--freeswitch`` value we cannot use; the message never holds the password."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One FreeSWITCH node's ESL address. ``password`` stays out of repr and str."""

    host: str
    port: int
    password: str = field(repr=False)

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.name


def parse_node_spec(text: str) -> NodeSpec:
    """``HOST:PORT:PASSWORD`` (``[v6addr]:PORT:PASSWORD`` for IPv6). The password is
    everything after the second separator, so it may itself contain ``:``."""
    raw = text.strip()
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise NodeSpecError(f"--freeswitch {_masked(raw)}: expected [IPv6]:PORT:PASSWORD")
        rest = rest[1:]
    else:
        host, _, rest = raw.partition(":")
    port_text, sep, password = rest.partition(":")
    shown = f"{host}:{port_text}:***"
    if not host or not sep:
        raise NodeSpecError(f"--freeswitch {_masked(raw)}: expected HOST:PORT:PASSWORD")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise NodeSpecError(f"--freeswitch {shown}: port must be a number in 1..65535")
    if not password:
        raise NodeSpecError(f"--freeswitch {shown}: empty password")
    if any(c in password for c in "\r\n"):
        raise NodeSpecError(f"--freeswitch {shown}: password holds a line break")
    return NodeSpec(host=host, port=int(port_text), password=password)


def _masked(raw: str) -> str:
    """Just the host: anything after it may be (part of) a password."""
    if raw.startswith("["):
        host, bracket, _ = raw.partition("]")
        return f"{host}]:***" if bracket else "(unparseable value)"
    host, sep, _ = raw.partition(":")
    return f"{host}:***" if sep else "(unparseable value)"


def parse_node_specs(values: Iterable[str]) -> tuple[NodeSpec, ...]:
    """Every ``--freeswitch`` value; the same HOST:PORT twice is an error."""
    specs: list[NodeSpec] = []
    seen: set[str] = set()
    for value in values:
        spec = parse_node_spec(value)
        if spec.name in seen:
            raise NodeSpecError(f"--freeswitch {spec.name} given twice")
        seen.add(spec.name)
        specs.append(spec)
    return tuple(specs)


# --- reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeReport:
    """One pass on one node.

    ``trigger``: reconcile (the daemon), connect (a resync after a (re)connect), plan (read
    and plan only). ``planned``: add/change/destroy counts; ``repaired``: keys of the changes
    applied (every change repairs a difference between the switch and the declaration).
    ``last_sync``: end of the last pass on this node that left nothing failed.
    ``warnings``: listing rows that could not be read (a ``|`` or newline inside a value
    someone set by hand); never acted upon.
    """

    node: str
    connected: bool
    trigger: str
    planned: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    failed: int = 0
    skipped: int = 0
    repaired: tuple[str, ...] = ()
    unmanaged: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    commands_sent: int = 0
    duration: float = 0.0
    last_sync: datetime | None = None
    plan: LivePlan | None = None

    @property
    def ok(self) -> bool:
        return self.connected and not self.errors

    @property
    def changes(self) -> int:
        return sum(self.planned.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "connected": self.connected,
            "trigger": self.trigger,
            "planned": dict(self.planned),
            "applied": self.applied,
            "failed": self.failed,
            "skipped": self.skipped,
            "repaired": list(self.repaired),
            "unmanaged": list(self.unmanaged),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "commands_sent": self.commands_sent,
            "duration_seconds": round(self.duration, 3),
            "last_sync": self.last_sync.isoformat() if self.last_sync else None,
        }


def _planned(plan: LivePlan) -> dict[str, int]:
    counts = plan.counts()
    return {
        "add": counts[Action.CREATE],
        "change": counts[Action.UPDATE],
        "destroy": counts[Action.DELETE],
    }


def _warnings(plan: LivePlan) -> tuple[str, ...]:
    return tuple(f"unreadable listing row: {row!r}" for row in plan.unparsed)


# --- one node --------------------------------------------------------------------------


class NodeReconciler:
    """Owns one node's ``EslClient``, the desired state last given, and this node's memory
    (see ``callcenter.plan_live``): the digests of the queue configs this reconciler loaded
    there, and the agents it created whose initial status is still owed (added, but the
    status set not confirmed: the connection dropped in between). Both outlive passes and
    reconnects, so the resync a reconnect runs pays the debt once, and only while the agent
    is still ``Logged Out``; both are lost with the process (a fresh one owes nothing).

    ``on_report(report)`` runs after every pass whatever triggered it (its errors are
    logged): the place to count drift repaired by reconnect resyncs too."""

    def __init__(
        self,
        spec: NodeSpec,
        *,
        connect_timeout: float = 5.0,
        api_timeout: float = 30.0,
        concurrency: int = 256,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
        on_report: Callable[[NodeReport], None] | None = None,
    ) -> None:
        register_secret(spec.password)
        self._on_report = on_report
        self.spec = spec
        self.name = spec.name
        self._api_timeout = api_timeout
        self._concurrency = concurrency
        self._client = EslClient(
            spec.host,
            spec.port,
            spec.password,
            on_connect=self._on_connect,
            connect_timeout=connect_timeout,
            backoff_initial=backoff_initial,
            backoff_cap=backoff_cap,
            name=spec.name,
        )
        self._desired: tuple[DesiredLive, frozenset[str]] | None = None
        self._digests: dict[str, str] = {}
        self._owed_statuses: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()
        self._passes = asyncio.Condition()
        self.pass_count = 0
        self.last_sync: datetime | None = None
        self.last_report: NodeReport | None = None

    def __repr__(self) -> str:
        return f"<NodeReconciler {self.name} {self._client.state.value}>"

    @property
    def connected(self) -> bool:
        return self._client.state is EslClientState.CONNECTED

    @property
    def client(self) -> EslClient:
        return self._client

    async def start(self) -> None:
        """Start connecting (in the background); returns at once."""
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

    def set_desired(self, desired: DesiredLive, managed_domains: Collection[str]) -> None:
        """Remember what the node should hold; used by every later (re)connect."""
        self._desired = (desired, frozenset(d.lower() for d in managed_domains))

    def clear_desired(self) -> None:
        """Forget the desired state: later (re)connects change nothing (a daemon that lost
        leadership must not keep pushing what it last knew against the new leader)."""
        self._desired = None

    async def reconcile(self, desired: DesiredLive, managed_domains: Collection[str]) -> NodeReport:
        """Read the node, plan, apply. Never raises; disconnected -> a report saying so (the
        next connect resyncs with this desired state)."""
        self.set_desired(desired, managed_domains)
        return await self._pass("reconcile", None)

    async def resync(self) -> NodeReport:
        """A pass with the desired state last given (nothing given yet: nothing to do)."""
        return await self._pass("resync", None)

    async def wait_pass(self, after: int, timeout: float | None = None) -> NodeReport:  # noqa: ASYNC109
        """Wait until more than ``after`` passes finished on this node (tests, probes)."""
        async with asyncio.timeout(timeout), self._passes:
            await self._passes.wait_for(lambda: self.pass_count > after)
        assert self.last_report is not None
        return self.last_report

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
        domains = frozenset(d.lower() for d in managed_domains)
        conn = self._client.connection
        own: EslConnection | None = None
        try:
            if conn is None:
                own = conn = await EslConnection.open(
                    self.spec.host, self.spec.port, self.spec.password, timeout=connect_timeout
                )
            live = await read_live(self._api_of(conn))
            plan = plan_live(
                desired,
                live,
                domains,
                loaded_digests=self._digests,
                owed_statuses=self._owed_statuses,
            )
        except (EslError, OSError) as exc:
            return NodeReport(
                self.name,
                connected=False,
                trigger="plan",
                errors=(f"unreachable: {exc}",),
                duration=time.monotonic() - started,
                last_sync=self.last_sync,
            )
        except CallcenterError as exc:
            return NodeReport(
                self.name,
                connected=True,
                trigger="plan",
                errors=(str(exc),),
                duration=time.monotonic() - started,
                last_sync=self.last_sync,
            )
        finally:
            if own is not None:
                await own.close(timeout=1.0)
        return NodeReport(
            self.name,
            connected=True,
            trigger="plan",
            planned=_planned(plan),
            unmanaged=plan.unmanaged,
            warnings=_warnings(plan),
            duration=time.monotonic() - started,
            last_sync=self.last_sync,
            plan=plan,
        )

    # -- internals ------------------------------------------------------------------------

    def _api_of(self, conn: EslConnection) -> Callable[[str], Coroutine[Any, Any, str]]:
        timeout = self._api_timeout

        async def api(command: str) -> str:
            return await conn.api(command, timeout=timeout)

        return api

    async def _on_connect(self, conn: EslConnection) -> None:
        """Every (re)connect: resync at once on this very connection."""
        if self._desired is None:
            log.info(
                "esl node connected; nothing declared yet", extra={"fields": {"node": self.name}}
            )
            return
        await self._pass("connect", conn)

    async def _pass(self, trigger: str, conn: EslConnection | None) -> NodeReport:
        async with self._lock:
            try:
                report = await self._guarded_pass(trigger, conn)
            except Exception as exc:  # a bug: log it, report it, never lose it
                log.exception("live pass crashed", extra={"fields": {"node": self.name}})
                report = NodeReport(
                    self.name, self.connected, trigger, errors=(f"internal error: {exc!r}",)
                )
            self.last_report = report
        if self._on_report is not None:
            try:
                self._on_report(report)
            except Exception:
                log.exception("on_report callback failed", extra={"fields": {"node": self.name}})
        async with self._passes:
            self.pass_count += 1
            self._passes.notify_all()
        return report

    async def _guarded_pass(self, trigger: str, conn: EslConnection | None) -> NodeReport:
        started = time.monotonic()
        desired = self._desired
        conn = conn or self._client.connection
        if conn is None or conn.closed:
            reason = self._client.last_error or self._client.state.value
            return NodeReport(
                self.name,
                connected=False,
                trigger=trigger,
                errors=(f"not connected: {reason}",),
                last_sync=self.last_sync,
            )
        if desired is None:
            return NodeReport(self.name, connected=True, trigger=trigger, last_sync=self.last_sync)
        wanted, domains = desired
        api = self._api_of(conn)
        plan: LivePlan | None = None
        applied = LiveApplyReport()
        try:
            live = await read_live(api)
            plan = plan_live(
                wanted,
                live,
                domains,
                loaded_digests=self._digests,
                owed_statuses=self._owed_statuses,
            )
            if not plan.empty:
                applied = await apply_live(api, plan, concurrency=self._concurrency)
            self._digests = next_digests(self._digests, plan, applied)
            self._owed_statuses = next_owed_statuses(plan, applied)
        except EslConnectionError as exc:
            return self._failed(trigger, started, plan, f"connection lost: {exc}", connected=False)
        except (EslError, CallcenterError) as exc:
            return self._failed(trigger, started, plan, f"read failed: {exc}", connected=True)
        errors = tuple(applied.errors())
        connected = not conn.closed
        if not errors and connected:
            self.last_sync = datetime.now(UTC)
        report = NodeReport(
            self.name,
            connected=connected,
            trigger=trigger,
            planned=_planned(plan),
            applied=applied.applied,
            failed=len(applied.failed),
            skipped=len(applied.skipped),
            repaired=tuple(r.change.key for r in applied.results if r.ok),
            unmanaged=plan.unmanaged,
            errors=errors,
            warnings=_warnings(plan),
            commands_sent=applied.commands_sent,
            duration=time.monotonic() - started,
            last_sync=self.last_sync,
            plan=plan,
        )
        self._log(report)
        return report

    def _failed(
        self,
        trigger: str,
        started: float,
        plan: LivePlan | None,
        error: str,
        *,
        connected: bool,
    ) -> NodeReport:
        log.warning(
            "live pass failed",
            extra={"fields": {"node": self.name, "trigger": trigger, "error": error}},
        )
        return NodeReport(
            self.name,
            connected=connected,
            trigger=trigger,
            planned=_planned(plan) if plan is not None else {},
            errors=(error,),
            duration=time.monotonic() - started,
            last_sync=self.last_sync,
            plan=plan,
        )

    def _log(self, report: NodeReport) -> None:
        """Only passes that changed something (or failed) are worth a line."""
        if not report.changes and not report.errors:
            return
        fields = {
            "node": self.name,
            "trigger": report.trigger,
            **report.planned,
            "applied": report.applied,
            "failed": report.failed,
            "skipped": report.skipped,
            "seconds": round(report.duration, 3),
        }
        if report.errors:
            fields["first_error"] = report.errors[0]
            log.warning("live drift repaired with errors", extra={"fields": fields})
        else:
            log.info("live drift repaired", extra={"fields": fields})


# --- all nodes -------------------------------------------------------------------------


class LiveReconciler:
    """Every node, concurrently and independently: one node down only marks its own report.

    ``node_options`` go to each ``NodeReconciler``; ``on_report`` there sees every pass,
    including the resyncs a (re)connect runs on its own (``reconcile`` returns only the
    passes it ran)."""

    def __init__(self, specs: Iterable[NodeSpec], **node_options: Any) -> None:
        self.nodes: tuple[NodeReconciler, ...] = tuple(
            NodeReconciler(spec, **node_options) for spec in specs
        )

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes), return_exceptions=True)

    async def __aenter__(self) -> LiveReconciler:
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
        run: Callable[[NodeReconciler], Coroutine[Any, Any, NodeReport]],
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
                "live %s crashed",
                trigger,
                exc_info=outcome,
                extra={"fields": {"node": node.name}},
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

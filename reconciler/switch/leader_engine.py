"""The loop every leader-only engine on the COMMANDS lane shares (callcenter, gateways): the
lane client, the desired state given only while the daemon leads, and passes that are
serialized on the node, never raise, are counted for ``wait_pass`` and reported to
``on_report``.

A subclass decides what one pass does (``_guarded_pass``) and how a crash of it reads
(``_crash_report``); the rest is here once, so both engines keep the same guarantees.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from reconciler.esl import EslClient, EslClientState, EslConnection, EslEvent
from reconciler.switch.engine import Lane, Runs
from reconciler.switch.session import NodeSession

log = logging.getLogger(__name__)

DesiredT = TypeVar("DesiredT")
ReportT = TypeVar("ReportT")


class LeaderEngine(abc.ABC, Generic[DesiredT, ReportT]):
    """One node's leader-only engine: an ``Engine`` on the COMMANDS lane (no events)."""

    lane = Lane.COMMANDS
    runs = Runs.LEADER
    subscriptions: tuple[str, ...] = ()
    activity = "engine"
    """Names the engine in its log lines."""

    def __init__(
        self,
        session: NodeSession,
        *,
        api_timeout: float,
        on_report: Callable[[ReportT], None] | None,
    ) -> None:
        self.session = session
        self.name = session.name
        self._api_timeout = api_timeout
        self._on_report = on_report
        self._client: EslClient | None = None
        self._desired: DesiredT | None = None
        self._lock = asyncio.Lock()
        self._passes = asyncio.Condition()
        self.pass_count = 0
        self.last_report: ReportT | None = None
        session.add(self)

    @property
    def client(self) -> EslClient:
        return self._client or self.session.client(self.lane)

    @property
    def connected(self) -> bool:
        return self.client.state is EslClientState.CONNECTED

    def attach(self, client: EslClient) -> None:
        self._client = client

    def on_event(self, event: EslEvent) -> None:
        """The COMMANDS lane carries no events."""

    def clear_desired(self) -> None:
        """Forget the desired state: later passes only read (a daemon that lost leadership
        must not keep pushing what it last knew against the new leader)."""
        self._desired = None

    async def wait_pass(self, after: int, timeout: float | None = None) -> ReportT:  # noqa: ASYNC109
        """Wait until more than ``after`` passes finished on this node (tests, probes)."""
        async with asyncio.timeout(timeout), self._passes:
            await self._passes.wait_for(lambda: self.pass_count > after)
        assert self.last_report is not None
        return self.last_report

    async def _pass(self, trigger: str, conn: EslConnection | None) -> ReportT:
        """One pass, serialized on the node; a crash becomes a report, never an exception."""
        async with self._lock:
            try:
                report = await self._guarded_pass(trigger, conn)
            except Exception as exc:  # a bug: logged and reported, never lost
                log.exception(
                    "%s pass crashed", self.activity, extra={"fields": {"node": self.name}}
                )
                report = self._crash_report(trigger, exc)
            self.last_report = report
        if self._on_report is not None:
            try:
                self._on_report(report)
            except Exception:
                log.exception(
                    "%s report callback failed",
                    self.activity,
                    extra={"fields": {"node": self.name}},
                )
        async with self._passes:
            self.pass_count += 1
            self._passes.notify_all()
        return report

    @abc.abstractmethod
    async def on_connect(self, conn: EslConnection) -> None:
        """Every (re)connect: the engine's own resync (``_pass`` on ``conn``)."""

    @abc.abstractmethod
    async def _guarded_pass(self, trigger: str, conn: EslConnection | None) -> ReportT:
        """One pass's work (``conn`` None: the lane's current connection, if any)."""

    @abc.abstractmethod
    def _crash_report(self, trigger: str, exc: Exception) -> ReportT:
        """The report of a pass that raised."""

"""The one place that wires the switch engines to the rest of the daemon: the applied state
in (the callcenter engines push it, the presence cache reads what it declares), reports and
presence out (metrics, the status page, the portal's ``PresenceView``), and the desired state
forgotten when leadership is lost. The next engines (voicemail, call records, gateways) are
wired here too: to the store for what they write (leader only, or idempotently), to the
portal for what they show."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import AppliedState
from reconciler.switch import (
    CallcenterEngines,
    DesiredLive,
    NodeReport,
    NodeSession,
    NodeSpec,
    PresenceCache,
    desired_live,
)
from reconciler.switch.gateways.engine import DesiredGateways, GatewayEngine, GatewayReport
from reconciler.switch.voicemail.engine import VoicemailSwitches


class SwitchLink:
    """One ``NodeSession`` per node for this daemon, shared by every engine: the callcenter
    engines (``Runs.LEADER``: given a desired state only while this daemon leads), the
    presence cache and mod_voicemail's (``Runs.EVERY_DAEMON``: each daemon serves its own
    portal; the leader's voicemail retention uses the same)."""

    def __init__(
        self, nodes: Sequence[NodeSpec], metrics: Metrics, roots: AudioRoots = DEFAULT_ROOTS
    ) -> None:
        self._metrics = metrics
        self._roots = roots
        self.sessions = tuple(NodeSession(spec) for spec in nodes)
        self.callcenter = CallcenterEngines(self.sessions, on_report=self._observe)
        self.presence = PresenceCache(self.sessions)
        self.voicemail = VoicemailSwitches(self.sessions)
        self.gateways = tuple(
            GatewayEngine(session, on_report=self._observe_gateways) for session in self.sessions
        )
        self._gateway_labels: dict[str, set[tuple[str, ...]]] = {}
        self.drift_repaired: dict[str, int] = {}
        self._desired: DesiredLive | None = None

    async def start(self) -> None:
        for session in self.sessions:
            await session.start()

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.sessions), return_exceptions=True)

    async def follow(self, applied: AppliedState) -> None:
        """The applied state changed: recompute what the switches should hold (off the
        loop: seconds at 1,000 tenants) and tell the presence cache which queues to read."""
        if not self.callcenter.nodes:
            return
        self._desired = await asyncio.to_thread(desired_live, dict(applied.state), self._roots)
        self.presence.set_managed(self._desired)

    async def push(self, applied: AppliedState) -> None:
        """Bring every node in line with the applied state (never raw specs)."""
        if not self.callcenter.nodes:
            return
        if self._desired is None:
            await self.follow(applied)
        assert self._desired is not None
        gateways = DesiredGateways(dict(applied.platform.gateways), dict(applied.gateway_problems))
        await asyncio.gather(
            self.callcenter.reconcile(self._desired, applied.managed_domains()),
            *(engine.reconcile(gateways) for engine in self.gateways),
        )

    def forget(self) -> None:
        """A daemon that lost leadership must not push what it last knew against the new
        leader on a switch's reconnect."""
        self.callcenter.clear_desired()
        for engine in self.gateways:
            engine.clear_desired()

    def _observe_gateways(self, report: GatewayReport) -> None:
        """Each gateway's live state as gauges (labels of gateways gone are removed)."""
        m = self._metrics
        if report.repaired:
            m.gateway_repairs.labels(report.node).inc(len(report.repaired))
        if not report.connected:
            return
        labels: set[tuple[str, ...]] = set()
        for name, live in report.live.items():
            m.gateway_state.labels(report.node, name, live.state).set(1)
            m.gateway_up.labels(report.node, name).set(1 if live.status == "UP" else 0)
            labels.add((report.node, name, live.state))
        for gone in self._gateway_labels.get(report.node, set()) - labels:
            m.gateway_state.remove(*gone)
            if gone[1] not in report.live:
                with contextlib.suppress(KeyError):
                    m.gateway_up.remove(gone[0], gone[1])
        self._gateway_labels[report.node] = labels

    def gateway_status(self) -> dict[str, Any]:
        """Per node: each gateway's live state and the node's gateway errors (no secret
        exists here: the switch reports a password as yes/no, and that is not shown)."""
        return {
            engine.name: engine.last_report.to_dict()
            for engine in self.gateways
            if engine.last_report is not None
        }

    def _observe(self, report: NodeReport) -> None:
        self._metrics.esl_connected.labels(report.node).set(1 if report.connected else 0)
        if any(key.startswith(("agent:", "queue:")) for key in report.repaired):
            self.presence.refresh()  # the switch fires no event for agent del or queue unload
        if report.repaired:
            count = len(report.repaired)
            self.drift_repaired[report.node] = self.drift_repaired.get(report.node, 0) + count
            self._metrics.drift_repairs.labels(report.node).inc(count)
        if report.commands_sent:
            self._metrics.live_commands.labels(report.node).inc(report.commands_sent)

    def refresh_gauges(self) -> None:
        for node in self.callcenter.nodes:
            self._metrics.esl_connected.labels(node.name).set(1 if node.connected else 0)

    def status(self) -> list[dict[str, Any]]:
        nodes = []
        for node, report in zip(self.callcenter.nodes, self.callcenter.reports(), strict=True):
            entry: dict[str, Any] = {
                "node": node.name,
                "connected": node.connected,
                "last_sync": node.last_sync.isoformat() if node.last_sync else None,
                "drift_repaired": self.drift_repaired.get(node.name, 0),
            }
            if report is not None:
                entry["unmanaged"] = list(report.unmanaged)
                entry["errors"] = list(report.errors)
                entry["last_pass"] = report.to_dict()
            nodes.append(entry)
        return nodes

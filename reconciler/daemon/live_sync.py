"""The daemon's side of the live switches: push the applied state to every node, count what
they repaired, and forget the desired state when leadership is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from reconciler.daemon.metrics import Metrics
from reconciler.live import (
    DesiredLive,
    LiveReconciler,
    NodeReport,
    NodeSpec,
    PresenceCache,
    desired_live,
)
from reconciler.reconcile import AppliedState


class LiveSync:
    """Two ESL connections per node: the reconcile passes' (``LiveReconciler``, leader only)
    and the presence cache's (every daemon: each serves the portal)."""

    def __init__(self, nodes: Sequence[NodeSpec], metrics: Metrics) -> None:
        self._metrics = metrics
        self.live = LiveReconciler(nodes, on_report=self._observe)
        self.presence = PresenceCache(nodes)
        self.drift_repaired: dict[str, int] = {}
        self._desired: DesiredLive | None = None

    async def start(self) -> None:
        await self.live.start()
        await self.presence.start()

    async def stop(self) -> None:
        await self.presence.stop()
        await self.live.stop()

    async def follow(self, applied: AppliedState) -> None:
        """The applied state changed: recompute what the switches should hold (off the
        loop: seconds at 1,000 tenants) and tell the presence cache which queues to read."""
        if not self.live.nodes:
            return
        self._desired = await asyncio.to_thread(desired_live, dict(applied.state))
        self.presence.set_managed(self._desired)

    async def push(self, applied: AppliedState) -> None:
        """Bring every node in line with the applied state (never raw specs)."""
        if not self.live.nodes:
            return
        if self._desired is None:
            await self.follow(applied)
        assert self._desired is not None
        await self.live.reconcile(self._desired, applied.managed_domains())

    def forget(self) -> None:
        """A daemon that lost leadership must not push what it last knew against the new
        leader on a switch's reconnect."""
        self.live.clear_desired()

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
        for node in self.live.nodes:
            self._metrics.esl_connected.labels(node.name).set(1 if node.connected else 0)

    def status(self) -> list[dict[str, Any]]:
        nodes = []
        for node, report in zip(self.live.nodes, self.live.reports(), strict=True):
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

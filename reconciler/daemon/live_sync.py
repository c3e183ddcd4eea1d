"""The daemon's side of the live switches: push the applied state to every node, count what
they repaired, and forget the desired state when leadership is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from reconciler.daemon.metrics import Metrics
from reconciler.live import LiveReconciler, NodeReport, NodeSpec, desired_live
from reconciler.reconcile import AppliedState


class LiveSync:
    def __init__(self, nodes: Sequence[NodeSpec], metrics: Metrics) -> None:
        self._metrics = metrics
        self.live = LiveReconciler(nodes, on_report=self._observe)
        self.drift_repaired: dict[str, int] = {}

    async def start(self) -> None:
        await self.live.start()

    async def stop(self) -> None:
        await self.live.stop()

    async def push(self, applied: AppliedState) -> None:
        """Bring every node in line with the applied state (never raw specs)."""
        if not self.live.nodes:
            return
        state = dict(applied.state)
        # pure but CPU-heavy at scale (seconds for 1,000 tenants): keep it off the loop
        desired = await asyncio.to_thread(desired_live, state)
        await self.live.reconcile(desired, applied.managed_domains())

    def forget(self) -> None:
        """A daemon that lost leadership must not push what it last knew against the new
        leader on a switch's reconnect."""
        self.live.clear_desired()

    def _observe(self, report: NodeReport) -> None:
        self._metrics.esl_connected.labels(report.node).set(1 if report.connected else 0)
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

"""Call history retention: the leader deletes each tenant's calls older than its spec's
``retention.calls`` (default 400 days), every ``interval`` seconds, counted per tenant in
``pbx_calls_expired_total``.

The leader only, so several daemons do not repeat the same delete; it reads the retention of
the specs the last pass loaded, for the tenants the pass applied (a tenant whose file is
invalid keeps its calls until it is valid again). A delete runs in a thread of its own on a
connection of its own: never on the pass's connection, never on the event loop.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from reconciler.core.logs import event
from reconciler.daemon.leader_rounds import Round
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import Reconciler
from reconciler.store import StoreUnavailable
from reconciler.store.calls import delete_calls_before
from reconciler.store.runner import ConnectionRunner

log = logging.getLogger(__name__)


def retention_cutoffs(reconciler: Reconciler, now: datetime) -> dict[str, datetime]:
    """``{tenant id: delete calls started before}`` for every applied tenant with a spec."""
    specs = reconciler.last_specs
    if specs is None:
        return {}
    return {
        tenant_id: now - timedelta(days=specs.tenants[tenant_id].spec.retention.calls_days)
        for tenant_id in reconciler.applied.state
        if tenant_id in specs.tenants
    }


async def expire_calls(
    runner: ConnectionRunner, cutoffs: dict[str, datetime], metrics: Metrics
) -> int:
    """One round; returns how many legs were deleted."""
    total = 0
    for tenant_id, cutoff in sorted(cutoffs.items()):
        deleted = await runner.run(delete_calls_before, tenant_id, cutoff)
        if deleted:
            metrics.calls_expired.labels(tenant_id).inc(deleted)
            event(log, "calls expired", tenant=tenant_id, count=deleted, before=cutoff.isoformat())
        total += deleted
    return total


def call_retention(metrics: Metrics) -> Round:
    """The leader's round (``leader_rounds``): each applied tenant's expired calls deleted."""

    async def one_round(runner: ConnectionRunner, current: Reconciler) -> None:
        try:
            await expire_calls(runner, retention_cutoffs(current, datetime.now(UTC)), metrics)
        except StoreUnavailable:
            event(log, "call retention waits for the database")

    return one_round

"""Voicemail retention: the leader deletes each box's messages older than its retention
(the box's ``voicemail.retention``, else the tenant's ``retention.voicemail``, the
platform's, or 90 days: ``core.retention``), every ``interval`` seconds, through
mod_voicemail's own ``vm_delete`` (``VoicemailBoxes``), never by unlinking a file, so the
module's database and the phones' lamps stay right. Audited per tenant, counted in
``pbx_audio_pruned_total{kind="voicemail"}``.

The leader only, so several daemons do not repeat the same deletes; the retention comes
from the specs the last pass loaded, for the tenants it applied (a tenant whose file is
invalid keeps its messages until it is valid again). A switch that does not answer skips
the round for that box: nothing is deleted on a guess.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from reconciler.core.logs import event
from reconciler.core.retention import expired_messages, policies, voicemail_days
from reconciler.core.voicemail_box import (
    NoSuchMessage,
    VoicemailBoxes,
    VoicemailRefused,
    VoicemailUnavailable,
)
from reconciler.daemon.leader_rounds import Round
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import Reconciler
from reconciler.store import StoreUnavailable
from reconciler.store.accounts import record_audit
from reconciler.store.runner import ConnectionRunner

log = logging.getLogger(__name__)


def box_days(reconciler: Reconciler) -> dict[tuple[str, str, str], int]:
    """``{(tenant id, domain, box): days kept}`` of every applied extension with voicemail."""
    specs = reconciler.last_specs
    if specs is None:
        return {}
    platform = specs.platform.retention if specs.platform is not None else None
    declared = {tid: loaded.spec.retention for tid, loaded in specs.tenants.items()}
    kept = policies(declared, platform)
    found: dict[tuple[str, str, str], int] = {}
    for tenant_id, state in reconciler.applied.state.items():
        loaded = specs.tenants.get(tenant_id)
        if loaded is None:
            continue
        own = {e.number: e.voicemail.retention for e in loaded.spec.extensions}
        for number, ext in state.extensions.items():
            if ext.voicemail_enabled:
                days = voicemail_days(own.get(number), kept[tenant_id])
                found[(tenant_id, state.tenant.domain, number)] = days
    return found


async def expire_voicemail(
    boxes: VoicemailBoxes,
    kept: dict[tuple[str, str, str], int],
    now: datetime,
    metrics: Metrics,
    runner: ConnectionRunner | None = None,
) -> dict[str, int]:
    """One round; returns ``{tenant id: messages deleted}``."""
    deleted: dict[str, int] = {}
    for (tenant_id, domain, box), days in sorted(kept.items()):
        try:
            old = expired_messages(await boxes.messages(box, domain), days, now)
        except VoicemailUnavailable:
            continue
        for message in old:
            try:
                await boxes.delete(message)
            except (NoSuchMessage, VoicemailUnavailable, VoicemailRefused) as exc:
                event(log, "voicemail not expired", logging.WARNING, box=box, error=str(exc))
                continue
            deleted[tenant_id] = deleted.get(tenant_id, 0) + 1
        if old:
            event(log, "voicemail expired", tenant=tenant_id, box=box, count=len(old))
    for tenant_id, count in deleted.items():
        metrics.audio_pruned.labels("voicemail").inc(count)
        if runner is not None:
            with contextlib.suppress(StoreUnavailable):
                await runner.run(
                    _audit, tenant_id, f"{count} voicemail message(s) past their retention deleted"
                )
    return deleted


def _audit(conn: Any, tenant_id: str, detail: str) -> None:
    record_audit(
        conn,
        actor=None,
        action="audio.prune",
        result="ok",
        tenant_id=tenant_id,
        target="voicemail",
        detail=detail,
    )


def voicemail_retention(boxes: VoicemailBoxes, metrics: Metrics) -> Round:
    """The leader's round (``leader_rounds``): each box's expired messages deleted."""

    async def one_round(runner: ConnectionRunner, current: Reconciler) -> None:
        await expire_voicemail(boxes, box_days(current), datetime.now(UTC), metrics, runner)

    return one_round

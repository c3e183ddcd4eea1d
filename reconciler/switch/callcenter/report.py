"""What one live pass on one node did, as the daemon's /status, metrics and logs show it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.core.plan import summary_counts
from reconciler.switch.callcenter.apply import LiveApplyReport
from reconciler.switch.callcenter.plan import LivePlan

log = logging.getLogger("reconciler.switch.callcenter.engine")


@dataclass(frozen=True)
class NodeReport:
    """One pass on one node.

    ``trigger``: reconcile (the daemon), connect (a resync after a (re)connect), resync, plan
    (read and plan only). ``planned``: add/change/destroy counts; ``repaired``: keys of the
    changes applied. ``refused``: changes whose commands were unsafe to build (counted in
    ``failed`` too, their reasons in ``errors``; for a plan, in ``warnings``).
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
    refused: int = 0
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
            "refused": self.refused,
            "repaired": list(self.repaired),
            "unmanaged": list(self.unmanaged),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "commands_sent": self.commands_sent,
            "duration_seconds": round(self.duration, 3),
            "last_sync": self.last_sync.isoformat() if self.last_sync else None,
        }


def planned_counts(plan: LivePlan) -> dict[str, int]:
    return summary_counts(plan.counts())


def plan_warnings(plan: LivePlan) -> tuple[str, ...]:
    return tuple(f"unreadable listing row: {row!r}" for row in plan.unparsed)


def plan_report(
    node: str, plan: LivePlan, *, duration: float, last_sync: datetime | None
) -> NodeReport:
    """A read-and-plan pass: what would change; refused changes are warned about."""
    refused = tuple(f"{c.key}: refused: {c.refused}" for c in plan.refused)
    return NodeReport(
        node,
        connected=True,
        trigger="plan",
        planned=planned_counts(plan),
        refused=len(refused),
        unmanaged=plan.unmanaged,
        warnings=plan_warnings(plan) + refused,
        duration=duration,
        last_sync=last_sync,
        plan=plan,
    )


def applied_report(
    node: str,
    trigger: str,
    plan: LivePlan,
    applied: LiveApplyReport,
    *,
    connected: bool,
    duration: float,
    last_sync: datetime | None,
) -> NodeReport:
    return NodeReport(
        node,
        connected=connected,
        trigger=trigger,
        planned=planned_counts(plan),
        applied=applied.applied,
        failed=len(applied.failed),
        skipped=len(applied.skipped),
        refused=sum(1 for r in applied.results if r.change.refused),
        repaired=tuple(r.change.key for r in applied.results if r.ok),
        unmanaged=plan.unmanaged,
        errors=tuple(applied.errors()),
        warnings=plan_warnings(plan),
        commands_sent=applied.commands_sent,
        duration=duration,
        last_sync=last_sync,
        plan=plan,
    )


def failure_report(
    node: str,
    trigger: str,
    plan: LivePlan | None,
    error: str,
    connected: bool,
    duration: float,
    last_sync: datetime | None,
    *,
    logged: bool,
) -> NodeReport:
    """A pass that could not finish (or start); ``logged``: worth a warning line (a node
    that is simply down or a plan-only read is reported, not logged)."""
    if logged:
        log.warning(
            "live pass failed", extra={"fields": {"node": node, "trigger": trigger, "error": error}}
        )
    return NodeReport(
        node,
        connected=connected,
        trigger=trigger,
        planned=planned_counts(plan) if plan is not None else {},
        errors=(error,),
        duration=duration,
        last_sync=last_sync,
        plan=plan,
    )


def log_report(report: NodeReport) -> None:
    """Only passes that changed something (or failed) are worth a line."""
    if not report.changes and not report.errors:
        return
    fields = {
        "node": report.node,
        "trigger": report.trigger,
        **report.planned,
        "applied": report.applied,
        "failed": report.failed,
        "skipped": report.skipped,
        "refused": report.refused,
        "seconds": round(report.duration, 3),
    }
    if report.errors:
        fields["first_error"] = report.errors[0]
        log.warning("live drift repaired with errors", extra={"fields": fields})
    else:
        log.info("live drift repaired", extra={"fields": fields})

"""``/status``: what this daemon knows, from durable records first (registry, spec status)
so a follower or a restarted daemon says the same as the leader that found it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.core.sync import TenantSync
from reconciler.daemon.snapshots import ServedSnapshot
from reconciler.reconcile import AppliedState, PassOutcome, Reconciler
from specs_schema.load import SpecSet


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StatusBoard:
    """Pass results and per-tenant reconcile times; everything else is derived on demand."""

    def __init__(self) -> None:
        self.last_pass: dict[str, Any] = {}
        self.reconciled_at: dict[str, datetime] = {}
        self.held: dict[str, str] = {}
        self.platform: dict[str, Any] = {}
        """The platform scope's last apply: ``result`` (applied / unchanged / failed),
        ``error``, ``at``; empty until a pass had platform changes."""

    def record_pass(self, trigger: str, result: str, seconds: float, **extra: Any) -> None:
        self.last_pass = {
            "trigger": trigger,
            "result": result,
            "seconds": round(seconds, 3),
            "finished_at": now_text(),
            **extra,
        }

    def record_outcome(self, trigger: str, outcome: PassOutcome) -> str:
        """Remember a pass; returns its result (ok / partial / error)."""
        planned = outcome.planned
        platform = outcome.platform
        applied_any = bool(outcome.report.applied) or platform.result == "applied"
        result = "ok" if outcome.ok else "partial" if applied_any else "error"
        if platform.result != "none":
            error = str(platform.error) if platform.error is not None else None
            self.platform = {"result": platform.result, "error": error, "at": now_text()}
        self.held = dict(planned.held)
        stamp = datetime.now(UTC).replace(microsecond=0)
        for tenant_id in planned.candidates | set(planned.invalid):
            self.reconciled_at[tenant_id] = stamp
        self.record_pass(
            trigger,
            result,
            outcome.seconds,
            changes=len(outcome.applied_changes().all_changes),
            revision=str(planned.revision) if planned.revision else None,
            full=planned.full,
        )
        return result


def daemon_status(
    *,
    leader: bool,
    database_up: bool,
    served: ServedSnapshot,
    board: StatusBoard,
    reconciler: Reconciler | None,
    nodes: list[dict[str, Any]],
    gateways: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``/status`` document (``pbx status`` renders it). ``gateways``: each node's
    carrier gateways, live (``SwitchLink.gateway_status``)."""
    tenants = (
        tenant_rows(reconciler.applied, reconciler.last_specs, board.reconciled_at, board.held)
        if reconciler is not None
        else {}
    )
    return {
        "role": "leader" if leader else "follower",
        "ready": served.current is not None,
        "database_up": database_up,
        "snapshot": served.describe(),
        "last_pass": board.last_pass,
        "platform": board.platform,
        "tenants": tenants,
        "nodes": nodes,
        "gateways": gateways_status(reconciler, gateways or {}),
    }


def gateways_status(reconciler: Reconciler | None, live: dict[str, Any]) -> dict[str, Any]:
    """Declared gateways (never a credential: only whether the host holds one) and their
    live state per node."""
    declared: dict[str, Any] = {}
    if reconciler is not None:
        problems = reconciler.applied.gateway_problems
        for name, g in sorted(reconciler.applied.platform.gateways.items()):
            declared[name] = {
                "managed": g.managed,
                "proxy": g.proxy or None,
                "register": g.register,
                "transport": g.transport,
                "nodes": list(g.node_names) or "all",
                "error": problems.get(name),
            }
    return {"declared": declared, "nodes": live}


def tenant_syncs(
    applied: AppliedState,
    specs: SpecSet | None,
    reconciled_at: Mapping[str, datetime],
    held: Mapping[str, str] | None = None,
) -> dict[str, TenantSync]:
    """Every known tenant's sync record, typed: built once per pass, the portal takes it as
    is and ``/status`` serialises it (``tenant_rows``)."""
    loaded = specs.tenants if specs is not None else {}
    ids = set(applied.registry) | set(applied.spec_status) | set(loaded)
    syncs: dict[str, TenantSync] = {}
    for tenant_id in sorted(ids):
        entry = applied.registry.get(tenant_id)
        invalid = applied.spec_status.get(tenant_id)
        spec = loaded.get(tenant_id)
        errors = tuple(invalid.errors) if invalid else ()
        syncs[tenant_id] = TenantSync(
            tenant_id=tenant_id,
            lifecycle=entry.status if entry else "",
            domain=entry.domain if entry else (spec.spec.domain if spec else ""),
            spec_file=spec.file if spec else (invalid.spec_file if invalid else None),
            spec_digest=spec.digest if spec else None,
            applied_digest=entry.spec_digest if entry else None,
            applied_revision=entry.applied_revision if entry else None,
            attempted_revision=entry.attempted_revision if entry else None,
            last_error=(
                f"invalid spec ({len(errors)} error(s)); left at last applied state"
                if errors
                else (entry.last_error if entry else None)
            ),
            last_reconcile=reconciled_at.get(tenant_id),
            spec_errors=errors,
            invalid_since=invalid.since if invalid else None,
            held=(held or {}).get(tenant_id),
        )
    return syncs


def tenant_rows(
    applied: AppliedState,
    specs: SpecSet | None,
    reconciled_at: Mapping[str, datetime],
    held: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``/status``'s tenants: ``tenant_syncs`` serialised."""
    syncs = tenant_syncs(applied, specs, reconciled_at, held)
    return {tenant_id: sync.to_dict() for tenant_id, sync in syncs.items()}

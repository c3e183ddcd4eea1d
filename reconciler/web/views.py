"""What a page or an API answer shows, as plain JSON-ready dicts built from the applied
state, the daemon's status and the live presence cache, already filtered by ``TenantScope``.

Pages, the JSON API and the server-sent events all use these, so the three can never
disagree about what a role sees. Times are ISO 8601 UTC strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciler.core.model import Agent, Extension, InboundNumber, Queue, TenantState, fs_name
from reconciler.core.plan import Scope
from reconciler.core.plan_text import stored_change_line
from reconciler.core.presence import AgentPresence, DomainPresence, Registration
from reconciler.core.sync import SyncStatus
from reconciler.store.accounts import ApiToken, AuditEntry, SessionRow
from reconciler.store.history import HistoryEntry
from reconciler.web.access import Principal, TenantScope
from reconciler.web.ports import NodeStatus, TenantSync

View = dict[str, Any]


def iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None


def tenant_summary(
    state: TenantState, sync: TenantSync | None, *, shows_errors: bool = False
) -> View:
    """``shows_errors``: the viewer administers the tenant (or the platform); agents and
    members see the sync status only, never what the files say or where they are."""
    tenant = state.tenant
    status = sync.sync if sync else SyncStatus.OUT_OF_SYNC
    return {
        "id": tenant.id,
        "name": tenant.name,
        "domain": tenant.domain,
        "lifecycle": tenant.status,
        "sync": str(status),
        "applied_revision": sync.applied_revision if sync else None,
        "attempted_revision": sync.attempted_revision if sync else None,
        "last_reconcile": iso(sync.last_reconcile) if sync else None,
        **_errors(sync, shows_errors),
        "extensions": len(state.extensions),
        "users": len(state.users),
        "queues": len(state.queues),
    }


def _errors(sync: TenantSync | None, shows_errors: bool) -> View:
    if sync is None or not shows_errors:
        return {"last_error": None, "spec_errors": []}
    return {"last_error": sync.last_error, "spec_errors": list(sync.spec_errors)}


def invalid_only_summary(sync: TenantSync, *, shows_errors: bool = False) -> View:
    """A tenant git declares but whose spec never applied (first version invalid)."""
    return {
        "id": sync.tenant_id,
        "name": sync.tenant_id,
        "domain": "",
        "lifecycle": sync.lifecycle or "new",
        "sync": str(sync.sync),
        "applied_revision": sync.applied_revision,
        "attempted_revision": sync.attempted_revision,
        "last_reconcile": iso(sync.last_reconcile),
        **_errors(sync, shows_errors),
        "extensions": 0,
        "users": 0,
        "queues": 0,
    }


def registration_view(reg: Registration) -> View:
    return {
        "node": reg.node,
        "contact": reg.contact,
        "user_agent": reg.user_agent,
        "network_ip": reg.network_ip,
        "network_port": reg.network_port,
        "status": reg.status,
        "expires_at": iso(reg.expires_at),
    }


def registrations_by_user(live: DomainPresence) -> dict[str, list[Registration]]:
    grouped: dict[str, list[Registration]] = {}
    for reg in live.registrations:
        grouped.setdefault(reg.user, []).append(reg)
    return grouped


def extension_view(ext: Extension, regs: Sequence[Registration], scope: TenantScope) -> View:
    return {
        "number": ext.number,
        "name": ext.name,
        "enabled": ext.enabled,
        "caller_id_name": ext.caller_id_name,
        "caller_id_number": ext.caller_id_number,
        "registered": bool(regs),
        "registrations": [registration_view(r) for r in regs],
        "own": ext.number in scope.own_extensions,
        "can_handle_credentials": _can_handle_credentials(scope, ext.number),
    }


def _can_handle_credentials(scope: TenantScope, number: str) -> bool:
    try:
        scope.require_credentials(number)
    except Exception:
        return False
    return True


def agent_live(presences: Sequence[AgentPresence]) -> View:
    """One agent merged over nodes: the status most nodes report, every node's detail."""
    statuses = [p.status for p in presences]
    status = max(set(statuses), key=statuses.count) if statuses else None
    return {
        "status": status,
        "state": presences[0].state if presences else None,
        "nodes": [
            {
                "node": p.node,
                "status": p.status,
                "state": p.state,
                "calls_answered": p.calls_answered,
                "last_status_change": iso(p.last_status_change),
            }
            for p in presences
        ],
    }


def agent_view(agent: Agent, state: TenantState, live: DomainPresence, scope: TenantScope) -> View:
    presences = live.agents.get(fs_name(agent.name, state.tenant.domain), ())
    return {
        "name": agent.name,
        "extension": agent.extension,
        "contact": agent.contact,
        "type": agent.type,
        "queues": sorted(t.queue for t in state.tiers.values() if t.agent == agent.name),
        "can_set_status": scope.can_set_status(agent),
        **agent_live(presences),
    }


def queue_view(queue: Queue, state: TenantState, live: DomainPresence) -> View:
    name = fs_name(queue.name, state.tenant.domain)
    members = live.members.get(name, ())
    tiers = sorted(
        (t for t in state.tiers.values() if t.queue == queue.name),
        key=lambda t: (t.level, t.position, t.agent),
    )
    return {
        "name": queue.name,
        "number": queue.number,
        "strategy": queue.strategy,
        "waiting": sum(1 for m in members if m.state in ("Waiting", "Trying")),
        "members": [
            {
                "caller_number": m.caller_number,
                "caller_name": m.caller_name,
                "state": m.state,
                "joined_at": iso(m.joined_at),
                "serving_agent": m.serving_agent,
                "node": m.node,
            }
            for m in members
        ],
        "agents": [
            {
                "name": t.agent,
                "level": t.level,
                "position": t.position,
                **agent_live(live.agents.get(fs_name(t.agent, state.tenant.domain), ())),
            }
            for t in tiers
        ],
    }


def did_view(did: InboundNumber) -> View:
    return {
        "number": did.number,
        "destination_kind": did.destination_kind,
        "destination": did.destination,
    }


def live_sections(scope: TenantScope, live: DomainPresence) -> View:
    """The parts of a tenant page that change without a reload (pages, API and SSE)."""
    state = scope.state
    regs = registrations_by_user(live)
    out: View = {
        "extensions": [
            extension_view(e, regs.get(e.number, ()), scope) for e in scope.visible_extensions()
        ],
        "agents": [agent_view(a, state, live, scope) for a in scope.visible_agents()],
        "nodes_connected": live.nodes_connected,
        "nodes_total": live.nodes_total,
    }
    if scope.sees_all:
        out["queues"] = [queue_view(state.queues[q], state, live) for q in sorted(state.queues)]
    return out


def tenant_detail(scope: TenantScope, sync: TenantSync | None, live: DomainPresence) -> View:
    view = {
        "tenant": tenant_summary(scope.state, sync, shows_errors=scope.sees_all),
        "role": str(scope.role),
        **live_sections(scope, live),
    }
    if scope.sees_all:
        dids = scope.state.inbound_numbers
        view["inbound_numbers"] = [did_view(dids[n]) for n in sorted(dids)]
        view["users"] = [
            {"email": u.email, "name": u.name, "role": u.role, "extensions": list(u.extensions)}
            for _, u in sorted(scope.state.users.items())
        ]
    return view


def history_view(entry: HistoryEntry) -> View:
    changes = entry.changes if isinstance(entry.changes, list) else []
    scope = entry.scope
    return {
        "id": entry.id,
        "scope": scope.value,
        "tenant": entry.tenant_id if scope is Scope.TENANT else None,
        "at": iso(entry.at),
        "action": entry.action,
        "result": entry.result,
        "revision": entry.revision,
        "dirty": entry.dirty,
        "host": entry.host,
        "changes": len(changes),
        "error": entry.error,
    }


SHOWN_CHANGES = 100  # per apply on the Activity page; a cold apply records hundreds of thousands


def history_changes(entry: HistoryEntry) -> list[str]:
    """What one apply changed, one line per change (``plan_text``'s rendering and its one
    sensitivity rule), the first ``SHOWN_CHANGES`` of them."""
    changes = entry.changes if isinstance(entry.changes, list) else []
    return [stored_change_line(c) for c in changes[:SHOWN_CHANGES] if isinstance(c, Mapping)]


def audit_view(entry: AuditEntry) -> View:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "tenant": entry.tenant_id,
        "action": entry.action,
        "target": entry.target,
        "result": entry.result,
        "client_addr": entry.client_addr,
        "detail": entry.detail,
    }


def node_view(node: NodeStatus) -> View:
    return {
        "name": node.name,
        "connected": node.connected,
        "last_sync": iso(node.last_sync),
        "drift_repairs": node.drift_repairs,
        "unmanaged": list(node.unmanaged),
        "errors": list(node.errors),
    }


def session_view(row: SessionRow, current_id: int | None = None) -> View:
    return {
        "id": row.id,
        "email": row.email,
        "created_at": iso(row.created_at),
        "last_seen_at": iso(row.last_seen_at),
        "expires_at": iso(row.expires_at),
        "client_addr": row.client_addr,
        "user_agent": row.user_agent,
        "current": row.id == current_id,
    }


def token_view(token: ApiToken) -> View:
    return {
        "id": token.id,
        "email": token.email,
        "name": token.name,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "expires_at": iso(token.expires_at),
    }


def me_view(principal: Principal, tenants: Mapping[str, TenantState]) -> View:
    return {
        "email": principal.email,
        "name": principal.name,
        "super_admin": principal.super_admin,
        "tenants": [
            {"id": t, "name": tenants[t].tenant.name, "role": principal.memberships[t].role}
            for t in principal.tenant_ids
            if t in tenants
        ],
    }


def tenant_rows(
    tenant_ids: Iterable[str],
    state: Mapping[str, TenantState],
    sync: Mapping[str, TenantSync],
    *,
    shows_errors: Callable[[str], bool],
) -> list[View]:
    """``shows_errors(tenant_id)``: whether the viewer administers that tenant."""
    rows = []
    for tenant_id in tenant_ids:
        errors = shows_errors(tenant_id)
        if tenant_id in state:
            rows.append(tenant_summary(state[tenant_id], sync.get(tenant_id), shows_errors=errors))
        elif tenant_id in sync:
            rows.append(invalid_only_summary(sync[tenant_id], shows_errors=errors))
    return rows


def history_with_changes(entry: HistoryEntry) -> View:
    """A history row for the Activity page: with what it changed."""
    return {**history_view(entry), "lines": history_changes(entry)}

"""Activity: the applies and the audit trail, for super admins (every tenant, or one they
pick) and tenant admins (their tenant's), as pages, CSV and the API.

The audit trail is filtered (tenant, actor, action, a date range) and paged; who reads it
decides its scope (``store.audit_query``), so no filter, page or export ever reaches
another tenant's rows. A tenant admin's filters have no tenant field at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from reconciler.store.audit_query import AuditFilter, read_audit_page
from reconciler.store.runner import Connection
from reconciler.web import views
from reconciler.web.audit_csv import audit_csv
from reconciler.web.context import port_of, portal_of, render, scope
from reconciler.web.errors import BadRequest, printable
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, ok, query_limit, query_offset, require_super
from reconciler.web.openapi import LIMIT, OFFSET, TENANT, list_of, operation, string
from reconciler.web.ports import HISTORY

routes = web.RouteTableDef()

PAGE_SIZE = 50
CSV_ROWS = 10_000  # an export beyond that is a database dump: narrow the filters
KNOWN_ACTIONS = (  # offered in the action filter; any other text filters all the same
    "login",
    "logout",
    "reveal",
    "rotate",
    "set_status",
    "invite",
    "activate",
    "reset_issue",
    "reset_request",
    "reset",
    "password_change",
    "token_create",
    "token_revoke",
    "session_revoke",
    "revoke",
    "revoke_all",
    "login_unlock",
)


def audit_filter(request: web.Request, *, tenant_allowed: bool) -> AuditFilter:
    """The query's filters; ``tenant`` only where the reader may pick one (super admins)."""
    q = request.query
    return AuditFilter(
        tenant=_text(q, "tenant") if tenant_allowed else None,
        actor=_text(q, "actor"),
        action=_text(q, "action"),
        since=_moment(q.get("since", ""), "since", end_of_day=False),
        until=_moment(q.get("until", ""), "until", end_of_day=True),
    )


def _text(query: Any, name: str) -> str | None:
    value = str(query.get(name, "")).strip()
    if len(value) > 200:
        raise BadRequest(f"{name} is too long")
    return printable(value, name) if value else None


def _moment(text: str, name: str, *, end_of_day: bool) -> datetime | None:
    """An ISO 8601 date or date and time (UTC unless it says otherwise). A bare date as
    ``until`` includes that whole day."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            at = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return at + timedelta(days=1) if end_of_day else at
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"{name} must be an ISO 8601 date or date and time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _audit(
    request: web.Request, tenant_scope: str | None, wanted: AuditFilter, limit: int, offset: int
) -> list[views.View]:
    entries = await portal_of(request).db.run(
        read_audit_page, scope=tenant_scope, wanted=wanted, limit=limit, offset=offset
    )
    return [views.audit_view(e) for e in entries]


# -- pages ---------------------------------------------------------------------------------


@routes.get("/platform/activity")
async def platform_activity(request: web.Request) -> web.StreamResponse:
    require_super(request)
    wanted = audit_filter(request, tenant_allowed=True)
    return await _page(request, None, wanted, "/platform/activity")


@routes.get("/t/{tenant}/activity")
async def tenant_activity(request: web.Request) -> web.StreamResponse:
    tenant_id, wanted = _tenant_reader(request)
    return await _page(request, tenant_id, wanted, f"/t/{tenant_id}/activity")


def _tenant_reader(request: web.Request) -> tuple[str, AuditFilter]:
    """A tenant's Activity: its admins' (and super admins'), with filters but no tenant."""
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    return sc.tenant_id, audit_filter(request, tenant_allowed=False)


async def _page(
    request: web.Request, tenant_id: str | None, wanted: AuditFilter, base: str
) -> web.Response:
    page = _page_number(request.query.get("page", "1"))
    rows = await _audit(request, tenant_id, wanted, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    history = await port_of(request, HISTORY).history(tenant_id or wanted.tenant, 50)
    query = {k: v for k, v in request.query.items() if k != "page" and v}
    tenant = scope(request, tenant_id).state.tenant if tenant_id else None
    return render(
        request,
        "activity.html",
        tenant=tenant,
        history=[views.history_with_changes(h) for h in history],
        audit=rows[:PAGE_SIZE],
        filters=query,
        actions=KNOWN_ACTIONS,
        page=page,
        previous=_link(base, query, page - 1) if page > 1 else None,
        next=_link(base, query, page + 1) if len(rows) > PAGE_SIZE else None,
        csv_link=base + "/audit.csv" + ("?" + urlencode(query) if query else ""),
    )


def _page_number(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 7 else 1


def _link(base: str, query: dict[str, str], page: int) -> str:
    return base + "?" + urlencode({**query, "page": str(page)} if page > 1 else query)


@routes.get("/platform/activity/audit.csv")
async def platform_csv(request: web.Request) -> web.StreamResponse:
    require_super(request)
    return await _csv(request, None, audit_filter(request, tenant_allowed=True), "audit")


@routes.get("/t/{tenant}/activity/audit.csv")
async def tenant_csv(request: web.Request) -> web.StreamResponse:
    tenant_id, wanted = _tenant_reader(request)
    return await _csv(request, tenant_id, wanted, f"audit-{tenant_id}")


def _export(conn: Connection, *, tenant_scope: str | None, wanted: AuditFilter) -> str:
    """Read and format in the portal's database threads: 10,000 rows of CSV are tens of
    milliseconds the event loop (shared with xml_curl) never spends."""
    entries = read_audit_page(conn, scope=tenant_scope, wanted=wanted, limit=CSV_ROWS)
    return audit_csv(views.audit_view(e) for e in entries)


async def _csv(
    request: web.Request, tenant_scope: str | None, wanted: AuditFilter, name: str
) -> web.Response:
    text = await portal_of(request).db.run(_export, tenant_scope=tenant_scope, wanted=wanted)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# -- API -----------------------------------------------------------------------------------


@routes.get(V1 + "/audit")
async def api_audit(request: web.Request) -> web.StreamResponse:
    require_super(request)
    wanted = audit_filter(request, tenant_allowed=True)
    rows = await _audit(request, None, wanted, query_limit(request), query_offset(request))
    return ok({"audit": rows})


@routes.get(V1 + "/tenants/{tenant}/audit")
async def api_tenant_audit(request: web.Request) -> web.StreamResponse:
    tenant_id, wanted = _tenant_reader(request)
    rows = await _audit(request, tenant_id, wanted, query_limit(request), query_offset(request))
    return ok({"audit": rows})


# -- OpenAPI -------------------------------------------------------------------------------


def _query(name: str, description: str) -> dict[str, Any]:
    schema = string(maxLength=200, description=description)
    return {"name": name, "in": "query", "required": False, "schema": schema}


FILTERS = [
    _query("actor", "only this person's rows (email, any case)"),
    _query("action", "only this action (login, reveal, set_status, ...)"),
    _query("since", "ISO 8601 date or date and time (UTC unless given): rows at or after"),
    _query("until", "ISO 8601 date (that whole day included) or date and time: rows before"),
]


def _paths() -> dict[str, Any]:
    tenant_filter = _query("tenant", "only rows of this tenant")
    return {
        "/audit": {
            "get": operation(
                "audit trail of every tenant, filtered and paged (super admins)",
                list_of("audit", "Audit"),
                params=[LIMIT, OFFSET, tenant_filter, *FILTERS],
            )
        },
        "/tenants/{tenant}/audit": {
            "get": operation(
                "audit trail of the tenant, filtered and paged (admins)",
                list_of("audit", "Audit"),
                params=[TENANT, LIMIT, OFFSET, *FILTERS],
            )
        },
    }


FEATURE = Feature(name="activity", routes=(routes,), openapi_paths=_paths, ports=(HISTORY,))

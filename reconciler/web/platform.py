"""The platform, for super admins: every tenant's sync state and the switch nodes (the
overview), the apply history and audit trail of every tenant (**Activity**), and search
across tenants, extensions and people; as pages and as the API. Unknown (404) to others."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from reconciler.web import views
from reconciler.web.access import Principal
from reconciler.web.context import port_of, portal_of, render, render_html
from reconciler.web.events import fragment_stream
from reconciler.web.feature import Feature, NavEntry
from reconciler.web.handling import V1, ok, query_limit, require_super
from reconciler.web.openapi import (
    LIMIT,
    array,
    list_of,
    obj,
    operation,
    string,
)
from reconciler.web.ports import HISTORY, NODES, TENANT_SYNC

routes = web.RouteTableDef()

PAGE_SIZE = 50
OVERVIEW_EVERY = 2.0


def nav(who: Principal) -> Sequence[NavEntry]:
    return [NavEntry("Platform", "/platform", prefix=True)] if who.super_admin else []


# -- pages ---------------------------------------------------------------------------------


@routes.get("/platform")
async def platform(request: web.Request) -> web.StreamResponse:
    context = overview_context(request)
    query = {k: request.query[k] for k in ("sync", "page") if request.query.get(k)}
    live_query = "?" + urlencode(query) if query else ""
    return render(request, "platform.html", live_query=live_query, **context)


def overview_context(request: web.Request) -> dict[str, Any]:
    """The overview as the page and its live stream show it (``sync`` and ``page`` from
    the query)."""
    require_super(request)
    portal = portal_of(request)
    overview = portal.overview.rows(
        portal.deps.applied_state(), port_of(request, TENANT_SYNC).tenant_sync()
    )
    wanted = request.query.get("sync", "")
    rows = overview.worst_first
    if wanted in overview.counts:
        rows = [r for r in rows if r["sync"] == wanted]
    page = max(1, _int(request.query.get("page", "1")))
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    return {
        "rows": rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "counts": overview.counts,
        "sync_filter": wanted,
        "page": page,
        "pages": pages,
        "total": len(overview.by_id),
        "nodes": [views.node_view(n) for n in port_of(request, NODES).nodes()],
    }


@routes.get("/platform/live")
async def platform_live(request: web.Request) -> web.StreamResponse:
    """The overview, live: looked at every ``OVERVIEW_EVERY`` seconds and on every change
    of the presence cache (passes and node reports do not signal), sent when it changed."""

    def fragment(req: web.Request) -> bytes:
        html = render_html(req, "_overview.html", **overview_context(req))
        payload = json.dumps({"id": "live-overview", "html": html})
        return f"event: fragment\ndata: {payload}\n\n".encode()

    return await fragment_stream(request, require_super, fragment, every=OVERVIEW_EVERY)


def _int(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 1


@routes.get("/platform/search")
async def search(request: web.Request) -> web.StreamResponse:
    require_super(request)
    query = request.query.get("q", "")[:100]
    state = portal_of(request).deps.applied_state()
    hits = portal_of(request).searcher.index(state).search(query) if query.strip() else []
    return render(request, "search.html", query=query, hits=hits)


# -- API -----------------------------------------------------------------------------------


@routes.get(V1 + "/nodes")
async def api_nodes(request: web.Request) -> web.StreamResponse:
    require_super(request)
    return ok({"nodes": [views.node_view(n) for n in port_of(request, NODES).nodes()]})


@routes.get(V1 + "/history")
async def api_history(request: web.Request) -> web.StreamResponse:
    require_super(request)
    entries = await port_of(request, HISTORY).history(None, query_limit(request))
    return ok({"history": [views.history_view(h) for h in entries]})


@routes.get(V1 + "/search")
async def api_search(request: web.Request) -> web.StreamResponse:
    require_super(request)
    query = request.query.get("q", "")[:100]
    portal = portal_of(request)
    hits = portal.searcher.index(portal.deps.applied_state()).search(query)
    return ok(
        {
            "hits": [
                {"kind": h.kind, "tenant": h.tenant_id, "key": h.key, "label": h.label}
                for h in hits
            ]
        }
    )


# -- OpenAPI -------------------------------------------------------------------------------


def _paths() -> dict[str, Any]:
    return {
        "/nodes": {"get": operation("switch nodes (super admins)", list_of("nodes", "Node"))},
        "/history": {
            "get": operation(
                "apply history of every tenant (super admins)",
                list_of("history", "History"),
                params=[LIMIT],
            )
        },
        "/search": {
            "get": operation(
                "search tenants, extensions, users, agents, queues, DIDs (super admins)",
                obj(
                    ["hits"],
                    hits=array(
                        obj(
                            ["kind", "tenant", "key", "label"],
                            kind=string(),
                            tenant=string(),
                            key=string(),
                            label=string(),
                        )
                    ),
                ),
                params=[{"name": "q", "in": "query", "required": False, "schema": string()}],
            )
        },
    }


FEATURE = Feature(
    name="platform",
    routes=(routes,),
    nav=nav,
    openapi_paths=_paths,
    ports=(TENANT_SYNC, NODES, HISTORY),
)

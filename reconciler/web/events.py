"""Server-sent events: the live parts of a tenant page (registrations, agents' status and
state, callers waiting in queues) re-rendered whenever the presence cache changes.

Each event is ``fragment`` with ``{"id": element id, "html": rendered partial}``; the page's
one static script swaps it in. Rendering reuses the page's own partials and the caller's
scope is re-checked before every update, so a revoked session or a demotion in git stops
the stream (``end``) instead of leaking one more update. Idle streams get a comment every
``sse_heartbeat`` seconds (proxies drop silent connections).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from reconciler.web import views
from reconciler.web.context import IDENTITY, port_of, portal_of, render_html, scope
from reconciler.web.errors import PortalError
from reconciler.web.ports import PRESENCE

routes = web.RouteTableDef()

FRAGMENTS = {
    "live-extensions": "_extensions.html",
    "live-agents": "_agents.html",
    "live-queues": "_queues.html",
}


@routes.get("/t/{tenant}/live")
async def live(request: web.Request) -> web.StreamResponse:
    tenant_id = request.match_info["tenant"]
    scope(request, tenant_id)  # 404/401 before the stream starts
    portal = portal_of(request)
    presence = portal.port(PRESENCE)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    sent = -1
    try:
        while not portal.closing.is_set():
            if not await _still_allowed(request):
                await response.write(b"event: end\ndata: {}\n\n")
                break
            version = presence.version
            if version != sent:
                await response.write(_fragments(request, tenant_id))
                sent = version
            else:
                await response.write(b": still here\n\n")
            await _next_change(request, sent)
    except (ConnectionResetError, ConnectionError):
        pass
    return response


async def _next_change(request: web.Request, version: int) -> None:
    """Until the presence cache moves past ``version``, the heartbeat, or shutdown."""
    portal = portal_of(request)
    changed = asyncio.ensure_future(
        portal.port(PRESENCE).changed(version, portal.config.sse_heartbeat)
    )
    closing = asyncio.ensure_future(portal.closing.wait())
    try:
        await asyncio.wait({changed, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (changed, closing):
            task.cancel()


async def _still_allowed(request: web.Request) -> bool:
    portal = portal_of(request)
    cookie = request.cookies.get(portal.cookie_name)
    try:
        request[IDENTITY] = await portal.sessions.resolve_cookie(cookie) if cookie else None
        scope(request, request.match_info["tenant"])
    except PortalError:
        return False
    return request[IDENTITY] is not None


def _fragments(request: web.Request, tenant_id: str) -> bytes:
    sc = scope(request, tenant_id)
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    sections = views.live_sections(sc, live)
    out = []
    for element, template in FRAGMENTS.items():
        if template == "_queues.html" and "queues" not in sections:
            continue
        html = render_html(
            request,
            template,
            scope=sc,
            t=sections,
            statuses=("Available", "On Break", "Logged Out"),
        )
        payload = json.dumps({"id": element, "html": html})
        out.append(f"event: fragment\ndata: {payload}\n\n")
    return "".join(out).encode()

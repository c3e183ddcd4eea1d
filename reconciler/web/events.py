"""Server-sent events: the live parts of pages re-rendered as things change, the tenant
pages' here (registrations, agents' status and state, callers waiting in queues) and any
feature's through ``fragment_stream`` (the overview, the queue wallboard).

Each event is ``fragment`` with ``{"id": element id, "html": rendered partial}``; the page's
one static script swaps it in. Rendering reuses the page's own partials and the caller's
right to see it is re-checked before every update, so a revoked session or a demotion in
git stops the stream (``end``) instead of leaking one more update. A stream renders on each
change of the presence cache (and every few seconds for facts the cache does not signal)
and sends only what changed; an idle one gets a comment every ``sse_heartbeat`` seconds
(proxies drop silent connections).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from reconciler.web import views
from reconciler.web.context import IDENTITY, port_of, portal_of, render_html, scope
from reconciler.web.errors import PortalError
from reconciler.web.ports import PRESENCE

routes = web.RouteTableDef()


class Changes(Protocol):
    """What a stream waits on: the presence cache by default, or another live source (a
    feature's own, e.g. the switches' voicemail)."""

    @property
    def version(self) -> int: ...

    async def changed(self, after: int, timeout: float) -> int: ...  # noqa: ASYNC109


FRAGMENTS = {
    "live-extensions": "_extensions.html",
    "live-agents": "_agents.html",
    "live-queues": "_queues.html",
}


@routes.get("/t/{tenant}/live")
async def live(request: web.Request) -> web.StreamResponse:
    def allowed(req: web.Request) -> None:
        scope(req, req.match_info["tenant"])

    return await fragment_stream(
        request, allowed, lambda req: _fragments(req, req.match_info["tenant"])
    )


async def fragment_stream(
    request: web.Request,
    allowed: Callable[[web.Request], object],
    fragments: Callable[[web.Request], bytes | Awaitable[bytes]],
    *,
    every: float | None = None,
    changes: Changes | None = None,
) -> web.StreamResponse:
    """A live stream of ``fragments(request)`` (``fragment`` events), sent again whenever
    what it renders changes: looked at on each change of the presence cache, and every
    ``every`` seconds (default: the heartbeat) for facts the cache does not signal.
    ``allowed(request)`` raises (404, 401) when the caller may not see it: checked before
    the stream starts and before every update. ``changes``: what to wait on instead of the
    presence cache; ``fragments`` may be a coroutine function (a read over ESL)."""
    allowed(request)  # 404/401 before the stream starts
    portal = portal_of(request)
    presence = changes or portal.port(PRESENCE)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    sent = b""
    try:
        while not portal.closing.is_set():
            if not await _still_allowed(request, allowed):
                await response.write(b"event: end\ndata: {}\n\n")
                break
            version = presence.version
            rendered = fragments(request)
            body = await rendered if inspect.isawaitable(rendered) else rendered
            await response.write(body if body != sent else b": still here\n\n")
            sent = body
            await _next_change(request, presence, version, every or portal.config.sse_heartbeat)
    except (ConnectionResetError, ConnectionError):
        pass
    return response


async def _next_change(request: web.Request, presence: Changes, version: int, wait: float) -> None:
    """Until ``presence`` moves past ``version``, ``wait`` seconds, or shutdown."""
    portal = portal_of(request)
    changed = asyncio.ensure_future(presence.changed(version, wait))
    closing = asyncio.ensure_future(portal.closing.wait())
    try:
        await asyncio.wait({changed, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (changed, closing):
            task.cancel()


async def _still_allowed(request: web.Request, allowed: Callable[[web.Request], object]) -> bool:
    portal = portal_of(request)
    cookie = request.cookies.get(portal.cookie_name)
    try:
        request[IDENTITY] = await portal.sessions.resolve_cookie(cookie) if cookie else None
        if request[IDENTITY] is None:
            return False
        allowed(request)
    except PortalError:
        return False
    return True


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

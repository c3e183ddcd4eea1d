"""The queue wallboard: one queue on a wall screen, live. Callers waiting and the longest
wait now; the queue's agents by state (available, on break, logged out, in a call); today's
answered and abandoned callers, longest wait and service level.

Live facts come from the presence cache; today's figures from ``core.queue_today``, kept in
this daemon's memory and fed by a task that looks at every queue whenever the cache changes
(at most once a second), and by each render (so a wallboard's figures are never older than
its callers). Seen by the tenant's admins (and super admins) and by the agents of that
queue; anyone else, or another tenant's queue, gets 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from reconciler.core.model import Queue, TenantState, fs_name
from reconciler.core.presence import AgentPresence, DomainPresence, PresenceView
from reconciler.core.queue_today import QueueToday
from reconciler.web.access import TenantScope
from reconciler.web.context import PORTAL_KEY, port_of, render, render_html, scope
from reconciler.web.errors import NotFound
from reconciler.web.events import fragment_stream
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, ok
from reconciler.web.openapi import TENANT, integer, obj, operation, string
from reconciler.web.ports import PRESENCE

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
TODAY = web.AppKey("pbx_queue_today", QueueToday)
TALLY_EVERY = 1.0  # seconds between two looks of the background tally at most
STATES = ("available", "in call", "on break", "logged out")


def visible_queues(sc: TenantScope) -> list[Queue]:
    """The queues whose wallboard this person may open: all for admins, else the queues
    one of their own agents serves."""
    state = sc.state
    if sc.sees_all:
        return [state.queues[q] for q in sorted(state.queues)]
    mine = {a.name for a in sc.visible_agents()}
    served = {t.queue for t in state.tiers.values() if t.agent in mine}
    return [state.queues[q] for q in sorted(served) if q in state.queues]


def _queue(request: web.Request) -> tuple[TenantScope, Queue]:
    sc = scope(request, request.match_info["tenant"])
    name = request.match_info["queue"]
    for queue in visible_queues(sc):
        if queue.name == name:
            return sc, queue
    raise NotFound(f"no queue {name}")


def _agent_state(presences: Sequence[AgentPresence], serving: bool) -> str:
    if serving or any(p.state == "In a queue call" for p in presences):
        return "in call"
    statuses = [p.status for p in presences]
    status = max(set(statuses), key=statuses.count) if statuses else "Logged Out"
    if status.startswith("Available"):
        return "available"
    return "on break" if status == "On Break" else "logged out"


def board(
    state: TenantState, queue: Queue, live: DomainPresence, today: QueueToday, now: datetime
) -> dict[str, Any]:
    """What the wallboard shows (the page, its live fragment and the API)."""
    name = fs_name(queue.name, state.tenant.domain)
    members = live.members.get(name, ())
    today.observe(name, members, now, complete=live.nodes_connected >= live.nodes_total)
    figures = today.figures(name, now)
    waits = sorted(
        (
            (now - m.joined_at).total_seconds() if m.joined_at else 0.0
            for m in members
            if m.state in ("Waiting", "Trying")
        ),
        reverse=True,
    )
    serving = {m.serving_agent for m in members if m.state == "Answered"}
    agents: dict[str, list[str]] = {s: [] for s in STATES}
    for tier in sorted(t.agent for t in state.tiers.values() if t.queue == queue.name):
        fs_agent = fs_name(tier, state.tenant.domain)
        agents[_agent_state(live.agents.get(fs_agent, ()), fs_agent in serving)].append(tier)
    level = figures.service_level()
    return {
        "queue": queue.name,
        "number": queue.number,
        "waiting": len(waits),
        "longest_waiting": int(waits[0]) if waits else 0,
        "waits": [int(w) for w in waits],
        "agents": agents,
        "answered": figures.answered,
        "abandoned": figures.abandoned,
        "longest_wait_today": int(figures.longest_wait),
        "service_level": None if level is None else round(level * 100),
        "service_level_seconds": int(today.target_seconds),
        "nodes_connected": live.nodes_connected,
        "nodes_total": live.nodes_total,
    }


def _board(request: web.Request) -> dict[str, Any]:
    sc, queue = _queue(request)
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    return board(sc.state, queue, live, request.app[TODAY], datetime.now(UTC))


@routes.get("/t/{tenant}/queues/{queue}/wallboard")
async def wallboard_page(request: web.Request) -> web.StreamResponse:
    sc, _ = _queue(request)
    return render(request, "wallboard.html", scope=sc, b=_board(request))


@routes.get("/t/{tenant}/queues/{queue}/wallboard/live")
async def wallboard_live(request: web.Request) -> web.StreamResponse:
    def fragment(req: web.Request) -> bytes:
        html = render_html(req, "_wallboard.html", b=_board(req))
        return f"event: fragment\ndata: {json.dumps({'id': 'board', 'html': html})}\n\n".encode()

    return await fragment_stream(request, _queue, fragment, every=1.0)


@routes.get(V1 + "/tenants/{tenant}/queues/{queue}/wallboard")
async def api_wallboard(request: web.Request) -> web.StreamResponse:
    return ok(_board(request))


# -- the background tally ------------------------------------------------------------------


TALLY_SLICE = 50  # tenants per look before the event loop gets a turn


def tally(tenants: Iterable[TenantState], presence: PresenceView, today: QueueToday) -> None:
    """One look at every queue of ``tenants`` (one presence read per tenant with queues)."""
    now = datetime.now(UTC)
    for tenant in tenants:
        if not tenant.queues:
            continue
        live = presence.domain(tenant.tenant.domain)
        complete = live.nodes_connected >= live.nodes_total
        for queue in tenant.queues:
            name = fs_name(queue, tenant.tenant.domain)
            today.observe(name, live.members.get(name, ()), now, complete=complete)


async def _tally(app: web.Application) -> None:
    """Every queue looked at after each change of the presence cache (at most once every
    ``TALLY_EVERY`` s), ``TALLY_SLICE`` tenants at a time: at 1,000 tenants a whole look
    costs tens of milliseconds, never in one piece on the loop xml_curl may share."""
    portal = app[PORTAL_KEY]
    presence = portal.port(PRESENCE)
    version = -1
    while not portal.closing.is_set():
        version = await presence.changed(version, 60.0)
        tenants = list(portal.deps.applied_state().values())
        try:
            for start in range(0, len(tenants), TALLY_SLICE):
                tally(tenants[start : start + TALLY_SLICE], presence, app[TODAY])
                await asyncio.sleep(0)
        except Exception:  # a bad look must not end the day's counting
            log.exception("wallboard tally failed; next look at the next change")
        await asyncio.sleep(TALLY_EVERY)


async def lifetime(app: web.Application) -> AsyncIterator[None]:
    app[TODAY] = QueueToday(app[PORTAL_KEY].config.service_level)
    task = asyncio.create_task(_tally(app))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- OpenAPI -------------------------------------------------------------------------------

QUEUE = {
    "name": "queue",
    "in": "path",
    "required": True,
    "schema": string(pattern="^[a-z0-9][a-z0-9_-]{0,62}$"),
}


def _paths() -> dict[str, Any]:
    names = {"type": "array", "items": string()}
    agents = obj(list(STATES), **{s: names for s in STATES})
    return {
        "/tenants/{tenant}/queues/{queue}/wallboard": {
            "get": operation(
                "a queue's wallboard: waiting callers, agents by state, today's figures "
                "(admins, and agents of the queue)",
                obj(
                    ["queue", "waiting", "agents", "answered", "abandoned"],
                    queue=string(),
                    number=string(),
                    waiting=integer(),
                    longest_waiting=integer(),
                    waits={"type": "array", "items": integer()},
                    agents=agents,
                    answered=integer(),
                    abandoned=integer(),
                    longest_wait_today=integer(),
                    service_level={"type": "integer", "nullable": True},
                    service_level_seconds=integer(),
                    nodes_connected=integer(),
                    nodes_total=integer(),
                ),
                params=[TENANT, QUEUE],
            )
        }
    }


FEATURE = Feature(
    name="wallboard",
    routes=(routes,),
    openapi_paths=_paths,
    ports=(PRESENCE,),
    lifetime=(lifetime,),
)

"""Tenants: what a person sees of their tenants and does there, as pages and as the API:
the choice of tenant, a tenant's page (extensions with live registrations, agents, queues,
DIDs, people), an extension's page with its credentials, agents' status, and the tenant's
Activity. The live parts refresh over server-sent events (``events``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from reconciler.web import events, totp, views, wallboard
from reconciler.web.access import Principal, visible_tenant_ids
from reconciler.web.context import port_of, portal_of, principal, render, scope
from reconciler.web.errors import SwitchUnavailable
from reconciler.web.feature import Feature, NavEntry
from reconciler.web.handling import (
    V1,
    actor,
    body_field,
    form_field,
    ok,
    query_limit,
    query_offset,
    see_other,
)
from reconciler.web.openapi import (
    AGENT,
    LIMIT,
    NUMBER,
    OFFSET,
    TENANT,
    array,
    boolean,
    error_answer,
    integer,
    list_of,
    obj,
    operation,
    ref,
    string,
)
from reconciler.web.phone_setup import account_uri, transports, wave_account_xml
from reconciler.web.ports import CREDENTIALS, HISTORY, PRESENCE, TENANT_SYNC

routes = web.RouteTableDef()
STATUSES = ("Available", "On Break", "Logged Out")
EXT = V1 + "/tenants/{tenant}/extensions/{number}"


def nav(who: Principal) -> Sequence[NavEntry]:
    return [NavEntry(t, f"/t/{t}", prefix=True) for t in who.tenant_ids[:5]]


# -- pages ---------------------------------------------------------------------------------


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    me = principal(request)
    if me.super_admin:
        return see_other("/platform")
    state = portal_of(request).deps.applied_state()
    tenants = [t for t in me.tenant_ids if t in state]
    if len(tenants) == 1:
        return see_other(f"/t/{tenants[0]}")
    return render(request, "choose.html", tenants=[state[t] for t in tenants], roles=me.memberships)


@routes.get("/t/{tenant}")
async def tenant_page(request: web.Request) -> web.StreamResponse:
    return _tenant_page(request, request.match_info["tenant"])


def _tenant_page(
    request: web.Request, tenant_id: str, *, status_error: str | None = None, status: int = 200
) -> web.Response:
    sc = scope(request, tenant_id)
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    detail = views.tenant_detail(
        sc, port_of(request, TENANT_SYNC).tenant_sync().get(tenant_id), live
    )
    # history and audit live on the Activity page: this one never waits for the database
    return render(
        request,
        "tenant.html",
        status=status,
        t=detail,
        scope=sc,
        statuses=STATUSES,
        status_error=status_error,
        wallboards=[q.name for q in wallboard.visible_queues(sc)],
    )


@routes.get("/t/{tenant}/extensions/{number}")
async def extension_page(request: web.Request) -> web.StreamResponse:
    return _extension_page(request, rotated=request.query.get("rotated") == "1")


def _extension_page(
    request: web.Request, *, rotated: bool = False, confirm_rotate: bool = False
) -> web.Response:
    sc = scope(request, request.match_info["tenant"])
    ext = sc.extension(request.match_info["number"])
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    regs = views.registrations_by_user(live).get(ext.number, [])
    return render(
        request,
        "extension.html",
        scope=sc,
        transports=transports(portal_of(request).config, sc.state.tenant.domain),
        ext=views.extension_view(ext, regs, sc),
        rotated=rotated,
        confirm_rotate=confirm_rotate,
    )


@routes.post("/t/{tenant}/extensions/{number}/reveal")
async def reveal(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    creds = await actor(request).reveal(sc, request.match_info["number"])
    rows = transports(portal_of(request).config, creds.domain)
    return render(
        request,
        "credentials.html",
        scope=sc,
        creds=creds,
        transports=rows,
        qr=totp.qr_data_uri(account_uri(creds, rows[0])),
        wave_qr=totp.qr_data_uri(
            wave_account_xml(creds, rows[0], f"{creds.username} {sc.state.tenant.name}")
        ),
    )


@routes.post("/t/{tenant}/extensions/{number}/rotate")
async def rotate(request: web.Request) -> web.StreamResponse:
    """Only once confirmed (it logs out every phone of the extension): the page's script asks
    in a dialog; without script, this answers with the question before doing anything."""
    tenant_id, number = request.match_info["tenant"], request.match_info["number"]
    form = await request.post()
    sc = scope(request, tenant_id)
    if form.get("confirmed") != "1":
        sc.require_credentials(number)
        return _extension_page(request, confirm_rotate=True)
    await actor(request).rotate(sc, number)
    return see_other(f"/t/{tenant_id}/extensions/{number}?rotated=1")


@routes.post("/t/{tenant}/agents/{agent}/status")
async def agent_status(request: web.Request) -> web.StreamResponse:
    tenant_id = request.match_info["tenant"]
    form = await request.post()
    try:
        await actor(request).set_status(
            scope(request, tenant_id), request.match_info["agent"], form_field(form, "status")
        )
    except SwitchUnavailable as exc:  # said in the page, where the person clicked
        return _tenant_page(request, tenant_id, status_error=exc.message, status=exc.status)
    return see_other(f"/t/{tenant_id}#agents")


# -- API -----------------------------------------------------------------------------------


@routes.get(V1 + "/tenants")
async def api_tenants(request: web.Request) -> web.StreamResponse:
    limit, offset = query_limit(request, 100), query_offset(request)
    portal = portal_of(request)
    state, sync = portal.deps.applied_state(), port_of(request, TENANT_SYNC).tenant_sync()
    me_ = principal(request)
    if me_.super_admin:
        rows = portal.overview.rows(state, sync).by_id
    else:
        rows = views.tenant_rows(
            visible_tenant_ids(me_, state), state, sync, shows_errors=me_.administers
        )
    wanted = request.query.get("sync")
    if wanted:
        rows = [r for r in rows if r["sync"] == wanted]
    return ok({"total": len(rows), "tenants": rows[offset : offset + limit]})


@routes.get(V1 + "/tenants/{tenant}")
async def api_tenant(request: web.Request) -> web.StreamResponse:
    tenant_id = request.match_info["tenant"]
    sc = scope(request, tenant_id)
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    return ok(
        views.tenant_detail(sc, port_of(request, TENANT_SYNC).tenant_sync().get(tenant_id), live)
    )


@routes.get(V1 + "/tenants/{tenant}/extensions")
async def api_extensions(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    return ok({"extensions": views.live_sections(sc, live)["extensions"]})


@routes.get(EXT)
async def api_extension(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    ext = sc.extension(request.match_info["number"])
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    regs = views.registrations_by_user(live).get(ext.number, [])
    return ok(views.extension_view(ext, regs, sc))


@routes.post(EXT + "/credentials/reveal")
async def api_reveal(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    creds = await actor(request).reveal(sc, request.match_info["number"])
    return ok(creds.to_dict())


@routes.post(EXT + "/credentials/rotate")
async def api_rotate(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    await actor(request).rotate(sc, request.match_info["number"])
    return ok({"rotated": True})


@routes.post(EXT + "/voicemail-pin/reveal")
async def api_reveal_pin(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    number = request.match_info["number"]
    return ok({"extension": number, "pin": await actor(request).reveal_pin(sc, number)})


@routes.post(EXT + "/voicemail-pin/rotate")
async def api_rotate_pin(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    await actor(request).rotate_pin(sc, request.match_info["number"])
    return ok({"rotated": True})


@routes.get(V1 + "/tenants/{tenant}/agents")
async def api_agents(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    return ok({"agents": views.live_sections(sc, live)["agents"]})


@routes.put(V1 + "/tenants/{tenant}/agents/{agent}/status")
async def api_agent_status(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    agent = request.match_info["agent"]
    sc.agent(agent)  # an invisible agent is 404 before the body is judged
    status = await body_field(request, "status")
    results = await actor(request).set_status(sc, agent, status)
    return ok(
        {
            "agent": agent,
            "status": status,
            "results": [{"node": r.node, "ok": r.ok, "error": r.error} for r in results],
        }
    )


@routes.get(V1 + "/tenants/{tenant}/queues")
async def api_queues(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    live = port_of(request, PRESENCE).domain(sc.state.tenant.domain)
    return ok({"queues": views.live_sections(sc, live)["queues"]})


@routes.get(V1 + "/tenants/{tenant}/history")
async def api_tenant_history(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    entries = await port_of(request, HISTORY).history(sc.tenant_id, query_limit(request))
    return ok({"history": [views.history_view(h) for h in entries]})


# -- OpenAPI -------------------------------------------------------------------------------

T, E = "/tenants/{tenant}", "/tenants/{tenant}/extensions/{number}"


def _read_paths() -> dict[str, Any]:
    t, e = T, E
    return {
        "/tenants": {
            "get": operation(
                "visible tenants with their sync state",
                obj(["total", "tenants"], total=integer(), tenants=array(ref("TenantSummary"))),
                params=[
                    LIMIT,
                    OFFSET,
                    {"name": "sync", "in": "query", "required": False, "schema": string()},
                ],
            )
        },
        t: {
            "get": operation(
                "one tenant as the caller may see it", ref("TenantDetail"), params=[TENANT]
            )
        },
        t + "/extensions": {
            "get": operation(
                "visible extensions with live registrations",
                list_of("extensions", "Extension"),
                params=[TENANT],
            )
        },
        e: {"get": operation("one extension", ref("Extension"), params=[TENANT, NUMBER])},
    }


def _action_paths() -> dict[str, Any]:
    t, e = T, E
    return {
        e + "/credentials/reveal": {
            "post": operation(
                "SIP credentials (owner or tenant admin; audited)",
                obj(
                    ["username", "domain", "password"],
                    username=string(),
                    domain=string(),
                    password=string(),
                ),
                params=[TENANT, NUMBER],
            )
        },
        e + "/credentials/rotate": {
            "post": operation(
                "new SIP password (owner or tenant admin; audited)",
                obj(["rotated"], rotated=boolean()),
                params=[TENANT, NUMBER],
            )
        },
        e + "/voicemail-pin/reveal": {
            "post": operation(
                "the voicemail PIN (owner or tenant admin; audited)",
                obj(["extension", "pin"], extension=string(), pin=string()),
                params=[TENANT, NUMBER],
            )
        },
        e + "/voicemail-pin/rotate": {
            "post": operation(
                "new voicemail PIN (owner or tenant admin; audited)",
                obj(["rotated"], rotated=boolean()),
                params=[TENANT, NUMBER],
            )
        },
        t + "/agents": {
            "get": operation(
                "visible agents with live status", list_of("agents", "Agent"), params=[TENANT]
            )
        },
        t + "/agents/{agent}/status": {
            "put": operation(
                "set an agent's status (its own person, or a tenant admin for any agent of the tenant)",
                obj(
                    ["agent", "status", "results"],
                    agent=string(),
                    status=string(),
                    results=array(
                        obj(["node", "ok"], node=string(), ok=boolean(), error=string(True))
                    ),
                ),
                params=[TENANT, AGENT],
                body=obj(["status"], status=string(enum=["Available", "On Break", "Logged Out"])),
                errors={
                    "502": error_answer(
                        "switch_unavailable: no switch is connected, or one did not take the"
                        " status (it is unchanged there); try again"
                    )
                },
            )
        },
        t + "/queues": {
            "get": operation(
                "queues with waiting callers (admins)", list_of("queues", "Queue"), params=[TENANT]
            )
        },
        t + "/history": {
            "get": operation(
                "apply history (admins)", list_of("history", "History"), params=[TENANT, LIMIT]
            )
        },
    }


FEATURE = Feature(
    name="tenants",
    routes=(routes, events.routes),
    nav=nav,
    openapi_paths=lambda: {**_read_paths(), **_action_paths()},
    ports=(TENANT_SYNC, PRESENCE, HISTORY, CREDENTIALS),
)

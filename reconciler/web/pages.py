"""The pages of a logged-in person. Server-rendered; forms post back and redirect (no
JavaScript needed to act), the live parts refresh over server-sent events (``live``)."""

from __future__ import annotations

from aiohttp import web

from reconciler.web import totp, views
from reconciler.web.access import may_invite, visible_tenant_ids
from reconciler.web.actions import Actor
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.pages_auth import _field
from reconciler.web.portal import client_addr, portal_of, principal, render, scope

routes = web.RouteTableDef()

PAGE_SIZE = 50


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _actor(request: web.Request) -> Actor:
    return Actor(portal_of(request), principal(request), client_addr(request))


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    me = principal(request)
    if me.super_admin:
        return _see_other("/platform")
    state = portal_of(request).deps.applied_state()
    tenants = [t for t in me.tenant_ids if t in state]
    if len(tenants) == 1:
        return _see_other(f"/t/{tenants[0]}")
    return render(request, "choose.html", tenants=[state[t] for t in tenants], roles=me.memberships)


def _require_super(request: web.Request) -> None:
    if not principal(request).super_admin:
        raise NotFound()


@routes.get("/platform")
async def platform(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    portal = portal_of(request)
    deps = portal.deps
    overview = portal.overview.rows(deps.applied_state(), deps.tenant_sync())
    wanted = request.query.get("sync", "")
    rows = overview.worst_first
    if wanted in overview.counts:
        rows = [r for r in rows if r["sync"] == wanted]
    page = max(1, _int(request.query.get("page", "1")))
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    return render(
        request,
        "platform.html",
        rows=rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        counts=overview.counts,
        sync_filter=wanted,
        page=page,
        pages=pages,
        total=len(overview.by_id),
        nodes=[views.node_view(n) for n in deps.nodes()],
    )


@routes.get("/platform/activity")
async def platform_activity(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    history = await portal_of(request).deps.history(None, 50)
    return render(
        request,
        "activity.html",
        tenant=None,
        history=[views.history_view(h) for h in history],
        audit=await _audit(request, None, 100),
    )


@routes.get("/t/{tenant}/activity")
async def tenant_activity(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    history = await portal_of(request).deps.history(sc.tenant_id, 50)
    return render(
        request,
        "activity.html",
        tenant=sc.state.tenant,
        history=[views.history_view(h) for h in history],
        audit=await _audit(request, sc.tenant_id, 100),
    )


def _int(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 1


async def _audit(request: web.Request, tenant_id: str | None, limit: int) -> list[views.View]:
    from reconciler.store.portal import read_audit

    entries = await portal_of(request).db.run(read_audit, tenant_id=tenant_id, limit=limit)
    return [views.audit_view(e) for e in entries]


@routes.get("/platform/search")
async def search(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    query = request.query.get("q", "")[:100]
    state = portal_of(request).deps.applied_state()
    hits = portal_of(request).searcher.index(state).search(query) if query.strip() else []
    return render(request, "search.html", query=query, hits=hits)


@routes.get("/t/{tenant}")
async def tenant_page(request: web.Request) -> web.StreamResponse:
    tenant_id = request.match_info["tenant"]
    sc = scope(request, tenant_id)
    deps = portal_of(request).deps
    live = deps.presence.domain(sc.state.tenant.domain)
    detail = views.tenant_detail(sc, deps.tenant_sync().get(tenant_id), live)
    # history and audit live on the Activity page: this one never waits for the database
    return render(
        request, "tenant.html", t=detail, scope=sc, statuses=("Available", "On Break", "Logged Out")
    )


@routes.get("/t/{tenant}/extensions/{number}")
async def extension_page(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    ext = sc.extension(request.match_info["number"])
    live = portal_of(request).deps.presence.domain(sc.state.tenant.domain)
    regs = views.registrations_by_user(live).get(ext.number, [])
    return render(
        request,
        "extension.html",
        scope=sc,
        ext=views.extension_view(ext, regs, sc),
        rotated=request.query.get("rotated") == "1",
    )


@routes.post("/t/{tenant}/extensions/{number}/reveal")
async def reveal(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    creds = await _actor(request).reveal(sc, request.match_info["number"])
    # RFC 3261 userinfo with password: what most softphones' QR import understands
    uri = f"sip:{creds.username}:{creds.password}@{creds.domain}"
    return render(request, "credentials.html", scope=sc, creds=creds, qr=totp.qr_data_uri(uri))


@routes.post("/t/{tenant}/extensions/{number}/rotate")
async def rotate(request: web.Request) -> web.StreamResponse:
    tenant_id, number = request.match_info["tenant"], request.match_info["number"]
    await _actor(request).rotate(scope(request, tenant_id), number)
    return _see_other(f"/t/{tenant_id}/extensions/{number}?rotated=1")


@routes.post("/t/{tenant}/agents/{agent}/status")
async def agent_status(request: web.Request) -> web.StreamResponse:
    tenant_id = request.match_info["tenant"]
    form = await request.post()
    await _actor(request).set_status(
        scope(request, tenant_id), request.match_info["agent"], _field(form, "status")
    )
    return _see_other(f"/t/{tenant_id}#agents")


@routes.get("/invite")
async def invite_page(request: web.Request) -> web.StreamResponse:
    if not principal(request).invites:
        raise NotFound()
    return _invite_page(request, link=None, error=None, candidates=_invitable(request))


def _invite_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    mail = portal_of(request).mailer is not None
    return render(request, "invite.html", status=status, mail=mail, **context)


def _invitable(request: web.Request) -> list[tuple[str, str, str]]:
    """(email, name, where) of people this principal may invite: the form's suggestions."""
    me = principal(request)
    deps = portal_of(request).deps
    state = deps.applied_state()
    if me.super_admin:
        tenants = visible_tenant_ids(me, state)
        people = [(e, n, "super admin") for e, n in sorted(deps.platform_admins().items())]
    else:
        tenants = [t for t, u in me.memberships.items() if u.role == "admin" and t in state]
        people = []
    admins = deps.platform_admins()
    for tenant_id in tenants[:50]:
        people += [
            (u.email, u.name, tenant_id)
            for _, u in sorted(state[tenant_id].users.items())
            if may_invite(me, u.email, state, admins)
        ]
    return people


@routes.post("/invite")
async def invite_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        sent = await _actor(request).invite(_field(form, "email"))
    except BadRequest as exc:
        return _invite_page(
            request,
            status=400,
            link=None,
            error=exc.message,
            candidates=_invitable(request),
        )
    return _invite_page(request, link=sent, error=None, candidates=[])


@routes.post("/invite/reset")
async def reset_submit(request: web.Request) -> web.StreamResponse:
    """A reset link mailed to someone who already has an account (mail only)."""
    form = await request.post()
    try:
        sent = await _actor(request).send_reset(_field(form, "email"))
    except BadRequest as exc:
        return _invite_page(
            request,
            status=400,
            link=None,
            error=exc.message,
            candidates=_invitable(request),
        )
    return _invite_page(request, link=sent, error=None, candidates=[])

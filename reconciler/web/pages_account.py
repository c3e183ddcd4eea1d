"""One's own sessions and API tokens; every session of the platform for super admins."""

from __future__ import annotations

from aiohttp import web

from reconciler.store.portal import list_api_tokens
from reconciler.web import views
from reconciler.web.actions import Actor
from reconciler.web.pages_auth import _field
from reconciler.web.portal import client_addr, identity_of, portal_of, principal, render

routes = web.RouteTableDef()


def _actor(request: web.Request) -> Actor:
    return Actor(portal_of(request), principal(request), client_addr(request))


def _current_session(request: web.Request) -> int | None:
    ident = identity_of(request)
    return ident.session.id if ident and ident.session else None


async def _account(request: web.Request, new_token: str | None = None) -> web.Response:
    actor = _actor(request)
    tokens = await portal_of(request).db.run(list_api_tokens, actor.principal.email)
    current = _current_session(request)
    return render(
        request,
        "account.html",
        sessions=[views.session_view(s, current) for s in await actor.sessions(everyone=False)],
        tokens=[views.token_view(t) for t in tokens],
        new_token=new_token,
    )


@routes.get("/account")
async def account(request: web.Request) -> web.StreamResponse:
    return await _account(request)


@routes.post("/account/tokens")
async def token_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    _, token = await _actor(request).create_token(_field(form, "name"))
    return await _account(request, new_token=token)


@routes.post("/account/tokens/{id:[0-9]{1,18}}/revoke")
async def token_revoke(request: web.Request) -> web.StreamResponse:
    await _actor(request).revoke_token(int(request.match_info["id"]))
    return web.Response(status=303, headers={"Location": "/account"})


@routes.post("/sessions/{id:[0-9]{1,18}}/revoke")
async def session_revoke(request: web.Request) -> web.StreamResponse:
    session_id = int(request.match_info["id"])
    await _actor(request).revoke_session(session_id)
    back = "/login" if session_id == _current_session(request) else None
    if back is None:
        back = "/platform/sessions" if principal(request).super_admin else "/account"
    return web.Response(status=303, headers={"Location": back})


@routes.get("/platform/sessions")
async def all_sessions(request: web.Request) -> web.StreamResponse:
    rows = await _actor(request).sessions(everyone=True)
    current = _current_session(request)
    return render(request, "sessions.html", sessions=[views.session_view(s, current) for s in rows])

"""One's own password, sessions and API tokens; every session and token of the platform for
super admins, and ending everything of one person in one action."""

from __future__ import annotations

from aiohttp import web

from reconciler.web import views
from reconciler.web.actions import Actor
from reconciler.web.errors import BadRequest, RateLimited
from reconciler.web.pages_auth import _field
from reconciler.web.portal import client_addr, identity_of, portal_of, principal, render

routes = web.RouteTableDef()


def _actor(request: web.Request) -> Actor:
    return Actor(portal_of(request), principal(request), client_addr(request))


def _current_session(request: web.Request) -> int | None:
    ident = identity_of(request)
    return ident.session.id if ident and ident.session else None


async def _account(
    request: web.Request,
    new_token: str | None = None,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    actor = _actor(request)
    current = _current_session(request)
    config = portal_of(request).config
    return render(
        request,
        "account.html",
        status=status,
        sessions=[views.session_view(s, current) for s in await actor.sessions(everyone=False)],
        tokens=[views.token_view(t) for t in await actor.tokens(everyone=False)],
        new_token=new_token,
        notice=notice,
        error=error,
        token_days=config.token_days,
        token_max_days=config.token_max_days,
    )


@routes.get("/account")
async def account(request: web.Request) -> web.StreamResponse:
    return await _account(request)


@routes.post("/account/password")
async def password_change(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        revoked = await _actor(request).change_password(
            current=_field(form, "current"),
            new=_field(form, "password"),
            confirmation=_field(form, "confirmation"),
            code=_field(form, "code"),
            keep_session=_current_session(request),
        )
    except (BadRequest, RateLimited) as exc:
        return await _account(request, error=exc.message, status=exc.status)
    notice = (
        f"Password changed. {revoked.sessions} other session(s) and "
        f"{revoked.tokens} API token(s) were ended."
    )
    return await _account(request, notice=notice)


@routes.post("/account/tokens")
async def token_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    days_text = _field(form, "days").strip()
    if days_text and not (days_text.isascii() and days_text.isdigit() and len(days_text) < 6):
        raise BadRequest("the lifetime is a number of days")
    days = int(days_text) if days_text else None
    _, token = await _actor(request).create_token(_field(form, "name"), days)
    return await _account(request, new_token=token)


@routes.post("/account/tokens/{id:[0-9]{1,18}}/revoke")
async def token_revoke(request: web.Request) -> web.StreamResponse:
    await _actor(request).revoke_token(int(request.match_info["id"]))
    back = "/platform/sessions" if _field(await request.post(), "back") == "platform" else None
    return web.Response(status=303, headers={"Location": back or "/account"})


@routes.post("/sessions/{id:[0-9]{1,18}}/revoke")
async def session_revoke(request: web.Request) -> web.StreamResponse:
    session_id = int(request.match_info["id"])
    await _actor(request).revoke_session(session_id)
    back = "/login" if session_id == _current_session(request) else None
    if back is None:
        back = "/platform/sessions" if principal(request).super_admin else "/account"
    return web.Response(status=303, headers={"Location": back})


@routes.post("/people/revoke")
async def person_revoke(request: web.Request) -> web.StreamResponse:
    """End every session, token and pending link of one person (yourself; anyone for super
    admins): the one action after a lost laptop or a leaked token."""
    email = _field(await request.post(), "email")
    await _actor(request).end_everything(email)
    me = principal(request)
    back = "/login" if email.strip().lower() == me.email else "/platform/sessions"
    return web.Response(status=303, headers={"Location": back})


@routes.get("/platform/sessions")
async def all_sessions(request: web.Request) -> web.StreamResponse:
    actor = _actor(request)
    rows = await actor.sessions(everyone=True)
    current = _current_session(request)
    return render(
        request,
        "sessions.html",
        sessions=[views.session_view(s, current) for s in rows],
        tokens=[views.token_view(t) for t in await actor.tokens(everyone=True)],
    )

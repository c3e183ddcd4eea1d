"""**Account**: one's own password, sessions and API tokens; every session and token of the
platform for super admins (**Platform > sessions**), and ending everything of one person in
one action; as pages and as the API (``/api/v1/tokens``, ``/sessions``, ``/revocations``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from reconciler.web import views
from reconciler.web.access import Principal
from reconciler.web.context import identity_of, portal_of, principal, render
from reconciler.web.errors import BadRequest, RateLimited
from reconciler.web.feature import Feature, NavEntry
from reconciler.web.handling import (
    V1,
    actor,
    body_field,
    form_field,
    ok,
    query_all,
    session_only,
)
from reconciler.web.openapi import ALL, ID, integer, list_of, obj, operation, string

routes = web.RouteTableDef()


def nav(_who: Principal) -> Sequence[NavEntry]:
    return [NavEntry("Account", "/account")]


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
    who = actor(request)
    current = _current_session(request)
    config = portal_of(request).config
    return render(
        request,
        "account.html",
        status=status,
        sessions=[views.session_view(s, current) for s in await who.sessions(everyone=False)],
        tokens=[views.token_view(t) for t in await who.tokens(everyone=False)],
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
        revoked = await actor(request).change_password(
            current=form_field(form, "current"),
            new=form_field(form, "password"),
            confirmation=form_field(form, "confirmation"),
            code=form_field(form, "code"),
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
    days_text = form_field(form, "days").strip()
    if days_text and not (days_text.isascii() and days_text.isdigit() and len(days_text) < 6):
        raise BadRequest("the lifetime is a number of days")
    days = int(days_text) if days_text else None
    _, token = await actor(request).create_token(form_field(form, "name"), days)
    return await _account(request, new_token=token)


@routes.post("/account/tokens/{id:[0-9]{1,18}}/revoke")
async def token_revoke(request: web.Request) -> web.StreamResponse:
    await actor(request).revoke_token(int(request.match_info["id"]))
    back = "/platform/sessions" if form_field(await request.post(), "back") == "platform" else None
    return web.Response(status=303, headers={"Location": back or "/account"})


@routes.post("/sessions/{id:[0-9]{1,18}}/revoke")
async def session_revoke(request: web.Request) -> web.StreamResponse:
    session_id = int(request.match_info["id"])
    await actor(request).revoke_session(session_id)
    back = "/login" if session_id == _current_session(request) else None
    if back is None:
        back = "/platform/sessions" if principal(request).super_admin else "/account"
    return web.Response(status=303, headers={"Location": back})


@routes.post("/people/revoke")
async def person_revoke(request: web.Request) -> web.StreamResponse:
    """End every session, token and pending link of one person (yourself; anyone for super
    admins): the one action after a lost laptop or a leaked token."""
    email = form_field(await request.post(), "email")
    await actor(request).end_everything(email)
    me = principal(request)
    back = "/login" if email.strip().lower() == me.email else "/platform/sessions"
    return web.Response(status=303, headers={"Location": back})


@routes.get("/platform/sessions")
async def all_sessions(request: web.Request) -> web.StreamResponse:
    who = actor(request)
    rows = await who.sessions(everyone=True)
    current = _current_session(request)
    return render(
        request,
        "sessions.html",
        sessions=[views.session_view(s, current) for s in rows],
        tokens=[views.token_view(t) for t in await who.tokens(everyone=True)],
    )


# -- API -----------------------------------------------------------------------------------


@routes.get(V1 + "/tokens")
async def api_tokens(request: web.Request) -> web.StreamResponse:
    principal(request)
    found = await actor(request).tokens(everyone=query_all(request))
    return ok({"tokens": [views.token_view(t) for t in found]})


@routes.post(V1 + "/tokens")
async def api_token_create(request: web.Request) -> web.StreamResponse:
    principal(request)
    session_only(request)
    name = await body_field(request, "name")
    days = json.loads(await request.text()).get("days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
        raise BadRequest('"days" must be an integer')
    token_id, token = await actor(request).create_token(name, days)
    return ok({"id": token_id, "token": token}, status=201)


@routes.delete(V1 + "/tokens/{id:[0-9]{1,18}}")
async def api_token_delete(request: web.Request) -> web.StreamResponse:
    await actor(request).revoke_token(int(request.match_info["id"]))
    return web.Response(status=204)


@routes.post(V1 + "/revocations")
async def api_revocations(request: web.Request) -> web.StreamResponse:
    """End every session, API token and pending link of one person (yourself, or anyone
    for super admins)."""
    revoked = await actor(request).end_everything(await body_field(request, "email"))
    return ok(
        {
            "sessions": revoked.sessions,
            "tokens": revoked.tokens,
            "invitations": revoked.invitations,
        }
    )


@routes.get(V1 + "/sessions")
async def api_sessions(request: web.Request) -> web.StreamResponse:
    rows = await actor(request).sessions(everyone=query_all(request))
    ident = identity_of(request)
    current = ident.session.id if ident and ident.session else None
    return ok({"sessions": [views.session_view(s, current) for s in rows]})


@routes.delete(V1 + "/sessions/{id:[0-9]{1,18}}")
async def api_session_delete(request: web.Request) -> web.StreamResponse:
    await actor(request).revoke_session(int(request.match_info["id"]))
    return web.Response(status=204)


# -- OpenAPI -------------------------------------------------------------------------------


def _paths() -> dict[str, Any]:
    return {
        "/tokens": {
            "get": operation(
                "your API tokens (all=true: everyone's, super admins)",
                list_of("tokens", "Token"),
                params=[ALL],
            ),
            "post": operation(
                "create an API token (shown once; expires after days, default 90; a session "
                "is needed, an API token is refused)",
                obj(["id", "token"], id=integer(), token=string()),
                body=obj(["name"], name=string(), days=integer(minimum=1)),
                status="201",
            ),
        },
        "/tokens/{id}": {
            "delete": operation(
                "revoke an API token (yours; anyone's for super admins)",
                None,
                params=[ID],
                status="204",
            )
        },
        "/revocations": {
            "post": operation(
                "end every session, API token and pending link of a person (yourself; "
                "anyone for super admins)",
                obj(
                    ["sessions", "tokens", "invitations"],
                    sessions=integer(),
                    tokens=integer(),
                    invitations=integer(),
                ),
                body=obj(["email"], email=string()),
            )
        },
        "/sessions": {
            "get": operation(
                "your sessions (all=true: everyone's, super admins)",
                list_of("sessions", "Session"),
                params=[ALL],
            )
        },
        "/sessions/{id}": {
            "delete": operation(
                "end a session (yours; anyone's for super admins)", None, params=[ID], status="204"
            )
        },
    }


FEATURE = Feature(name="account", routes=(routes,), nav=nav, openapi_paths=_paths)

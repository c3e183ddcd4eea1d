"""Inviting people git declares (admins and super admins), and mailing a reset link to
someone who already has an account: the **Invite** page and ``/api/v1/invitations``,
``/api/v1/resets``. Who may invite whom is ``access.may_invite``; the writes are ``actions``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from reconciler.web import views
from reconciler.web.access import Principal, may_invite, visible_tenant_ids
from reconciler.web.context import portal_of, principal, render
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.feature import Feature, NavEntry
from reconciler.web.handling import V1, actor, body_field, form_field, ok, session_only
from reconciler.web.openapi import boolean, obj, operation, string

routes = web.RouteTableDef()


def nav(who: Principal) -> Sequence[NavEntry]:
    return [NavEntry("Invite", "/invite")] if who.invites else []


# -- pages ---------------------------------------------------------------------------------


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
        sent = await actor(request).invite(form_field(form, "email"))
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
        sent = await actor(request).send_reset(form_field(form, "email"))
    except BadRequest as exc:
        return _invite_page(
            request,
            status=400,
            link=None,
            error=exc.message,
            candidates=_invitable(request),
        )
    return _invite_page(request, link=sent, error=None, candidates=[])


# -- API -----------------------------------------------------------------------------------


@routes.post(V1 + "/invitations")
async def api_invite(request: web.Request) -> web.StreamResponse:
    principal(request)
    session_only(request)
    sent = await actor(request).invite(await body_field(request, "email"))
    return ok(
        {
            "email": sent.link.email,
            "url": sent.url,
            "sent_to": sent.sent_to,
            "expires_at": views.iso(sent.link.expires_at),
            "totp_required": sent.link.totp_required,
        },
        status=201,
    )


@routes.post(V1 + "/resets")
async def api_reset(request: web.Request) -> web.StreamResponse:
    """A reset link for an activated account, mailed to the person (mail only)."""
    principal(request)
    session_only(request)
    sent = await actor(request).send_reset(await body_field(request, "email"))
    return ok(
        {
            "email": sent.link.email,
            "sent_to": sent.sent_to,
            "expires_at": views.iso(sent.link.expires_at),
        },
        status=201,
    )


# -- OpenAPI -------------------------------------------------------------------------------


def _paths() -> dict[str, Any]:
    return {
        "/invitations": {
            "post": operation(
                "invite a person declared in git who has no account yet (single-use "
                "activation link: mailed to them when mail is configured, else in url; "
                "a session is needed, an API token is refused)",
                obj(
                    ["email", "url", "sent_to", "expires_at", "totp_required"],
                    email=string(),
                    url=string(True),
                    sent_to=string(True),
                    expires_at=string(),
                    totp_required=boolean(),
                ),
                body=obj(["email"], email=string()),
                status="201",
            )
        },
        "/resets": {
            "post": operation(
                "mail a password reset link to a person with an account whom you may invite "
                "(needs mail configured and a session)",
                obj(
                    ["email", "sent_to", "expires_at"],
                    email=string(),
                    sent_to=string(True),
                    expires_at=string(),
                ),
                body=obj(["email"], email=string()),
                status="201",
            )
        },
    }


FEATURE = Feature(name="invitations", routes=(routes,), nav=nav, openapi_paths=_paths)

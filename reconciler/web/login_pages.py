"""Pages before a session exists, and its end: log in, activate an invitation, log out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from reconciler.store.accounts import Invitation
from reconciler.web import totp
from reconciler.web.context import client_addr, identity_of, portal_of, render
from reconciler.web.errors import BadRequest, NotFound, PortalError
from reconciler.web.feature import Feature
from reconciler.web.handling import form_field
from reconciler.web.invitations import (
    activate,
    current_factor_needed,
    link_was_used,
    pending_invitation,
)
from reconciler.web.login import Attempt, CodeNeeded
from reconciler.web.resets import request_own_reset

routes = web.RouteTableDef()


def safe_next(value: object) -> str:
    """Where to land after logging in: a path of this portal, else ``/``. Refused: other
    origins (``https://...``, ``//host``, ``/\\host``, which browsers read as ``//host``),
    backslashes and control characters anywhere, and anything that is not a path."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 1000:
        return "/"
    if not value.isascii():
        return "/"
    if value.startswith("//") or "\\" in value or not value.isprintable() or " " in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    next_ = safe_next(request.query.get("next"))
    if identity_of(request) is not None:
        return web.Response(status=303, headers={"Location": next_})
    removed = request.query.get("removed") == "1"
    return render(
        request, "login.html", error=None, email="", next=next_, removed=removed, proof=None
    )


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    portal = portal_of(request)
    form = await request.post()
    attempt = Attempt(
        email=form_field(form, "email"),
        password=form_field(form, "password"),
        code=form_field(form, "code"),
        client_addr=client_addr(request),
        user_agent=request.headers.get("User-Agent"),
        proof=form_field(form, "proof"),
    )
    deps = portal.deps
    key = await portal.pre_session_key()
    try:
        token = await portal.login.attempt(
            attempt, deps.applied_state(), deps.platform_admins(), proof_key=key
        )
    except CodeNeeded as asked:  # the password was right: now the authenticator's code
        return render(
            request,
            "login.html",
            error=None,
            email=asked.email,
            next=safe_next(form.get("next")),
            removed=False,
            proof=asked.proof,
        )
    except PortalError as exc:
        if exc.status >= 500:
            raise
        response = render(
            request,
            "login.html",
            status=exc.status,
            error=exc.message,
            email=attempt.email,
            next=safe_next(form.get("next")),
            removed=False,
            proof=None,
        )
        if (retry := getattr(exc, "retry_after", None)) is not None:
            response.headers["Retry-After"] = str(max(1, int(retry)))
        return response
    response = web.Response(status=303, headers={"Location": safe_next(form.get("next"))})
    portal.set_cookie(response, portal.cookie_name, token)
    portal.clear_cookie(response, portal.pre_cookie_name)
    return response


@routes.get("/login/reset")
async def reset_page(request: web.Request) -> web.StreamResponse:
    mail = portal_of(request).mailer is not None
    return render(request, "reset_request.html", mail=mail, notice=None, error=None)


@routes.post("/login/reset")
async def reset_submit(request: web.Request) -> web.StreamResponse:
    """A forgotten password: the link goes to the address's mailbox, never to this page."""
    portal = portal_of(request)
    form = await request.post()
    try:
        notice = await request_own_reset(portal, form_field(form, "email"), client_addr(request))
    except PortalError as exc:
        if exc.status >= 500:
            raise
        return render(
            request,
            "reset_request.html",
            status=exc.status,
            mail=portal.mailer is not None,
            notice=None,
            error=exc.message,
        )
    return render(request, "reset_request.html", mail=True, notice=notice, error=None)


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    portal = portal_of(request)
    ident = identity_of(request)
    if ident is not None and ident.session is not None:
        await portal.sessions.end(ident.session.id)
        await portal.db.audit(
            ident.email, "logout", "ok", target=ident.email, client_addr=client_addr(request)
        )
    response = web.Response(status=303, headers={"Location": "/login"})
    portal.clear_cookie(response, portal.cookie_name)
    return response


@routes.get("/activate/{token}")
async def activate_page(request: web.Request) -> web.StreamResponse:
    portal = portal_of(request)
    token = request.match_info["token"]
    try:
        found = await portal.db.run(pending_invitation, token)
    except NotFound:
        if await portal.db.run(link_was_used, token):  # a reload after activating: 410 Gone
            return render(request, "activated.html", status=410, email=None)
        raise
    return render(request, "activate.html", **await _enrolment(request, found), error=None)


async def _enrolment(request: web.Request, found: Invitation) -> dict[str, Any]:
    """What the page shows: a new authenticator to scan, or (a reset that keeps the
    account's authenticator) a field for its current code."""
    secret = found.totp_secret
    uri = totp.enrol_uri(secret, found.email) if secret else None
    return {
        "email": found.email,
        "purpose": found.purpose,
        "totp_secret": secret,
        "totp_qr": totp.qr_data_uri(uri) if uri else None,
        "current_code": await portal_of(request).db.run(current_factor_needed, found),
    }


@routes.post("/activate/{token}")
async def activate_submit(request: web.Request) -> web.StreamResponse:
    portal = portal_of(request)
    token = request.match_info["token"]
    form = await request.post()
    try:
        email = await portal.db.run(
            activate,
            token,
            password=form_field(form, "password"),
            confirmation=form_field(form, "confirmation"),
            code=form_field(form, "code"),
            client_addr=client_addr(request),
            state=portal.deps.applied_state(),
        )
    except BadRequest as exc:
        found = await portal.db.run(pending_invitation, token)
        return render(
            request,
            "activate.html",
            status=400,
            error=exc.message,
            **await _enrolment(request, found),
        )
    except NotFound:
        raise
    portal.sessions.forget(email=email)
    return render(request, "activated.html", email=email)


FEATURE = Feature(name="login", routes=(routes,))

"""Cross-cutting request handling, outermost first: security headers on every answer, then
errors rendered as JSON (API) or a page (browser), then who is calling and the CSRF check.

CSRF: every state-changing request made with the session cookie carries the session's token
(form field ``csrf`` or header ``X-CSRF-Token``); bearer-token requests are not
cookie-authenticated and need none. The login and activation forms, made before there is a
session, use a signed double submit: the cookie holds a random nonce, the form field its
HMAC under a key derived from the installation's random identity (``pbx.installation``,
the same for every daemon of one database), so a pair the server never issued fails even
when someone can plant cookies. SameSite=Strict cookies (``__Host-`` over https) are the
second wall.

Security headers go on every answer, aiohttp's own (405, 413, ...) included.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from reconciler.web.context import IDENTITY, PRE_CSRF, identity_of, portal_of, render
from reconciler.web.errors import (
    AccessRemoved,
    CsrfRejected,
    MethodNotAllowed,
    NotFound,
    PortalError,
    Unauthenticated,
)
from reconciler.web.tokens import new_token, same_secret

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIX = "/api/"
PRE_SESSION_FORMS = ("/login", "/activate/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's bare answers (405, 413) get the headers too
        response = web.Response(
            status=exc.status, reason=exc.reason, text=exc.text, headers=exc.headers
        )
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"  # activation links carry their token in the path
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if not request.path.startswith("/static/"):
        # every page may hold someone's data (a content-hashed public asset says otherwise)
        headers.setdefault("Cache-Control", "no-store")
    if portal_of(request).config.cookies_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AccessRemoved as exc:
        if request.path.startswith(API_PREFIX):
            return error_response(request, exc)
        return await _removed(request)
    except PortalError as exc:
        return error_response(request, exc)
    except web.HTTPNotFound:
        return error_response(request, NotFound())
    except web.HTTPMethodNotAllowed as exc:
        response = error_response(request, MethodNotAllowed())
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response


async def _removed(request: web.Request) -> web.StreamResponse:
    """A page of someone git no longer declares: their session is useless, so it ends, and
    the login page says why (its notice is the same for whoever opens that address)."""
    portal, ident = portal_of(request), identity_of(request)
    if ident is not None and ident.session is not None:
        await portal.sessions.end_removed(ident.session.id)
    response = web.Response(status=303, headers={"Location": "/login?removed=1"})
    portal.clear_cookie(response, portal.cookie_name)
    return response


def login_location(request: web.Request) -> str:
    """The login page, with the page asked for to return to (``next``, a local path)."""
    if request.path in ("/", "/login") or request.path.startswith(API_PREFIX):
        return "/login"
    return "/login?" + urlencode({"next": request.raw_path})


def error_response(request: web.Request, exc: PortalError) -> web.StreamResponse:
    headers = {}
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(max(1, int(retry)))
    if request.path.startswith(API_PREFIX):
        body = {"error": {"code": exc.code, "message": exc.message}}
        return web.json_response(body, status=exc.status, headers=headers)
    unauthenticated = isinstance(exc, Unauthenticated) and exc.code == "unauthenticated"
    if unauthenticated and request.method in SAFE_METHODS:
        return web.Response(status=303, headers={"Location": login_location(request)})
    response = render(request, "error.html", status=exc.status, error=exc)
    response.headers.update(headers)
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    portal = portal_of(request)
    ident = None
    bearer = request.headers.get("Authorization", "")
    if request.path.startswith(API_PREFIX) and bearer.lower().startswith("bearer "):
        ident = await portal.sessions.resolve_bearer(bearer[7:].strip())
        if ident is None:
            raise Unauthenticated("unknown or revoked API token")
    elif cookie := request.cookies.get(portal.cookie_name):
        ident = await portal.sessions.resolve_cookie(cookie)
        if ident is None and portal.sessions.was_removed(cookie):
            raise AccessRemoved()  # the login page says why, not a silent redirect
    request[IDENTITY] = ident
    fresh_pre = None
    if ident is None and request.path.startswith(PRE_SESSION_FORMS):
        nonce = request.cookies.get(portal.pre_cookie_name) or ""
        if not nonce:
            fresh_pre = nonce = new_token()
        request[PRE_CSRF] = pre_session_token(await portal.pre_session_key(), nonce)
    if request.method not in SAFE_METHODS:
        await check_csrf(request)
    response = await handler(request)
    if fresh_pre is not None:
        portal.set_cookie(response, portal.pre_cookie_name, fresh_pre)
    return response


def pre_session_token(key: bytes, nonce: str) -> str:
    """The form field that goes with the pre-session cookie ``nonce``."""
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: web.Request) -> None:
    ident = identity_of(request)
    if ident is not None and ident.session is None:
        return  # API token: no ambient credential a forged request could borrow
    expected = ident.csrf_token if ident is not None else request.get(PRE_CSRF)
    if ident is None and not request.path.startswith(PRE_SESSION_FORMS):
        return  # no session: the handler answers 401 (nothing to forge)
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not expected or not same_secret(given, expected):
        raise CsrfRejected()

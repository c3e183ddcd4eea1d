"""Login throttles a super admin can see and lift (``ratelimit``): a page, ``/platform/locks``,
and the API, ``/api/v1/login-locks``. Lifting is audited (``login_unlock``) and, like every
write, needs the session's CSRF token (or a bearer token).

Counters live in each daemon's memory: lifting one clears it on the daemon that answers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.web.context import client_addr, portal_of, principal, render
from reconciler.web.errors import BadRequest, NotFound, printable
from reconciler.web.feature import Feature
from reconciler.web.handling import form_field
from reconciler.web.openapi import integer, list_of, obj, operation, string
from reconciler.web.passwords import MAX_LENGTH
from reconciler.web.ratelimit import Lock

routes = web.RouteTableDef()
API = "/api/v1/login-locks"


def lock_view(lock: Lock) -> dict[str, object]:
    return {"email": lock.email, "failures": lock.failures, "retry_after": round(lock.retry_after)}


def _super_admin(request: web.Request) -> str:
    me = principal(request)
    if not me.super_admin:
        raise NotFound()
    return me.email


async def clear_lock(request: web.Request, email: str) -> int:
    """Lift every counter of ``email`` on this daemon; audited. Returns failures forgotten."""
    actor = _super_admin(request)
    email = printable(email.strip().lower()[:MAX_LENGTH], "email")
    if not email:
        raise BadRequest("which email?")
    portal = portal_of(request)
    forgotten = portal.limiter.clear(email)
    await portal.db.audit(
        actor,
        "login_unlock",
        "ok",
        target=email,
        client_addr=client_addr(request),
        detail=f"{forgotten} recent failures forgotten",
    )
    return forgotten


@routes.get("/platform/locks")
async def locks_page(request: web.Request) -> web.StreamResponse:
    _super_admin(request)
    locks = [lock_view(lock) for lock in portal_of(request).limiter.locks()]
    return render(request, "locks.html", locks=locks, cleared=request.query.get("cleared"))


@routes.post("/platform/locks/clear")
async def locks_clear(request: web.Request) -> web.StreamResponse:
    _super_admin(request)
    email = form_field(await request.post(), "email")
    await clear_lock(request, email)
    return web.Response(status=303, headers={"Location": "/platform/locks?cleared=1"})


@routes.get(API)
async def locks_api(request: web.Request) -> web.StreamResponse:
    _super_admin(request)
    locks = [lock_view(lock) for lock in portal_of(request).limiter.locks()]
    return web.json_response({"locks": locks})


@routes.post(API + "/clear")
async def locks_clear_api(request: web.Request) -> web.StreamResponse:
    _super_admin(request)
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("the body must be JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("email"), str):
        raise BadRequest('the body must be a JSON object with a string "email"')
    forgotten = await clear_lock(request, body["email"])
    return web.json_response({"email": body["email"].strip().lower(), "forgotten": forgotten})


def _paths() -> dict[str, Any]:
    return {
        "/login-locks": {
            "get": operation(
                "accounts this daemon's login throttle holds back (super admins)",
                list_of("locks", "LoginLock"),
            )
        },
        "/login-locks/clear": {
            "post": operation(
                "lift every login throttle of one account on this daemon (super admins; audited)",
                obj(["email", "forgotten"], email=string(), forgotten=integer()),
                body=obj(["email"], email=string()),
            )
        },
    }


FEATURE = Feature(name="login throttles", routes=(routes,), openapi_paths=_paths)

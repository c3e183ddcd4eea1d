"""What every feature's handlers share: form fields, redirects, the acting person, and the
JSON API's bodies, numbers and answers (errors as ``errors`` defines them)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from reconciler.web.actions import Actor
from reconciler.web.context import client_addr, identity_of, portal_of, principal
from reconciler.web.errors import BadRequest, Forbidden, NotFound, printable

V1 = "/api/v1"


def form_field(form: object, name: str) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    return value if isinstance(value, str) else ""


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def actor(request: web.Request) -> Actor:
    return Actor(portal_of(request), principal(request), client_addr(request))


def require_super(request: web.Request) -> None:
    """Platform-wide things: a super admin's, and unknown (404) to everybody else."""
    if not principal(request).super_admin:
        raise NotFound()


def ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def query_limit(request: web.Request, default: int = 50) -> int:
    text = request.query.get("limit", str(default))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 500:
        raise BadRequest("limit must be an integer from 1 to 500")
    return int(text)


def query_offset(request: web.Request) -> int:
    text = request.query.get("offset", "0")
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise BadRequest("offset must be a non-negative integer")
    return int(text)


def query_all(request: web.Request) -> bool:
    everyone = request.query.get("all", "false")
    if everyone not in ("true", "false"):
        raise BadRequest("all must be true or false")
    return everyone == "true"


async def body_field(request: web.Request, field: str) -> str:
    try:
        body = json.loads(await request.text() or "null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("the body must be JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get(field), str):
        raise BadRequest(f'the body must be a JSON object with a string "{field}"')
    return printable(str(body[field]), field)


def session_only(request: web.Request) -> None:
    """Minting credentials needs a person at a browser: a leaked API token cannot create
    more tokens, nor invitations, and so cannot outlive its own revocation or expiry."""
    ident = identity_of(request)
    if ident is not None and ident.session is None:
        raise Forbidden("an API token cannot create tokens or invitations: use a session")

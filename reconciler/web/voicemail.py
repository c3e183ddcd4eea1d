"""Voicemail messages of a tenant: a page, ``/t/{tenant}/voicemail`` (live), and the API,
``GET /api/v1/tenants/{tenant}/voicemail`` (list), ``.../voicemail/{box}/{uuid}/audio`` (play
with ``Range``, or download), ``POST .../heard`` and ``.../new``, ``DELETE .../{uuid}``.

Each person sees the boxes of their own extensions; tenant admins (and super admins) every
box of the tenant. A box or message the caller may not see is 404 like an unknown one.
Messages are read and changed only through mod_voicemail's API over ESL (the
``VoicemailBoxes`` port), so its database and the phones' lamps stay right; the one file
access is streaming a message's audio, through ``tenant_files`` and only from inside that
tenant's voicemail directory, that box's folder. Changes are for the box's owner or a tenant
admin (a super admin who is no user of the tenant listens, changes nothing), and each is
audited. The caller's name and number come from the caller: hostile text, escaped on the
page like every value.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from reconciler.core.model import Extension
from reconciler.core.voicemail_box import (
    NoSuchMessage,
    VoicemailMessage,
    VoicemailRefused,
    VoicemailUnavailable,
)
from reconciler.web.access import Role, TenantScope
from reconciler.web.context import port_of, portal_of, render, render_html, scope
from reconciler.web.errors import Forbidden, NotFound, SwitchUnavailable
from reconciler.web.events import fragment_stream
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, actor, form_field, ok, query_limit, query_offset, see_other
from reconciler.web.openapi import (
    LIMIT,
    OFFSET,
    TENANT,
    array,
    boolean,
    error_answer,
    integer,
    obj,
    operation,
    string,
)
from reconciler.web.ports import VOICEMAIL
from reconciler.web.tenant_files import file_response, open_tenant_file

routes = web.RouteTableDef()
API = V1 + "/tenants/{tenant}/voicemail"
MESSAGE = API + "/{box}/{uuid}"
PAGE = "/t/{tenant}/voicemail"
_BOX = re.compile(r"^[0-9]{1,15}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNAVAILABLE = "no switch answered: voicemail cannot be read right now"


def view(tenant: str, message: VoicemailMessage) -> dict[str, Any]:
    url = f"{V1}/tenants/{tenant}/voicemail/{message.box}/{message.uuid}"
    return {
        "uuid": message.uuid,
        "box": message.box,
        "caller_name": message.caller_name,
        "caller_number": message.caller_number,
        "received_at": message.created.isoformat(),
        "heard_at": message.heard.isoformat() if message.heard else None,
        "new": message.new,
        "seconds": message.seconds,
        "url": url,
        "audio": url + "/audio",
    }


def boxes(sc: TenantScope, box: str) -> list[Extension]:
    """The boxes shown: one asked for (404 if not the caller's to see), else every visible
    extension with voicemail."""
    if box:
        if not _BOX.match(box):
            raise NotFound(f"no box {box}")
        return [sc.extension(box)]
    return [ext for ext in sc.visible_extensions() if ext.voicemail_enabled]


async def messages(sc: TenantScope, request: web.Request, box: str = "") -> dict[str, Any]:
    """``{messages, total, problem}``: one page (``limit``, ``offset``) of the boxes shown,
    newest first (the switches keep the boxes' listings and their merge: a page is a
    slice, never a ``vm_list`` of every box nor a sort of the tenant's every message)."""
    shown = boxes(sc, box)
    limit, offset = query_limit(request), query_offset(request)
    port = port_of(request, VOICEMAIL)
    try:
        found = await port.boxes_messages([e.number for e in shown], sc.state.tenant.domain)
    except VoicemailUnavailable:
        return {"messages": [], "total": 0, "problem": UNAVAILABLE}
    return {
        "messages": [view(sc.tenant_id, m) for m in found[offset : offset + limit]],
        "total": len(found),
        "problem": None,
    }


def _pages(request: web.Request, box: str, total: int) -> dict[str, Any]:
    """The page's links: newer and older pages, and its live stream (the same page)."""
    limit, offset = query_limit(request), query_offset(request)

    def query(at: int) -> str:
        return "?" + urlencode({**({"box": box} if box else {}), "limit": limit, "offset": at})

    return {
        "first": offset + 1,
        "newer": query(max(0, offset - limit)) if offset > 0 else None,
        "older": query(offset + limit) if offset + limit < total else None,
        "here": query(offset),
    }


async def message_of(request: web.Request, sc: TenantScope) -> VoicemailMessage:
    """The message the path names, as its box lists it now; 404 otherwise."""
    box, uuid = request.match_info["box"], request.match_info["uuid"]
    if not _BOX.match(box) or not _UUID.match(uuid):
        raise NotFound("no such message")
    sc.extension(box)  # another person's or tenant's box: 404
    try:
        listed: Sequence[VoicemailMessage] = await port_of(request, VOICEMAIL).messages(
            box, sc.state.tenant.domain
        )
    except VoicemailUnavailable as exc:
        raise SwitchUnavailable(UNAVAILABLE) from exc
    found = next((m for m in listed if m.uuid == uuid), None)
    if found is None:
        raise NotFound("no such message (deleted, or past its retention)")
    return found


def require_change(sc: TenantScope, box: str) -> None:
    if sc.role is Role.ADMIN or (sc.role is not Role.SUPER and box in sc.own_extensions):
        return
    raise Forbidden("only the box's owner or a tenant admin changes its messages")


async def change(request: web.Request, sc: TenantScope, action: str) -> VoicemailMessage:
    """``heard``, ``new`` or ``delete`` one message, audited (denials too)."""
    message = await message_of(request, sc)
    who = actor(request)
    target = f"{message.box} {message.uuid}"
    try:
        require_change(sc, message.box)
    except Forbidden:
        await who.audit(f"voicemail_{action}", "denied", tenant_id=sc.tenant_id, target=target)
        raise
    port = port_of(request, VOICEMAIL)
    try:
        if action == "delete":
            await port.delete(message)
        else:
            await port.mark(message, heard=action == "heard")
    except NoSuchMessage as exc:
        raise NotFound("no such message (deleted meanwhile)") from exc
    except (VoicemailUnavailable, VoicemailRefused) as exc:
        await who.audit(
            f"voicemail_{action}", "failed", tenant_id=sc.tenant_id, target=target, detail=str(exc)
        )
        raise SwitchUnavailable(f"the message is unchanged: {exc}") from exc
    await who.audit(f"voicemail_{action}", "ok", tenant_id=sc.tenant_id, target=target)
    return message


def relative_path(root: str, tenant: str, message: VoicemailMessage) -> str | None:
    """The message's file relative to ``<root>/<tenant>/`` when it lies in its own box's
    folder there (``<box>/<file>``), else None: a path the switch reports elsewhere (another
    tenant's folder, a root the daemon does not share) is never opened."""
    path = PurePosixPath(message.path)
    base = PurePosixPath(root) / tenant / message.box
    if path.parent != base or path.name in ("", ".", ".."):
        return None
    return f"{message.box}/{path.name}"


# -- pages -----------------------------------------------------------------------------------


@routes.get(PAGE)
async def voicemail_page(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    box = request.query.get("box", "")
    found = await messages(sc, request, box)
    pages = _pages(request, box, found["total"])
    return render(request, "voicemail.html", scope=sc, box=box, **found, **pages)


@routes.get(PAGE + "/live")
async def voicemail_live(request: web.Request) -> web.StreamResponse:
    def allowed(req: web.Request) -> None:
        boxes(scope(req, req.match_info["tenant"]), req.query.get("box", ""))

    async def fragments(req: web.Request) -> bytes:
        sc = scope(req, req.match_info["tenant"])
        box = req.query.get("box", "")
        found = await messages(sc, req, box)
        pages = _pages(req, box, found["total"])
        html = render_html(req, "_voicemail.html", scope=sc, box=box, **found, **pages)
        return f"event: fragment\ndata: {json.dumps({'id': 'live-voicemail', 'html': html})}\n\n".encode()

    return await fragment_stream(request, allowed, fragments, changes=port_of(request, VOICEMAIL))


@routes.post(PAGE + "/{box}/{uuid}/{action}")
async def voicemail_action(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    action = request.match_info["action"]
    if action not in ("heard", "new", "delete"):
        raise NotFound()
    await change(request, sc, action)
    box = form_field(await request.post(), "box")
    back = f"/t/{sc.tenant_id}/voicemail" + (f"?box={box}" if _BOX.match(box) else "")
    return see_other(back)


# -- API -------------------------------------------------------------------------------------


@routes.get(API)
async def api_voicemail(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    return ok(await messages(sc, request, request.query.get("box", "")))


@routes.get(MESSAGE + "/audio")
async def api_voicemail_audio(request: web.Request) -> web.StreamResponse:
    """One message's audio; ``download=true`` asks the browser to save it."""
    sc = scope(request, request.match_info["tenant"])
    message = await message_of(request, sc)
    root = portal_of(request).config.audio_roots.voicemail
    relative = relative_path(root, sc.tenant_id, message)
    if relative is None:
        raise NotFound("the message's audio is not in this tenant's voicemail folder")
    try:
        opened = await asyncio.to_thread(open_tenant_file, Path(root), sc.tenant_id, relative)
    except NotFound:
        raise NotFound("the message's audio is gone (deleted on disk)") from None
    return await file_response(request, opened, download=request.query.get("download") == "true")


@routes.post(MESSAGE + "/heard")
async def api_voicemail_heard(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    message = await change(request, sc, "heard")
    return ok({"uuid": message.uuid, "new": False})


@routes.post(MESSAGE + "/new")
async def api_voicemail_new(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    message = await change(request, sc, "new")
    return ok({"uuid": message.uuid, "new": True})


@routes.delete(MESSAGE)
async def api_voicemail_delete(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    message = await change(request, sc, "delete")
    return ok({"uuid": message.uuid, "deleted": True})


def _paths() -> dict[str, Any]:
    message = obj(
        ["uuid", "box", "caller_name", "caller_number", "received_at", "new", "seconds", "url"],
        uuid=string(),
        box=string(),
        caller_name=string(),
        caller_number=string(),
        received_at=string(format="date-time"),
        heard_at=string(True),
        new=boolean(),
        seconds=integer(),
        url=string(),
        audio=string(),
    )
    box_param = {
        "name": "box",
        "in": "path",
        "required": True,
        "schema": string(pattern=_BOX.pattern),
    }
    uuid_param = {
        "name": "uuid",
        "in": "path",
        "required": True,
        "schema": string(pattern=_UUID.pattern),
    }
    params = [TENANT, box_param, uuid_param]
    unavailable = {
        "502": error_answer("switch_unavailable: no switch answered, or it refused; unchanged")
    }
    changed = obj(["uuid", "new"], uuid=string(), new=boolean())
    audio = {
        "200": {"description": "the audio", "content": {"audio/*": {}}},
        "206": {"description": "the requested byte range", "content": {"audio/*": {}}},
        "416": {"description": "the range is beyond the file"},
    }
    return {
        "/tenants/{tenant}/voicemail": {
            "get": operation(
                "voicemail messages: every box of the tenant for admins, your own boxes "
                "otherwise; newest first, a page at a time (total: over every page)",
                obj(
                    ["messages", "total", "problem"],
                    messages=array(message),
                    total=integer(),
                    problem=string(True),
                ),
                params=[
                    TENANT,
                    {
                        "name": "box",
                        "in": "query",
                        "required": False,
                        "schema": string(pattern=_BOX.pattern),
                    },
                    LIMIT,
                    OFFSET,
                ],
            )
        },
        "/tenants/{tenant}/voicemail/{box}/{uuid}": {
            "delete": operation(
                "delete a message through mod_voicemail (owner or tenant admin; audited)",
                obj(["uuid", "deleted"], uuid=string(), deleted=boolean()),
                params=params,
                errors=unavailable,
            )
        },
        "/tenants/{tenant}/voicemail/{box}/{uuid}/heard": {
            "post": operation(
                "mark a message heard (the lamp's count drops; owner or tenant admin; audited)",
                changed,
                params=params,
                errors=unavailable,
            )
        },
        "/tenants/{tenant}/voicemail/{box}/{uuid}/new": {
            "post": operation(
                "mark a message new again (owner or tenant admin; audited)",
                changed,
                params=params,
                errors=unavailable,
            )
        },
        "/tenants/{tenant}/voicemail/{box}/{uuid}/audio": {
            "get": {
                **operation(
                    "one message's audio (Range requests; download=true to save it)",
                    None,
                    params=[
                        *params,
                        {
                            "name": "download",
                            "in": "query",
                            "required": False,
                            "schema": string(enum=["true", "false"]),
                        },
                    ],
                    errors=unavailable,
                ),
                "responses": {
                    **operation("", None, errors=unavailable)["responses"],
                    **audio,
                },
            }
        },
    }


FEATURE = Feature(name="voicemail", routes=(routes,), openapi_paths=_paths, ports=(VOICEMAIL,))

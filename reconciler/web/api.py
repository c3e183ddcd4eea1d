"""The JSON API, ``/api/v1``: the same answers as the pages (built by ``views``), the same
authorization (session cookie + ``X-CSRF-Token`` for writes, or ``Authorization: Bearer``),
errors as ``{"error": {"code", "message"}}`` with the codes of ``errors``. Documented in
``openapi`` (served at ``/api/v1/openapi.json``), which the tests hold it to."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from reconciler.store.portal import read_audit
from reconciler.web import views
from reconciler.web.access import visible_tenant_ids
from reconciler.web.actions import Actor
from reconciler.web.errors import BadRequest, Forbidden, NotFound, printable
from reconciler.web.openapi import openapi_document
from reconciler.web.portal import client_addr, identity_of, portal_of, principal, scope

routes = web.RouteTableDef()
V1 = "/api/v1"
EXT = V1 + "/tenants/{tenant}/extensions/{number}"


def _ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _limit(request: web.Request, default: int = 50) -> int:
    text = request.query.get("limit", str(default))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 500:
        raise BadRequest("limit must be an integer from 1 to 500")
    return int(text)


def _offset(request: web.Request) -> int:
    text = request.query.get("offset", "0")
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise BadRequest("offset must be a non-negative integer")
    return int(text)


async def _body(request: web.Request, field: str) -> str:
    try:
        body = json.loads(await request.text() or "null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("the body must be JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get(field), str):
        raise BadRequest(f'the body must be a JSON object with a string "{field}"')
    return printable(str(body[field]), field)


def _actor(request: web.Request) -> Actor:
    return Actor(portal_of(request), principal(request), client_addr(request))


def _session_only(request: web.Request) -> None:
    """Minting credentials needs a person at a browser: a leaked API token cannot create
    more tokens, nor invitations, and so cannot outlive its own revocation or expiry."""
    ident = identity_of(request)
    if ident is not None and ident.session is None:
        raise Forbidden("an API token cannot create tokens or invitations: use a session")


def _all_flag(request: web.Request) -> bool:
    everyone = request.query.get("all", "false")
    if everyone not in ("true", "false"):
        raise BadRequest("all must be true or false")
    return everyone == "true"


def _require_super(request: web.Request) -> None:
    if not principal(request).super_admin:
        raise NotFound()


@routes.get(V1 + "/openapi.json")
async def openapi(request: web.Request) -> web.StreamResponse:
    return _ok(openapi_document(portal_of(request).config.base_url))


@routes.get(V1 + "/me")
async def me(request: web.Request) -> web.StreamResponse:
    return _ok(views.me_view(principal(request), portal_of(request).deps.applied_state()))


@routes.get(V1 + "/tenants")
async def tenants(request: web.Request) -> web.StreamResponse:
    limit, offset = _limit(request, 100), _offset(request)
    portal = portal_of(request)
    state, sync = portal.deps.applied_state(), portal.deps.tenant_sync()
    me_ = principal(request)
    if me_.super_admin:
        rows = portal.overview.rows(state, sync).by_id
    else:
        rows = views.tenant_rows(
            visible_tenant_ids(me_, state), state, sync, shows_errors=me_.administers
        )
    wanted = request.query.get("sync")
    if wanted:
        rows = [r for r in rows if r["sync"] == wanted]
    return _ok({"total": len(rows), "tenants": rows[offset : offset + limit]})


@routes.get(V1 + "/tenants/{tenant}")
async def tenant(request: web.Request) -> web.StreamResponse:
    tenant_id = request.match_info["tenant"]
    sc = scope(request, tenant_id)
    deps = portal_of(request).deps
    live = deps.presence.domain(sc.state.tenant.domain)
    return _ok(views.tenant_detail(sc, deps.tenant_sync().get(tenant_id), live))


@routes.get(V1 + "/tenants/{tenant}/extensions")
async def extensions(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    live = portal_of(request).deps.presence.domain(sc.state.tenant.domain)
    return _ok({"extensions": views.live_sections(sc, live)["extensions"]})


@routes.get(EXT)
async def extension(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    ext = sc.extension(request.match_info["number"])
    live = portal_of(request).deps.presence.domain(sc.state.tenant.domain)
    regs = views.registrations_by_user(live).get(ext.number, [])
    return _ok(views.extension_view(ext, regs, sc))


@routes.post(EXT + "/credentials/reveal")
async def reveal(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    creds = await _actor(request).reveal(sc, request.match_info["number"])
    return _ok(creds.to_dict())


@routes.post(EXT + "/credentials/rotate")
async def rotate(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    await _actor(request).rotate(sc, request.match_info["number"])
    return _ok({"rotated": True})


@routes.get(V1 + "/tenants/{tenant}/agents")
async def agents(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    live = portal_of(request).deps.presence.domain(sc.state.tenant.domain)
    return _ok({"agents": views.live_sections(sc, live)["agents"]})


@routes.put(V1 + "/tenants/{tenant}/agents/{agent}/status")
async def agent_status(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    agent = request.match_info["agent"]
    sc.agent(agent)  # an invisible agent is 404 before the body is judged
    status = await _body(request, "status")
    results = await _actor(request).set_status(sc, agent, status)
    return _ok(
        {
            "agent": agent,
            "status": status,
            "results": [{"node": r.node, "ok": r.ok, "error": r.error} for r in results],
        }
    )


@routes.get(V1 + "/tenants/{tenant}/queues")
async def queues(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    live = portal_of(request).deps.presence.domain(sc.state.tenant.domain)
    return _ok({"queues": views.live_sections(sc, live)["queues"]})


@routes.get(V1 + "/tenants/{tenant}/history")
async def tenant_history(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    entries = await portal_of(request).deps.history(sc.tenant_id, _limit(request))
    return _ok({"history": [views.history_view(h) for h in entries]})


@routes.get(V1 + "/tenants/{tenant}/audit")
async def tenant_audit(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    entries = await portal_of(request).db.run(
        read_audit, tenant_id=sc.tenant_id, limit=_limit(request)
    )
    return _ok({"audit": [views.audit_view(e) for e in entries]})


@routes.get(V1 + "/nodes")
async def nodes(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    return _ok({"nodes": [views.node_view(n) for n in portal_of(request).deps.nodes()]})


@routes.get(V1 + "/history")
async def history(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    entries = await portal_of(request).deps.history(None, _limit(request))
    return _ok({"history": [views.history_view(h) for h in entries]})


@routes.get(V1 + "/audit")
async def audit(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    entries = await portal_of(request).db.run(read_audit, tenant_id=None, limit=_limit(request))
    return _ok({"audit": [views.audit_view(e) for e in entries]})


@routes.get(V1 + "/search")
async def search(request: web.Request) -> web.StreamResponse:
    _require_super(request)
    query = request.query.get("q", "")[:100]
    portal = portal_of(request)
    hits = portal.searcher.index(portal.deps.applied_state()).search(query)
    return _ok(
        {
            "hits": [
                {"kind": h.kind, "tenant": h.tenant_id, "key": h.key, "label": h.label}
                for h in hits
            ]
        }
    )


@routes.post(V1 + "/invitations")
async def invitations(request: web.Request) -> web.StreamResponse:
    principal(request)
    _session_only(request)
    sent = await _actor(request).invite(await _body(request, "email"))
    return _ok(
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
async def resets(request: web.Request) -> web.StreamResponse:
    """A reset link for an activated account, mailed to the person (mail only)."""
    principal(request)
    _session_only(request)
    sent = await _actor(request).send_reset(await _body(request, "email"))
    return _ok(
        {
            "email": sent.link.email,
            "sent_to": sent.sent_to,
            "expires_at": views.iso(sent.link.expires_at),
        },
        status=201,
    )


@routes.get(V1 + "/tokens")
async def tokens(request: web.Request) -> web.StreamResponse:
    principal(request)
    found = await _actor(request).tokens(everyone=_all_flag(request))
    return _ok({"tokens": [views.token_view(t) for t in found]})


@routes.post(V1 + "/tokens")
async def token_create(request: web.Request) -> web.StreamResponse:
    principal(request)
    _session_only(request)
    name = await _body(request, "name")
    days = json.loads(await request.text()).get("days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
        raise BadRequest('"days" must be an integer')
    token_id, token = await _actor(request).create_token(name, days)
    return _ok({"id": token_id, "token": token}, status=201)


@routes.delete(V1 + "/tokens/{id:[0-9]{1,18}}")
async def token_delete(request: web.Request) -> web.StreamResponse:
    await _actor(request).revoke_token(int(request.match_info["id"]))
    return web.Response(status=204)


@routes.post(V1 + "/revocations")
async def revocations(request: web.Request) -> web.StreamResponse:
    """End every session, API token and pending link of one person (yourself, or anyone
    for super admins)."""
    revoked = await _actor(request).end_everything(await _body(request, "email"))
    return _ok(
        {
            "sessions": revoked.sessions,
            "tokens": revoked.tokens,
            "invitations": revoked.invitations,
        }
    )


@routes.get(V1 + "/sessions")
async def sessions(request: web.Request) -> web.StreamResponse:
    rows = await _actor(request).sessions(everyone=_all_flag(request))
    ident = identity_of(request)
    current = ident.session.id if ident and ident.session else None
    return _ok({"sessions": [views.session_view(s, current) for s in rows]})


@routes.delete(V1 + "/sessions/{id:[0-9]{1,18}}")
async def session_delete(request: web.Request) -> web.StreamResponse:
    await _actor(request).revoke_session(int(request.match_info["id"]))
    return web.Response(status=204)

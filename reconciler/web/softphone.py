"""**Phone**: a SIP.js phone in the browser for every person with an extension. The page
``/phone`` runs in its own small window (the portal opens it by name and talks to it over a
``BroadcastChannel``, so a call survives moving around the portal); it registers one of the
person's own extensions over WSS to the switch nodes ``--phone-wss`` names.

What the browser authenticates with comes from ``POST /api/v1/tenants/{t}/extensions/{n}/phone``:
the SIP digest HA1 (``md5(user:realm:password)``, what FreeSWITCH's ``a1-hash`` holds and
SIP.js's ``authorizationHa1`` takes), never the password, and whether the extension has a
voicemail box (only then does the phone show the switch's message-waiting lamp). Only the
caller's own enabled extension, from a session (not an API token), each start audited;
anything else is 404 like an unknown extension. The phone asks again at every start, and a running phone asks
(``GET``, nothing secret) before each call it places or answers, so someone removed from
git, unlinked from the extension or logged out stops at their next call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from reconciler.core.model import Extension, State, TenantLifecycle
from reconciler.store import UnknownExtension, UnknownTenant
from reconciler.store.extension_secrets import a1_hash
from reconciler.web.access import Principal, Role
from reconciler.web.context import identity_of, portal_of, principal, render, scope
from reconciler.web.errors import Forbidden, NotFound
from reconciler.web.feature import Feature, NavEntry
from reconciler.web.handling import V1, actor, ok
from reconciler.web.middleware import CSP
from reconciler.web.openapi import NUMBER, TENANT, array, boolean, obj, operation, string
from reconciler.web.phone_bundle import BUILD_COMMAND, BundleFinder
from reconciler.web.ports import CREDENTIALS

routes = web.RouteTableDef()
BUNDLE = BundleFinder()
PHONE_PATH = "/phone"
ASSETS = PHONE_PATH + "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class PhoneLine:
    """One extension the person may register in the browser."""

    tenant_id: str
    tenant_name: str
    domain: str
    number: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.number}"


def phone_lines(who: Principal, state: State) -> list[PhoneLine]:
    """The person's own enabled extensions in their active tenants, by tenant then number."""
    lines = []
    for tenant_id in who.tenant_ids:
        tenant_state = state.get(tenant_id)
        if tenant_state is None or tenant_state.tenant.status != TenantLifecycle.ACTIVE:
            continue
        tenant = tenant_state.tenant
        for number in who.memberships[tenant_id].extensions:
            ext = tenant_state.extensions.get(number)
            if ext is not None and ext.enabled:
                lines.append(PhoneLine(tenant.id, tenant.name, tenant.domain, number, ext.name))
    return lines


def nav(who: Principal) -> Sequence[NavEntry]:
    """Whoever has an extension in git gets the entry (the page says when it cannot work)."""
    return [NavEntry("Phone", PHONE_PATH)] if who.has_extensions else []


def phone_csp(origins: Sequence[str]) -> str:
    """The portal's policy with exactly the configured WSS origins added to ``connect-src``."""
    return CSP.replace("connect-src 'self'", " ".join(["connect-src 'self'", *origins]))


@routes.get(PHONE_PATH)
async def phone_page(request: web.Request) -> web.StreamResponse:
    me = principal(request)
    wss = portal_of(request).config.phone_wss
    bundle = BUNDLE.find()
    response = render(
        request,
        "phone.html",
        lines=phone_lines(me, portal_of(request).deps.applied_state()),
        wss=wss,
        bundle_url=ASSETS + bundle.name if bundle else None,
        build_command=BUILD_COMMAND,
    )
    response.headers["Content-Security-Policy"] = phone_csp(wss)
    # the one page that may use the microphone (every other page denies it)
    response.headers["Permissions-Policy"] = "camera=(), microphone=(self), geolocation=()"
    return response


@routes.get(ASSETS + "{name}")
async def phone_asset(request: web.Request) -> web.StreamResponse:
    """The bundle, public (no secret in it) and cached for a year: its name is its hash."""
    bundle = BUNDLE.find()
    if bundle is None or request.match_info["name"] != bundle.name:
        raise NotFound("no such file")
    return web.Response(
        body=bundle.body,
        content_type="text/javascript",
        charset="utf-8",
        headers={"Cache-Control": IMMUTABLE},
    )


def phone_extension(request: web.Request, tenant_id: str, number: str) -> Extension:
    """The caller's own enabled extension; anything else (another person's, another
    tenant's, a super admin's view of it) is 404 like an unknown one."""
    sc = scope(request, tenant_id)
    ext = sc.state.extensions.get(number)
    if sc.role is Role.SUPER or number not in sc.own_extensions or ext is None or not ext.enabled:
        raise NotFound(f"no extension {number}")
    return ext


def phone_line(request: web.Request) -> tuple[str, str, Extension]:
    """The tenant, number and extension of the request's phone, if it may still use it."""
    ident = identity_of(request)
    if ident is not None and ident.session is None:
        raise Forbidden("the browser phone needs a session, not an API token")
    tenant_id, number = request.match_info["tenant"], request.match_info["number"]
    ext = phone_extension(request, tenant_id, number)
    if not portal_of(request).config.phone_wss:
        raise NotFound("the platform has no browser phone configured")
    return tenant_id, number, ext


@routes.get(V1 + "/tenants/{tenant}/extensions/{number}/phone")
async def api_phone_check(request: web.Request) -> web.StreamResponse:
    """Whether a running phone may go on (asked before each call it places or answers), so
    someone unlinked, removed or logged out stops there too, not only at the next start.
    Nothing secret and not audited: the start was."""
    phone_line(request)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


@routes.post(V1 + "/tenants/{tenant}/extensions/{number}/phone")
async def api_phone(request: web.Request) -> web.StreamResponse:
    tenant_id, number, ext = phone_line(request)
    portal = portal_of(request)
    try:
        creds = await portal.port(CREDENTIALS).show_credentials(tenant_id, number)
    except (UnknownExtension, UnknownTenant) as exc:
        raise NotFound(f"no extension {number}") from exc
    await actor(request).audit("phone", "ok", tenant_id=tenant_id, target=number)
    return ok(
        {
            "tenant": tenant_id,
            "extension": number,
            "uri": f"sip:{number}@{creds.domain}",
            "realm": creds.domain,
            "authorization_username": creds.username,
            "authorization_ha1": a1_hash(creds.username, creds.domain, creds.password),
            "display_name": ext.caller_id_name or ext.name,
            "wss_servers": list(portal.config.phone_wss),
            "voicemail": ext.voicemail_enabled,
        }
    )


def _paths() -> dict[str, Any]:
    return {
        "/tenants/{tenant}/extensions/{number}/phone": {
            "post": operation(
                "what the browser phone registers one of your own extensions with (a session "
                "only; the SIP digest HA1, never the password; audited; not cached)",
                obj(
                    [
                        "tenant",
                        "extension",
                        "uri",
                        "realm",
                        "authorization_username",
                        "authorization_ha1",
                        "display_name",
                        "wss_servers",
                        "voicemail",
                    ],
                    tenant=string(),
                    extension=string(),
                    uri=string(),
                    realm=string(),
                    authorization_username=string(),
                    authorization_ha1=string(pattern="^[0-9a-f]{32}$"),
                    display_name=string(),
                    wss_servers=array(string()),
                    voicemail=boolean(),
                ),
                params=[TENANT, NUMBER],
            ),
            "get": operation(
                "whether your running browser phone may go on with this extension (asked "
                "before each call; nothing secret, not audited)",
                None,
                params=[TENANT, NUMBER],
                status="204",
            ),
        }
    }


FEATURE = Feature(
    name="phone",
    routes=(routes,),
    nav=nav,
    openapi_paths=_paths,
    ports=(CREDENTIALS,),
)

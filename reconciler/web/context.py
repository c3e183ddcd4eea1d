"""The portal's per-application context (``Portal``: its features, ports, database, sessions,
limiter, templates) and the request helpers every handler uses: who is calling, what they
may see in a tenant, the ports a feature reads, and page rendering (with the header the
features' navigation gives this person).

Every helper reads the daemon's CURRENT applied state: a person removed from git or demoted
loses that access on their next request, whatever their session says.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import jinja2
from aiohttp import web

from reconciler.store.accounts import read_installation_id
from reconciler.web import filters
from reconciler.web.access import Principal, TenantScope, principal_for, tenant_scope
from reconciler.web.config import PortalConfig
from reconciler.web.db import PortalDb
from reconciler.web.errors import AccessRemoved, Unauthenticated
from reconciler.web.feature import Feature, nav_entries
from reconciler.web.login import Login
from reconciler.web.mail import Mailer
from reconciler.web.overview import Overview
from reconciler.web.passwords import PasswordChecker
from reconciler.web.ports import PortalDeps, PortKey
from reconciler.web.proxies import client_address
from reconciler.web.ratelimit import LoginLimiter
from reconciler.web.recording_index import RecordingIndex
from reconciler.web.search import Searcher
from reconciler.web.sessions import Identity, Sessions

IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("pbx_identity")
PRE_CSRF: web.RequestKey[str] = web.RequestKey(
    "pbx_pre"
)  # the pre-session CSRF token (login, activation)


T = TypeVar("T")


class Portal:
    def __init__(
        self,
        deps: PortalDeps,
        config: PortalConfig,
        features: Sequence[Feature] = (),
        ports: Mapping[PortKey[Any], object] | None = None,
    ) -> None:
        self.deps = deps
        self.config = config
        self.features = tuple(features)
        self.ports = dict(ports or {})
        missing = sorted(
            f"{feature.name}: {port.name}"
            for feature in self.features
            for port in feature.ports
            if port not in self.ports
        )
        if missing:
            raise ValueError("portal features without their ports: " + ", ".join(missing))
        self.db = PortalDb(deps.database_dsn, size=config.db_pool_size)
        self.sessions = Sessions(self.db, config)
        self.limiter = LoginLimiter(
            config.login_per_account_address, config.login_per_address, config.login_per_account
        )
        self.passwords = PasswordChecker(config.argon2_threads, config.argon2_queue)
        self.login = Login(self.db, self.sessions, self.limiter, self.passwords)
        self.mailer = Mailer(config.mail) if config.mail else None
        self.searcher = Searcher()
        self.overview = Overview()
        self.recording_index = RecordingIndex(
            Path(config.audio_roots.recordings), config.recordings_fresh_seconds
        )
        self.closing = asyncio.Event()  # set on shutdown: open event streams end at once
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("reconciler.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        filters.install(self.templates, config.revision_url)
        self.templates.globals["phone_wss"] = config.phone_wss  # "Call" links, WSS rows
        self.templates.globals["phone_enabled"] = bool(config.phone_wss)
        self._pre_session_key: bytes | None = None

    def port(self, key: PortKey[T]) -> T:
        return cast(T, self.ports[key])

    async def pre_session_key(self) -> bytes:
        """The key of the pre-session CSRF token: derived from the installation's random
        identity, so every daemon of one database agrees without configuration."""
        if self._pre_session_key is None:
            installation = await self.db.run(read_installation_id)
            self._pre_session_key = hmac.new(
                installation.encode(), b"pbx-portal pre-session csrf", hashlib.sha256
            ).digest()
        return self._pre_session_key

    @property
    def cookie_name(self) -> str:
        # __Host-: the browser refuses it unless Secure, path=/ and no Domain
        return "__Host-pbx_session" if self.config.cookies_secure else "pbx_session"

    @property
    def pre_cookie_name(self) -> str:
        return "__Host-pbx_pre" if self.config.cookies_secure else "pbx_pre"

    def set_cookie(self, response: web.StreamResponse, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            path="/",
            httponly=True,
            secure=self.config.cookies_secure,
            samesite="Strict",
        )

    def clear_cookie(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/", secure=self.config.cookies_secure, samesite="Strict")

    async def shutdown(self, _app: web.Application) -> None:
        self.closing.set()

    async def lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        """The app's ``cleanup_ctx``: the recordings index is warmed and swept in the
        background while the app runs; the password threads and the database pool close with
        the application."""
        upkeep = asyncio.create_task(self.recording_index.upkeep(self.deps.applied_state))
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            self.passwords.close()
            await self.db.close()


PORTAL_KEY = web.AppKey("pbx_portal", Portal)


def portal_of(request: web.Request) -> Portal:
    return request.app[PORTAL_KEY]


def features_of(request: web.Request) -> Sequence[Feature]:
    return portal_of(request).features


def port_of(request: web.Request, key: PortKey[T]) -> T:
    """The port ``key`` names, as this app was given it (``Feature.ports`` lists it, so the
    app refused to start without it)."""
    return portal_of(request).port(key)


def identity_of(request: web.Request) -> Identity | None:
    return request.get(IDENTITY)


def principal(request: web.Request) -> Principal:
    """The caller as the applied state sees them now; ``Unauthenticated`` otherwise."""
    ident = identity_of(request)
    if ident is None:
        raise Unauthenticated()
    deps = portal_of(request).deps
    found = principal_for(ident.email, deps.applied_state(), deps.platform_admins())
    if found is None:
        raise AccessRemoved()
    return found


def scope(request: web.Request, tenant_id: str) -> TenantScope:
    return tenant_scope(principal(request), portal_of(request).deps.applied_state(), tenant_id)


def client_addr(request: web.Request) -> str:
    """The client's address: the peer's, or behind a trusted proxy what it forwarded."""
    proxies = portal_of(request).config.trusted_proxies
    forwarded = request.headers.getall("X-Forwarded-For", []) if proxies else []
    return client_address(request.remote, forwarded, proxies)


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    html = render_html(request, template, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def render_html(request: web.Request, template: str, **context: Any) -> str:
    """A template with the context every page has: who is logged in, the CSRF token."""
    portal = portal_of(request)
    ident = identity_of(request)
    who = None
    if ident is not None:
        deps = portal.deps
        who = principal_for(ident.email, deps.applied_state(), deps.platform_admins())
    return portal.templates.get_template(template).render(
        me=who,
        nav=[(e, e.on(request.path)) for e in nav_entries(portal.features, who)] if who else [],
        csrf=(ident.csrf_token if ident else None) or request.get(PRE_CSRF, ""),
        path=request.path,
        **context,
    )

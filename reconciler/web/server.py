"""``make_portal_app``: the portal as an aiohttp application built from its features
(``features.FEATURES``), and ``PortalServer`` to run it
on its own listener (never the xml_curl one: FreeSWITCH's hot path keeps its own socket,
credentials and benchmark).

The listener is the bounded one xml_curl uses (``reconciler.serve.start_server``) with the
portal's own limits (``PORTAL_LIMITS``): head, body and idle timeouts, a connection cap,
and a quarter of the process's file descriptors at most, so idle or slow browsers (or an
attacker posing as many) never take the descriptors xml_curl or a pass needs."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from aiohttp import web

from reconciler.serve import ListenerLimits, bound_port, start_server
from reconciler.web.addresslimit import ADDRESS_BUDGET, AddressBudget, unauthenticated_limit
from reconciler.web.config import PortalConfig
from reconciler.web.context import PORTAL_KEY, Portal
from reconciler.web.feature import Feature
from reconciler.web.features import FEATURES
from reconciler.web.gateways import GATEWAYS, NoGateways
from reconciler.web.middleware import authenticate, errors, security_headers
from reconciler.web.ports import PortalDeps, PortKey, core_ports

log = logging.getLogger(__name__)

PORTAL_LIMITS = ListenerLimits(
    max_body_bytes=64 * 1024,  # = the application's client_max_size
    header_timeout=10.0,
    body_timeout=10.0,
    keepalive_timeout=15.0,
    max_connections=256,
    max_per_address=64,  # a browser opens 6; a flooder cannot take the whole cap
    fd_share=0.25,  # xml_curl holds at most half; a quarter stays for the database and ESL
    long_requests=True,  # server-sent event streams
)


def make_portal_app(
    deps: PortalDeps,
    config: PortalConfig,
    features: Sequence[Feature] = FEATURES,
    ports: Mapping[PortKey[Any], object] | None = None,
) -> web.Application:
    """The portal of ``features`` (every route of each, in order). ``ports``: what features
    need beyond ``deps`` (``Feature.ports``), by ``PortKey``; a missing one raises here."""
    defaults = {GATEWAYS: NoGateways()}
    portal = Portal(deps, config, features, {**core_ports(deps), **defaults, **(ports or {})})
    app = web.Application(
        middlewares=[security_headers, errors, unauthenticated_limit, authenticate],
        client_max_size=PORTAL_LIMITS.max_body_bytes,
    )
    app[PORTAL_KEY] = portal
    app[ADDRESS_BUDGET] = AddressBudget(config.unauthenticated_per_address)
    for feature in portal.features:
        for table in feature.routes:
            app.router.add_routes(table)
        app.cleanup_ctx.extend(feature.lifetime)
    static = resources.files("reconciler.web") / "static"
    app.router.add_static("/static/", str(static), append_version=False)
    app.on_shutdown.append(portal.shutdown)
    app.cleanup_ctx.append(portal.lifetime)
    return app


def portal_of_app(app: web.Application) -> Portal:
    return app[PORTAL_KEY]


def ssl_context(config: PortalConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


class PortalServer:
    """The portal on ``config.listen_host:listen_port`` (TLS when configured).

    ``await start()`` once the event loop runs; ``await stop()`` in the daemon's shutdown
    (it closes open server-sent event streams and the portal's database pool)."""

    def __init__(
        self,
        deps: PortalDeps,
        config: PortalConfig,
        ports: Mapping[PortKey[Any], object] | None = None,
    ) -> None:
        self.config = config
        self.app = make_portal_app(deps, config, ports=ports)
        self._runner: web.AppRunner | None = None

    @property
    def portal(self) -> Portal:
        return self.app[PORTAL_KEY]

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        bound = bound_port(self._runner) if self._runner is not None else None
        return bound if bound is not None else self.config.listen_port

    async def start(self) -> None:
        """Raises ``ListenerUnavailable`` (one line naming ``--portal-listen``) when the
        address cannot be bound."""
        config = self.config
        self._runner = await start_server(
            self.app,
            config.listen_host,
            config.listen_port,
            PORTAL_LIMITS,
            ssl_context=ssl_context(config),
            what="portal listener (--portal-listen / PBX_PORTAL_LISTEN)",
            shutdown_timeout=2.0,
        )
        log.info("portal listening on %s:%s (%s)", config.listen_host, self.port, config.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

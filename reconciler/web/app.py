"""``make_portal_app``: the portal as an aiohttp application, and ``PortalServer`` to run it
on its own listener (never the xml_curl one: FreeSWITCH's hot path keeps its own socket,
credentials and benchmark)."""

from __future__ import annotations

import logging
import ssl
from importlib import resources

from aiohttp import web

from reconciler.web import api, live, lockouts, pages, pages_account, pages_auth
from reconciler.web.config import PortalConfig
from reconciler.web.middleware import authenticate, errors, security_headers
from reconciler.web.portal import PORTAL_KEY, Portal
from reconciler.web.ports import PortalDeps

log = logging.getLogger(__name__)


def make_portal_app(deps: PortalDeps, config: PortalConfig) -> web.Application:
    portal = Portal(deps, config)
    app = web.Application(
        middlewares=[security_headers, errors, authenticate], client_max_size=64 * 1024
    )
    app[PORTAL_KEY] = portal
    for module in (pages_auth, pages, pages_account, live, api, lockouts):
        app.router.add_routes(module.routes)
    static = resources.files("reconciler.web") / "static"
    app.router.add_static("/static/", str(static), append_version=False)
    app.on_shutdown.append(portal.shutdown)
    app.on_cleanup.append(portal.close)
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

    def __init__(self, deps: PortalDeps, config: PortalConfig) -> None:
        self.config = config
        self.app = make_portal_app(deps, config)
        self._runner: web.AppRunner | None = None

    @property
    def portal(self) -> Portal:
        return self.app[PORTAL_KEY]

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._runner is not None:
            for site in self._runner.sites:
                server = getattr(site, "_server", None)
                if server is not None and server.sockets:
                    return int(server.sockets[0].getsockname()[1])
        return self.config.listen_port

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.config.listen_host,
            self.config.listen_port,
            ssl_context=ssl_context(self.config),
            reuse_address=True,
        )
        await site.start()
        log.info(
            "portal listening on %s:%s (%s)",
            self.config.listen_host,
            self.port,
            self.config.base_url,
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

"""The daemon's HTTP listener: mod_xml_curl (from ``reconciler.serve``) plus ``/status`` and
``/metrics``.

``/status`` and ``/metrics`` describe tenants, nodes and errors: with ``--status-auth`` they
need those Basic credentials; without it they answer loopback clients only, so binding the
listener to a public address for FreeSWITCH does not publish them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.serve import Snapshot, Templates, make_app

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    get_snapshot: Callable[[], Snapshot | None],
    templates: Templates,
    metrics: Metrics,
    *,
    xml_curl_auth: tuple[str, str] | None,
    status_auth: tuple[str, str] | None,
    status_payload: Callable[[], dict[str, Any]],
    before_metrics: Callable[[], None],
) -> web.Application:
    app = make_app(get_snapshot, templates, auth=xml_curl_auth, observer=metrics.observe_xmlcurl)
    guard = _guard(status_auth)

    async def status(request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(status_payload(), indent=2), content_type="application/json"
        )

    async def metrics_page(request: web.Request) -> web.Response:
        before_metrics()
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app.router.add_get("/status", guard(status))
    app.router.add_get("/metrics", guard(metrics_page))
    return app


def _guard(credentials: tuple[str, str] | None) -> Callable[[Handler], Handler]:
    expected = f"{credentials[0]}:{credentials[1]}".encode() if credentials else None

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if expected is not None:
                if not basic_auth_matches(request.headers.get("Authorization", ""), expected):
                    return web.Response(
                        status=401,
                        text="unauthorized\n",
                        headers={"WWW-Authenticate": 'Basic realm="pbx-reconciler status"'},
                    )
            elif not _is_loopback(request.remote):
                return web.Response(
                    status=403, text="forbidden: set --status-auth to allow remote clients\n"
                )
            return await handler(request)

        return guarded

    return wrap


def basic_auth_matches(header: str, expected: bytes) -> bool:
    """Basic auth, compared in constant time over the whole ``user:pass``."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner | None, default: int) -> int:
    """The port actually bound (when configured as 0)."""
    if runner is not None:
        for site in runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                return int(server.sockets[0].getsockname()[1])
    return default


def announce(url: str) -> None:
    event(log, "serving xml_curl", url=url)

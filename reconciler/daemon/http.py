"""The daemon's HTTP listener: mod_xml_curl (from ``reconciler.serve``) plus ``/status`` and
``/metrics``.

``/status`` and ``/metrics`` describe tenants, nodes and errors: with ``--status-auth`` they
need those Basic credentials; without it they answer loopback clients only, so binding the
listener to a public address for FreeSWITCH does not publish them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.core.logs import event
from reconciler.daemon.cdr import CDR_PATH
from reconciler.daemon.metrics import Metrics
from reconciler.serve import (
    ListenerLimits,
    PersistStatus,
    Templates,
    basic_auth_matches,
    make_app,
)
from reconciler.serve.snapshot import Lookups
from reconciler.sources.secrets import SecretsSource

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    get_snapshot: Callable[[], Lookups | None],
    templates: Templates,
    metrics: Metrics,
    *,
    xml_curl_auth: tuple[str, str] | None,
    status_auth: tuple[str, str] | None,
    status_payload: Callable[[], dict[str, Any]],
    before_metrics: Callable[[], None],
    limits: ListenerLimits,
    persist_status: Callable[[], PersistStatus | None],
    cdr: Handler | None = None,
) -> web.Application:
    """Serve it with ``serve.start_server`` (timeouts and a connection cap)."""
    app = make_app(
        get_snapshot,
        templates,
        auth=xml_curl_auth,
        observer=metrics.observe_xmlcurl,
        limits=limits,
        persist_status=persist_status,
        gateway_password=SecretsSource().password,
    )
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
    if cdr is not None:  # mod_xml_cdr's posts (daemon.cdr); its own credentials check
        app.router.add_post(CDR_PATH, cdr)
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


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def announce(url: str) -> None:
    event(log, "serving xml_curl", url=url)

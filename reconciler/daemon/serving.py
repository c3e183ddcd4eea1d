"""Where a process answers xml_curl and /status: the listeners of ``pbx run`` and ``pbx serve``.

With ``xml_curl_workers`` > 0 the ``--listen`` socket belongs to the workers
(``daemon.workers``) and this process answers /status, /metrics (and, as a fallback for a
probe, /freeswitch/xml from its own view) on ``--status-listen``; with 0 it answers all of
them on ``--listen``, as before workers existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from reconciler.daemon import http
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.early import EarlyWorkers
from reconciler.daemon.early import start as start_workers
from reconciler.daemon.http import Handler
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.snapshots import ServedSnapshot
from reconciler.daemon.workers import XmlCurlWorkers
from reconciler.serve import ListenerLimits, Templates, bound_port, start_server

log = logging.getLogger(__name__)


class XmlCurlServing:
    def __init__(
        self,
        config: DaemonConfig,
        served: ServedSnapshot,
        templates: Templates,
        metrics: Metrics,
        *,
        status_payload: Callable[[], dict[str, Any]],
        before_metrics: Callable[[], None],
        cdr: Handler | None = None,
        early: EarlyWorkers | None = None,
    ) -> None:
        """``early``: the workers ``pbx run`` started before this process imported the
        control plane (``daemon.early``); adopted, not started again."""
        self._config = config
        self._early = early
        self._cdr = cdr  # mod_xml_cdr's posts: the control plane's listener, never a worker
        self._served = served
        self._templates = templates
        self._metrics = metrics
        self._status_payload = status_payload
        self._before_metrics = before_metrics
        self.limits = ListenerLimits()
        self.serving = asyncio.Event()  # set once the xml_curl listener is bound
        self.workers: XmlCurlWorkers | None = None
        self._runner: web.AppRunner | None = None
        self._worker_port = 0

    @property
    def listen_port(self) -> int:
        """The xml_curl port (the workers' when they own it)."""
        return self._worker_port if self.workers is not None else self.status_port

    @property
    def status_port(self) -> int:
        """Where this process answers /status and /metrics (and, without workers, xml_curl)."""
        bound = bound_port(self._runner) if self._runner is not None else None
        return bound if bound is not None else self._config.listen_port

    async def start(self) -> None:
        """Raises ``ListenerUnavailable`` (a port taken): the caller says so and stops."""
        app = http.build_app(
            self._served.get,
            self._templates,
            self._metrics,
            xml_curl_auth=self._config.xml_curl_auth,
            status_auth=self._config.status_auth,
            status_payload=self._status_payload,
            before_metrics=self._refresh_gauges,
            limits=self.limits,
            persist_status=lambda: self._served.persist_status,
            cdr=self._cdr,
        )
        host, port = self._config.listen_host, self._config.listen_port
        what = "xml_curl listener (--listen / PBX_LISTEN)"
        if self._config.xml_curl_workers > 0 or self._early is not None:
            await self._start_workers()
            host, port = self._config.status_address
            what = "status listener (--status-listen / PBX_STATUS_LISTEN)"
        self._runner = await start_server(app, host, port, self.limits, what=what)
        self.serving.set()
        http.announce(f"http://{self._config.listen_host}:{self.listen_port}/freeswitch/xml")

    async def _start_workers(self) -> None:
        """The data plane in processes of its own, on the --listen socket."""
        config = self._config
        early = self._early
        if early is None:  # the persisted generation was checked by load_persisted
            early = start_workers(config)
            early.tell()
            early.retire_leftovers()
        self._worker_port = early.sock.getsockname()[1]
        self.workers = XmlCurlWorkers(
            early, self._metrics, config.worker_pid_file,
            hang_seconds=config.xml_curl_hang_seconds,
            persist_status=lambda: self._served.persist_status,
        )  # fmt: skip
        self._metrics.worker_counts = self.workers.counts
        self._served.propagate = self.workers.wait_serving
        await self.workers.start()

    def describe_workers(self) -> dict[str, int] | None:
        return self.workers.describe() if self.workers is not None else None

    def _refresh_gauges(self) -> None:
        if self.workers is not None:
            self._metrics.xmlcurl_workers.set(len(self.workers.pids))
        self._before_metrics()

    async def stop(self) -> None:
        """Drain the workers, close the listener (either may not have started)."""
        if self.workers is not None:
            await self.workers.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

"""``pbx run``: watch, reconcile, serve, survive. The composition root of the daemon.

One asyncio loop runs the listeners and every background task; database work runs in worker
threads, ESL is asyncio, so nothing on a request path waits for PostgreSQL or a switch.
Named, guarded tasks: ``database`` (DSN, store, leader election: ``database.py``),
``reconcile`` (``passes.py``), ``watch`` and ``git`` (``reconciler.sources``); the ESL
sessions of every node run inside ``switches.py``, the portal inside ``portal_link.py``. Faults:
PostgreSQL down -> the last snapshot keeps serving and passes retry with backoff; a switch
down -> that node keeps probing on its own; SIGTERM -> the running pass finishes,
connections close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from reconciler.core.backoff import Backoff
from reconciler.core.logs import event, register_secret
from reconciler.core.served import served_tenants
from reconciler.daemon.audio import AudioUpkeep
from reconciler.daemon.cdr import CdrIntake, cdr_handler, run_collector
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.database import DatabaseLink
from reconciler.daemon.early import EarlyWorkers
from reconciler.daemon.leader_rounds import run_leader_rounds
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.passes import PassHooks, PassLoop
from reconciler.daemon.portal_link import PortalLink
from reconciler.daemon.retention import call_retention
from reconciler.daemon.serving import XmlCurlServing
from reconciler.daemon.snapshots import ServedSnapshot
from reconciler.daemon.startup import announce, poll_git, prepare_state_dir
from reconciler.daemon.status import StatusBoard, daemon_status
from reconciler.daemon.switches import SwitchLink
from reconciler.daemon.tasks import TaskSupervisor
from reconciler.daemon.triggers import Triggers
from reconciler.daemon.voicemail_retention import voicemail_retention
from reconciler.reconcile import PassGuards, Reconciler
from reconciler.serve import ListenerUnavailable, load_templates
from reconciler.sources import watch_spec_dir
from reconciler.store import PostgresStore

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: DaemonConfig, *, early: EarlyWorkers | None = None) -> None:
        """``early``: xml_curl workers started before this process imported the control plane
        (``daemon.early``), adopted by the serving side."""
        self.config = config
        self.metrics = Metrics()
        self.templates = load_templates(config.templates_dir)
        self.triggers = Triggers(interval=config.interval)
        self.live = SwitchLink(config.nodes, self.metrics, config.audio_roots)
        self.status = StatusBoard()
        self.database = DatabaseLink(
            config,
            on_ready=self._store_ready,
            on_leadership=self._leadership,
            on_notify=self._notified,
            on_connection=self._connection,
        )
        self.served = ServedSnapshot(
            config.generation_path,
            self.metrics,
            fingerprint=self.database.fingerprint,
            probe=self.database.probe_identity,
            roots=config.audio_roots,
        )
        self.portal = PortalLink(config.portal, self.live, lambda: self.database.dsn)
        if self.portal.server is not None:
            self.metrics.recording_index = self.portal.server.portal.recording_index.stats
        self.audio = AudioUpkeep(config.specs_dir, config.audio_roots, self.metrics)
        self.live.presence.on_answered(self.audio.answered)
        self.loop = PassLoop(
            triggers=self.triggers,
            snapshot=self.served,
            live=self.live,
            status=self.status,
            metrics=self.metrics,
            is_leader=lambda: self.database.is_leader,
            database_up=lambda: self.database.up,
            retry=Backoff(base=config.retry_base, cap=config.retry_cap, floor=config.retry_base),
            hooks=PassHooks(
                leader_done=self._leader_done,
                settled=self._settled,
            ),
        )
        self.loop.settle_seconds = max(0.2, 2 * config.debounce_ms / 1000)
        self.cdr = CdrIntake(
            lambda: self.database.dsn,
            self._tenant_domains,
            config.cdr_quarantine_dir,
            self.metrics,
        )
        self._domains: tuple[object, dict[str, str]] | None = None
        self.http = XmlCurlServing(
            config, self.served, self.templates, self.metrics,
            status_payload=self.status_payload,
            before_metrics=self._refresh_gauges,
            cdr=cdr_handler(self.cdr, config.xml_curl_auth), early=early,
        )  # fmt: skip
        self.serving = self.http.serving  # set once the xml_curl listener is bound
        self.tasks = TaskSupervisor()
        self._stop = asyncio.Event()
        for credentials in (config.xml_curl_auth, config.status_auth):
            register_secret(credentials[1] if credentials else None)

    # -- what tests, probes and the CLI use ---------------------------------------------

    @property
    def reconciler(self) -> Reconciler | None:
        return self.loop.reconciler

    @property
    def is_leader(self) -> bool:
        return self.database.is_leader

    @property
    def database_up(self) -> bool:
        return self.database.up

    @property
    def passes(self) -> int:
        return self.loop.passes

    @property
    def listen_port(self) -> int:
        """The xml_curl port (the workers' when they own it)."""
        return self.http.listen_port

    @property
    def status_port(self) -> int:
        """Where this process answers /status and /metrics (and, without workers, xml_curl)."""
        return self.http.status_port

    def trigger(self, reason: str, *, full: bool = False) -> None:
        self.triggers.request(reason, full=full)

    def request_stop(self) -> None:
        self._stop.set()
        self.triggers.wake()

    async def wait_passes(self, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        await self.loop.wait_passes(count, timeout)

    def status_payload(self) -> dict[str, Any]:
        payload = daemon_status(
            leader=self.is_leader,
            database_up=self.database.up,
            served=self.served,
            board=self.status,
            reconciler=self.loop.reconciler,
            nodes=self.live.status(),
            gateways=self.live.gateway_status(),
        )
        payload["audio"] = self.audio.status()
        payload["call_records"] = self.cdr.status()
        workers = self.http.describe_workers()
        if workers is not None:
            payload["xml_curl_workers"] = workers
        return payload

    def _tenant_domains(self) -> dict[str, str] | None:
        """``{domain: tenant id}`` of the tenants served now, from the applied state,
        recomputed once per served view (a view is swapped whenever that state changes);
        None before the first read of the state (a call record then waits: the switch
        retries, or it stays on disk)."""
        view, reconciler = self.served.get(), self.loop.reconciler
        applied = reconciler.applied.state if reconciler is not None else None
        if view is None or not applied:
            return None
        if self._domains is None or self._domains[0] is not view:
            by_domain = served_tenants(applied).by_domain
            self._domains = (view, {domain: ts.tenant.id for domain, ts in by_domain.items()})
        return self._domains[1]

    def _leader_done(self, reconciler: Reconciler) -> None:
        self.portal.revoke(self.database.store, reconciler)
        self.audio.prune(self.database.store, reconciler)

    def _settled(self) -> None:
        self.portal.follow(self.loop.reconciler, self.status)
        self.audio.after_pass(self.loop.reconciler)

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); returns the exit code."""
        announce(self.config)
        prepare_state_dir(self.config.state_dir)
        await self.served.load_persisted()
        try:
            await self.http.start()
            await self.portal.start()
        except ListenerUnavailable:  # one line for the operator (cli), after closing up
            await self._close_listeners()
            raise
        if self.config.install_signal_handlers:
            self._install_signals()
        await self.live.start()
        self.tasks.spawn(self.database.run(), "database", one_shot=True)
        self.tasks.spawn(self.loop.run(self._stop), "reconcile")
        watch = watch_spec_dir(
            self.config.specs_dir, lambda: self.trigger("files"), self._stop,
            debounce_ms=self.config.debounce_ms,
        )  # fmt: skip
        self.tasks.spawn(watch, "watch")
        if self.config.git_url:
            self.tasks.spawn(poll_git(self.config, self.trigger, self._stop), "git")
        self.cdr.start()  # files what the journal holds from the last run
        if self.config.cdr_spool_dirs:
            collect = run_collector(
                self.cdr, self.config.cdr_spool_dirs, self.config.cdr_collect_interval, self._stop
            )
            self.tasks.spawn(collect, "cdr-spool")
        for task, runner, one_round in (
            ("call-retention", "retention", call_retention(self.metrics)),
            ("voicemail-retention", "voicemail-retention",
             voicemail_retention(self.live.voicemail, self.metrics)),
        ):  # fmt: skip
            rounds = run_leader_rounds(
                runner,
                one_round,
                lambda: self.database.dsn,
                lambda: self.loop.reconciler,
                lambda: self.database.is_leader,
                self.config.retention_interval,
                self._stop,
            )
            self.tasks.spawn(rounds, task)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    async def _close_listeners(self) -> None:
        await self.portal.stop()
        await self.http.stop()

    def _refresh_gauges(self) -> None:
        self.live.refresh_gauges()
        self.metrics.leader.set(1 if self.is_leader else 0)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.trigger("sighup", full=True))

    async def _shutdown(self) -> None:
        event(log, "shutting down")
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.served.close)  # last: after every listener is closed
            stack.push_async_callback(self.database.stop)
            stack.push_async_callback(self.cdr.close)
            stack.push_async_callback(self.portal.stop)
            stack.push_async_callback(self.http.stop)
            stack.push_async_callback(self.live.stop)
            async with self.loop.lock:  # let a running pass finish (tenants are atomic anyway)
                pass
            await self.tasks.cancel_all()
        event(log, "stopped")

    # -- database callbacks -----------------------------------------------------------------

    def _store_ready(self, store: PostgresStore) -> None:
        guards = PassGuards(
            max_orphan_share=self.config.max_orphan_share,
            hold_shrinking=True,
            stable_seconds=self.config.stable_window,
        )
        self.loop.reconciler = Reconciler(self.config.specs_dir, store, guards)

    async def _connection(self, connected: bool) -> None:
        self.metrics.database_up.set(1 if connected else 0)
        if connected:  # maybe another database now; then re-read everything
            await self.served.connected()
            self.trigger("database-connected", full=True)

    async def _leadership(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        if leader:
            self.trigger("leadership", full=True)
        else:
            self.live.forget()

    async def _notified(self, received: frozenset[tuple[str, int]]) -> None:
        tenants = frozenset(tenant for tenant, _pid in received)
        event(log, "apply notification", tenants=",".join(sorted(tenants)))
        self.triggers.notify(tenants)

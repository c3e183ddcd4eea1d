"""``pbx run``: watch, reconcile, serve, survive. The imperative shell around the pure core.

One asyncio loop runs the xml_curl HTTP server and every background task; database work runs
in worker threads, ESL is asyncio, so nothing on the request path ever waits for PostgreSQL
or a switch. Tasks (all named, all guarded):

    http            aiohttp: /freeswitch/xml, /healthz, /readyz, /status, /metrics
    database        connects (embedded pgserver when no DSN), migrates, keeps retrying
    leader-election advisory lock + LISTEN (see ``reconciler.daemon.leader``)
    reconcile       waits for triggers; the leader runs passes, followers refresh
    watch           watchfiles on tenants.d (debounced)
    git             optional: polls a git branch into a local work tree
    live            ESL clients of every node (``reconciler.live.nodes``), reconnecting

Faults: PostgreSQL down -> the last snapshot (in memory, or persisted on disk) keeps serving
and the database task retries with backoff; a switch down -> that node retries on its own;
SIGTERM -> the running pass finishes (tenant transactions are atomic), connections close,
exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs
import psycopg
from aiohttp import web

from reconciler.core.logs import event, register_secret
from reconciler.daemon.leader import LeaderElection
from reconciler.daemon.metrics import Metrics
from reconciler.live import desired_live, managed_domains
from reconciler.live.nodes import LiveReconciler, NodeReport, NodeSpec
from reconciler.reconcile import PassOutcome, Reconciler, SpecsUnavailable
from reconciler.serve import (
    ListenerLimits,
    PersistStatus,
    Snapshot,
    SnapshotNotPersisted,
    Templates,
    build_snapshot,
    load_snapshot,
    load_templates,
    make_app,
    read_snapshot_header,
    save_snapshot,
    start_server,
)
from reconciler.serve.snapshot import declares_users
from reconciler.sources.git import GitSource, GitSourceError
from reconciler.store import StoreError, StoreUnavailable, connect, database_url
from reconciler.store.identity import DatabaseIdentity, dsn_fingerprint, read_database_identity

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.json"


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("pbx-reconciler"))


@dataclass(frozen=True)
class DaemonConfig:
    tenants_dir: Path
    database_url: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    xml_curl_auth: tuple[str, str] | None = None
    nodes: tuple[NodeSpec, ...] = ()
    interval: float = 60.0
    templates_dir: Path | None = None
    state_dir: Path = field(default_factory=default_state_dir)
    git_url: str | None = None
    git_branch: str = "main"
    git_poll: float = 30.0
    debounce_ms: int = 200
    leader_poll: float = 1.0
    install_signal_handlers: bool = True
    embedded_data_dir: Path | None = None


@dataclass
class TenantStatus:
    domain: str = ""
    status: str = ""
    spec_file: str | None = None
    spec_digest: str | None = None
    applied_digest: str | None = None
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    last_error: str | None = None
    last_reconcile: str | None = None
    spec_errors: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.templates: Templates = load_templates(config.templates_dir)
        self.snapshot: Snapshot | None = None
        self.snapshot_built_at: str | None = None
        self._snapshot_from_disk = False
        # the persisted snapshot is bound to one database (serve.persist)
        self._fingerprint = _database_fingerprint(config)
        self._identity: DatabaseIdentity | None = None
        self._disk_identity: DatabaseIdentity | None = None
        self.persist_status = PersistStatus(False, None, "not written yet")
        self.reconciler = Reconciler(self._specs_dir(), host=socket.gethostname())
        self.live = LiveReconciler(config.nodes, on_report=self._observe_node)
        self.tenants: dict[str, TenantStatus] = {}
        self.last_pass: dict[str, Any] = {}
        self.dsn: str | None = None
        self.database_up = False
        self._conn: psycopg.Connection | None = None
        self._own_backend_pid = -1
        self._db_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._full = True
        self._reasons: set[str] = {"startup"}
        self._notified: frozenset[str] = frozenset()
        self._stop = asyncio.Event()
        self.serving = asyncio.Event()  # set once the HTTP server listens
        self._tasks: list[asyncio.Task[Any]] = []
        self._exit = contextlib.ExitStack()
        self._election: LeaderElection | None = None
        self._runner: web.AppRunner | None = None
        self._git: GitSource | None = None
        self.drift_repaired: dict[str, int] = {}
        self.passes = 0
        self._pass_done = asyncio.Condition()
        if config.xml_curl_auth:
            register_secret(config.xml_curl_auth[1])

    # -- public -------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._election is not None and self._election.is_leader

    @property
    def listen_port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._runner is not None:
            for site in self._runner.sites:
                server = getattr(site, "_server", None)
                if server is not None and server.sockets:
                    return int(server.sockets[0].getsockname()[1])
        return self.config.listen_port

    def trigger(self, reason: str, *, full: bool = False) -> None:
        """Ask for a pass (level-triggered: many triggers before a pass make one pass)."""
        self._reasons.add(reason)
        self._full = self._full or full
        self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_passes(self, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until at least ``count`` passes finished (tests and probes)."""
        async with asyncio.timeout(timeout), self._pass_done:
            await self._pass_done.wait_for(lambda: self.passes >= count)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); returns the exit code."""
        self._announce()
        try:
            self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            event(
                log,
                "state dir not usable",
                logging.WARNING,
                path=str(self.config.state_dir),
                error=str(exc),
            )
        await self._load_persisted_snapshot()
        await self._start_http()
        self.serving.set()
        if self.config.install_signal_handlers:
            self._install_signals()
        await self.live.start()
        self._spawn(self._database_task(), "database", one_shot=True)
        self._spawn(self._reconcile_task(), "reconcile")
        self._spawn(self._watch_task(), "watch")
        if self.config.git_url:
            self._spawn(self._git_task(), "git")
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    # -- start-up -------------------------------------------------------------------------

    def _specs_dir(self) -> Path:
        if self.config.git_url:
            tenants = self.config.tenants_dir
            relative = tenants if not tenants.is_absolute() else Path(tenants.name)
            return self.config.state_dir / "git" / relative
        return self.config.tenants_dir

    def _announce(self) -> None:
        c = self.config
        event(
            log,
            "pbx-reconciler starting",
            tenants=str(self._specs_dir()),
            database=(
                "PBX_DATABASE_URL/--database-url"
                if c.database_url
                else f"embedded PostgreSQL (pgserver) in {c.embedded_data_dir or 'the user data dir'}"
            ),
            listen=f"{c.listen_host}:{c.listen_port}",
            xml_curl_auth="on" if c.xml_curl_auth else "off (set --xml-curl-auth)",
            freeswitch=",".join(n.name for n in c.nodes) or "none",
            interval=c.interval,
            git=f"{c.git_branch}@(configured)" if c.git_url else "off",
            state_dir=str(c.state_dir),
        )
        if not c.xml_curl_auth:
            event(log, "xml_curl endpoint has no authentication", logging.WARNING)

    def _snapshot_path(self) -> Path:
        return self.config.state_dir / SNAPSHOT_FILE

    async def _load_persisted_snapshot(self) -> None:
        path = self._snapshot_path()
        if not path.exists():
            return
        # a database that answers says which it is; else the configured DSN must match
        try:
            expected = await asyncio.to_thread(self._probe_identity, 2)
        except StoreUnavailable:
            expected = None
        else:
            if expected is None:
                event(log, "persisted snapshot not used: the database is new", logging.WARNING)
                return
        try:
            snapshot = load_snapshot(
                path, expected_identity=expected, dsn_fingerprint=self._fingerprint, freeze=True
            )
            header = read_snapshot_header(path)
        except Exception as exc:  # a corrupt or foreign file must not stop the daemon
            event(log, "persisted snapshot not used", logging.WARNING, error=str(exc))
            return
        self._disk_identity = header.identity
        self.persist_status = PersistStatus(True, header.written_at, "served from the file")
        self._swap_snapshot(snapshot, source="disk")
        self._snapshot_from_disk = True

    def _probe_identity(self, timeout: int = 5) -> DatabaseIdentity | None:
        """The database's identity; None when it has none (not migrated: not the database a
        file was written for); ``StoreUnavailable`` when it cannot be asked."""
        dsn = self.dsn or self.config.database_url
        if dsn is None:
            raise StoreUnavailable("embedded database not started yet")
        with connect(dsn, connect_timeout=timeout) as conn:
            try:
                return read_database_identity(conn)
            except StoreUnavailable:
                raise
            except StoreError:
                return None

    async def _check_disk_snapshot(self) -> None:
        """On (re)connecting: a snapshot served from disk must be of this database."""
        if not self._snapshot_from_disk or self.dsn is None:
            return
        try:
            identity = await asyncio.to_thread(self._probe_identity)
        except StoreUnavailable:
            return  # cannot tell yet: keep serving
        if identity is None or identity != self._disk_identity:
            self.snapshot = None
            self._snapshot_from_disk = False
            event(log, "persisted snapshot dropped: written for another database", logging.WARNING)

    def _swap_snapshot(self, snapshot: Snapshot, *, source: str) -> None:
        self.snapshot = snapshot  # one reference assignment: requests see old or new, whole
        self.snapshot_built_at = _now()
        counts = snapshot.counts()
        self.metrics.snapshot_generation_time.set(time.time())
        self.metrics.snapshot_users.set(counts["users"])
        event(log, "snapshot swapped", source=source, generation=snapshot.generation, **counts)

    async def _start_http(self) -> None:
        limits = ListenerLimits()
        app = make_app(
            lambda: self.snapshot,
            self.templates,
            auth=self.config.xml_curl_auth,
            observer=self.metrics.observe_xmlcurl,
            limits=limits,
            persist_status=lambda: self.persist_status,
        )
        app.router.add_get("/status", self._status_handler)
        app.router.add_get("/metrics", self._metrics_handler)
        self._runner = await start_server(
            app, self.config.listen_host, self.config.listen_port, limits
        )
        event(
            log,
            "serving xml_curl",
            url=f"http://{self.config.listen_host}:{self.listen_port}/freeswitch/xml",
        )

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.trigger("sighup", full=True))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, one_shot: bool = False) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(lambda t: self._task_done(t, one_shot))
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any], one_shot: bool) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s crashed", task.get_name(), exc_info=exc)
        elif not one_shot:
            event(log, "background task ended unexpectedly", logging.ERROR, task=task.get_name())

    # -- database ---------------------------------------------------------------------------

    async def _database_task(self) -> None:
        """Resolve the DSN (starting pgserver if needed), then run leader election forever."""
        attempt = 0
        while self.dsn is None:
            try:
                self.dsn = await asyncio.to_thread(self._resolve_dsn)
            except StoreError as exc:
                attempt += 1
                delay = min(30.0, 2**attempt)
                event(log, "database unavailable", logging.WARNING, error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
        register_secret(_dsn_password(self.dsn))
        self.reconciler.dsn = self.dsn
        self._election = LeaderElection(
            self.dsn,
            on_leadership=self._on_leadership,
            on_notify=self._on_notify,
            on_connection=self._on_db_connection,
            poll=self.config.leader_poll,
        )
        self._election.start()

    def _resolve_dsn(self) -> str:
        data_dir = self.config.embedded_data_dir
        if data_dir is None and self.config.database_url is None:
            data_dir = self.config.state_dir / "postgres"
        if self.config.database_url is None and hasattr(os, "geteuid") and os.geteuid() == 0:
            event(
                log,
                "embedded PostgreSQL started as root: pgserver runs it as its own user and "
                "opens read access on the parent directories of its data dir; run pbx as an "
                "unprivileged user (the systemd unit does) or set PBX_DATABASE_URL",
                logging.WARNING,
            )
        manager = database_url(self.config.database_url, data_dir=data_dir)
        return self._exit.enter_context(manager)

    async def _on_db_connection(self, connected: bool) -> None:
        self.database_up = connected
        self.metrics.database_up.set(1 if connected else 0)
        self._identity = None  # the database behind the DSN may have changed meanwhile
        if connected:
            await self._check_disk_snapshot()
            # (re)read everything: snapshot for followers, fresh state for the leader
            self.trigger("database-connected", full=True)

    async def _on_leadership(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        if leader:
            self.trigger("leadership", full=True)
        else:
            # a reconnecting switch must not get what we last knew pushed against the new leader
            self.live.clear_desired()

    async def _on_notify(self, received: frozenset[tuple[str, int]]) -> None:
        # our own applies come back too: they are already in memory, skip them
        own = self.reconciler.own_backend_pids | {self._own_backend_pid}
        tenants = frozenset(t for t, pid in received if pid not in own)
        if not tenants:
            return
        event(log, "apply notification", tenants=",".join(sorted(tenants)))
        self._reasons.add("notify")
        self._notified = self._notified | tenants
        self._wake.set()

    def _db(self) -> psycopg.Connection:
        """The worker threads' connection (one pass at a time: guarded by ``_db_lock``)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            assert self.dsn is not None
            self._conn = connect(self.dsn, connect_timeout=5)
            self._own_backend_pid = self._conn.info.backend_pid
        return self._conn

    def _drop_db(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    # -- the reconcile loop -----------------------------------------------------------------

    async def _reconcile_task(self) -> None:
        failures = 0
        while not self._stop.is_set():
            timeout = self._next_wait(failures)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            reasons = self._reasons or {"interval"}
            full = self._full or "interval" in reasons
            notified = self._notified
            self._reasons, self._full, self._notified = set(), False, frozenset()
            if self.dsn is None or not self.database_up:
                continue
            trigger = ",".join(sorted(reasons))
            try:
                if self.is_leader:
                    await self._leader_pass(trigger, full=full, notified=notified)
                else:
                    await self._follower_refresh(full=full, notified=notified)
                failures = 0
            except SpecsUnavailable as exc:
                self._record_pass(trigger, "error", 0.0, error=str(exc))
                event(log, "reconcile pass skipped", logging.ERROR, error=str(exc))
            except StoreError as exc:
                failures += 1
                self._drop_db()
                self._record_pass(trigger, "error", 0.0, error=str(exc))
                event(
                    log, "reconcile pass failed", logging.WARNING, error=str(exc), failures=failures
                )
                self.trigger("retry", full=True)
            except Exception as exc:
                failures += 1
                self._drop_db()
                self._record_pass(trigger, "error", 0.0, error=repr(exc))
                log.exception("reconcile pass crashed")
                self.trigger("retry", full=True)
            async with self._pass_done:
                self.passes += 1
                self._pass_done.notify_all()

    def _next_wait(self, failures: int) -> float:
        if failures:
            return float(min(60.0, 0.5 * 2 ** min(failures, 7)) * random.uniform(0.5, 1.0))
        interval = self.config.interval
        return interval * random.uniform(0.9, 1.1)

    async def _leader_pass(self, trigger: str, *, full: bool, notified: frozenset[str]) -> None:
        refreshed = False
        async with self._db_lock:
            if notified and not full:
                # someone else applied (`pbx apply`, a rotation) or our own NOTIFY came back:
                # only a real difference costs a rebuild
                refreshed = await asyncio.to_thread(
                    lambda: self.reconciler.refresh(self._db(), notified)
                )
            outcome: PassOutcome = await asyncio.to_thread(
                lambda: self.reconciler.run_pass(self._db(), full=full)
            )
        self._after_pass(trigger, outcome)
        if outcome.state_changed or refreshed or self.snapshot is None or self._snapshot_from_disk:
            await self._rebuild_snapshot()
            await self._reconcile_live()
        elif full:
            await self._reconcile_live()  # the periodic drift check of every switch

    async def _follower_refresh(self, *, full: bool, notified: frozenset[str]) -> None:
        async with self._db_lock:
            if full or self.snapshot is None:
                changed = await asyncio.to_thread(lambda: self.reconciler.bootstrap(self._db()))
            elif notified:
                changed = await asyncio.to_thread(
                    lambda: self.reconciler.refresh(self._db(), notified)
                )
            else:
                return
        self._sync_tenant_status_from_registry()
        if changed or self.snapshot is None or self._snapshot_from_disk:
            await self._rebuild_snapshot()

    async def _rebuild_snapshot(self) -> None:
        applied = self.reconciler.applied
        state, hashes = dict(applied.state), dict(applied.a1_hashes)
        generation = f"{int(time.time() * 1000):x}"
        snapshot = await asyncio.to_thread(
            # frozen: kept out of the cyclic GC, whose passes over 100k objects stall the loop
            lambda: build_snapshot(state, hashes, generation=generation, freeze=True)
        )
        self._swap_snapshot(snapshot, source="database")
        self._snapshot_from_disk = False
        for problem in snapshot.problems:
            event(log, "snapshot problem", logging.WARNING, problem=problem)
        await self._persist(snapshot, allow_empty=not declares_users(state))

    async def _persist(self, snapshot: Snapshot, *, allow_empty: bool) -> None:
        if self._identity is None:
            with contextlib.suppress(StoreUnavailable):
                self._identity = await asyncio.to_thread(self._probe_identity)
        identity = self._identity
        try:
            if identity is None:
                raise SnapshotNotPersisted("snapshot not written: database identity unknown")
            self.persist_status = await asyncio.to_thread(
                lambda: save_snapshot(
                    snapshot,
                    self._snapshot_path(),
                    identity=identity,
                    dsn_fingerprint=self._fingerprint,
                    allow_empty=allow_empty,
                )
            )
            self.metrics.snapshot_persisted_time.set(self.persist_status.persisted_at or 0)
        except SnapshotNotPersisted as exc:
            self.persist_status = self.persist_status.failed(str(exc))
            self.metrics.snapshot_persist_failures.inc()
            event(log, "snapshot not persisted", logging.WARNING, error=str(exc))

    async def _reconcile_live(self) -> None:
        if not self.live.nodes:
            return
        state = dict(self.reconciler.applied.state)
        # pure but CPU-heavy at scale (seconds for 1,000 tenants): keep it off the loop
        desired = await asyncio.to_thread(desired_live, state)
        await self.live.reconcile(desired, managed_domains(state))

    def _observe_node(self, report: NodeReport) -> None:
        self.metrics.esl_connected.labels(report.node).set(1 if report.connected else 0)
        if report.repaired:
            self.drift_repaired[report.node] = self.drift_repaired.get(report.node, 0) + len(
                report.repaired
            )
            self.metrics.drift_repairs.labels(report.node).inc(len(report.repaired))
        if report.commands_sent:
            self.metrics.live_commands.labels(report.node).inc(report.commands_sent)

    def _after_pass(self, trigger: str, outcome: PassOutcome) -> None:
        result = "ok" if outcome.ok else ("partial" if outcome.report.applied else "error")
        self.metrics.reconcile_duration.labels("full" if outcome.full else "changed").observe(
            outcome.seconds
        )
        self.metrics.reconcile_total.labels(result).inc()
        for change in outcome.plan.changes:
            if change.tenant not in outcome.report.failed:
                self.metrics.changes_applied.labels(change.kind.value, change.action.verb).inc()
        for tenant_id in outcome.report.failed:
            self.metrics.tenant_apply_failures.labels(tenant_id).inc()
        self.metrics.invalid_tenants.set(len(outcome.invalid))
        self.metrics.spec_errors.set(len(outcome.spec_errors))
        now = _now()
        specs = self.reconciler.last_specs
        self._sync_tenant_status_from_registry()
        for tenant_id in outcome.planned_tenants | set(outcome.invalid):
            status = self.tenants.setdefault(tenant_id, TenantStatus())
            status.last_reconcile = now
            status.spec_errors = [str(e) for e in outcome.invalid.get(tenant_id, ())]
            if tenant_id in outcome.invalid:
                status.last_error = (
                    f"invalid spec ({len(status.spec_errors)} error(s)); left at last applied state"
                )
            elif tenant_id in outcome.report.failed:
                status.last_error = str(outcome.report.failed[tenant_id])
            else:
                status.last_error = None
        if specs is not None:
            for tenant_id, loaded in specs.tenants.items():
                status = self.tenants.setdefault(tenant_id, TenantStatus())
                status.spec_file = loaded.file
                status.spec_digest = loaded.digest
        self._record_pass(
            trigger,
            result,
            outcome.seconds,
            changes=len(outcome.plan.changes),
            revision=str(outcome.revision) if outcome.revision else None,
            full=outcome.full,
        )

    def _sync_tenant_status_from_registry(self) -> None:
        for tenant_id, entry in self.reconciler.applied.registry.items():
            status = self.tenants.setdefault(tenant_id, TenantStatus())
            status.domain = entry.domain
            status.status = entry.status
            status.applied_digest = entry.spec_digest
            status.last_applied_revision = entry.applied_revision
            status.last_attempted_revision = entry.attempted_revision
            if entry.last_error and status.last_error is None:
                status.last_error = entry.last_error

    def _record_pass(self, trigger: str, result: str, seconds: float, **extra: Any) -> None:
        self.last_pass = {
            "trigger": trigger,
            "result": result,
            "seconds": round(seconds, 3),
            "finished_at": _now(),
            **extra,
        }

    # -- triggers -----------------------------------------------------------------------------

    async def _watch_task(self) -> None:
        from watchfiles import awatch

        directory = self._specs_dir()
        while not self._stop.is_set():
            if not directory.is_dir():
                await asyncio.sleep(2.0)
                continue
            try:
                async for _changes in awatch(
                    directory,
                    debounce=self.config.debounce_ms,
                    step=50,
                    stop_event=self._stop,
                    recursive=False,
                ):
                    self.trigger("files")
            except (OSError, RuntimeError) as exc:
                event(log, "file watch failed; retrying", logging.WARNING, error=str(exc))
                await asyncio.sleep(2.0)

    async def _git_task(self) -> None:
        assert self.config.git_url
        self._git = GitSource(
            self.config.git_url, self.config.git_branch, self.config.state_dir / "git"
        )
        while not self._stop.is_set():
            try:
                if await asyncio.to_thread(self._git.sync):
                    self.trigger("git")
            except GitSourceError as exc:
                event(log, "git fetch failed", logging.WARNING, error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.git_poll):
                    await self._stop.wait()

    # -- HTTP: status and metrics -------------------------------------------------------------

    def status_payload(self) -> dict[str, Any]:
        nodes = []
        for node, report in zip(self.live.nodes, self.live.reports(), strict=True):
            entry: dict[str, Any] = {
                "node": node.name,
                "connected": node.connected,
                "last_sync": node.last_sync.isoformat() if node.last_sync else None,
                "drift_repaired": self.drift_repaired.get(node.name, 0),
            }
            if report is not None:
                entry["unmanaged"] = list(report.unmanaged)
                entry["errors"] = list(report.errors)
                entry["last_pass"] = report.to_dict()
            nodes.append(entry)
        snapshot = self.snapshot
        return {
            "role": "leader" if self.is_leader else "follower",
            "ready": snapshot is not None,
            "database_up": self.database_up,
            "snapshot": (
                {
                    "generation": snapshot.generation,
                    "built_at": self.snapshot_built_at,
                    **snapshot.counts(),
                }
                if snapshot
                else None
            ),
            "last_pass": self.last_pass,
            "tenants": {t: vars(s) for t, s in sorted(self.tenants.items())},
            "nodes": nodes,
        }

    async def _status_handler(self, request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.status_payload(), indent=2), content_type="application/json"
        )

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        for node in self.live.nodes:
            self.metrics.esl_connected.labels(node.name).set(1 if node.connected else 0)
        self.metrics.leader.set(1 if self.is_leader else 0)
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    # -- shutdown -----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        event(log, "shutting down")
        self._wake.set()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._close_db)
            stack.push_async_callback(self._stop_http)
            stack.push_async_callback(self.live.stop)
            if self._election is not None:
                stack.push_async_callback(self._election.stop)
            # let a running pass finish (tenant transactions are atomic either way)
            async with self._db_lock:
                pass
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        event(log, "stopped")

    async def _stop_http(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _close_db(self) -> None:
        await asyncio.to_thread(self._drop_db)
        await asyncio.to_thread(self._exit.close)


def _database_fingerprint(config: DaemonConfig) -> str:
    """Names the configured database for a start without it: the DSN's fingerprint, or the
    embedded server's data directory."""
    if config.database_url is None:
        data_dir = config.embedded_data_dir or config.state_dir / "postgres"
        return f"embedded:{data_dir.resolve()}"
    try:
        return dsn_fingerprint(config.database_url)
    except ValueError:
        return "unparseable DSN"


def _dsn_password(dsn: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except psycopg.ProgrammingError:
        return None


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: about 10% less CPU per xml_curl request (bench/bench_xmlcurl.py)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_daemon(
    config: DaemonConfig, *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> int:
    """Entry point of ``pbx run``."""
    os.umask(0o077)  # the snapshot and the embedded database hold a1 hashes and passwords
    daemon = Daemon(config)
    if loop_factory is None:
        loop_factory = _fast_loop_factory()
    if loop_factory is None:
        return asyncio.run(daemon.run())
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(daemon.run())

"""``pbx serve``: the data plane alone, for a host beside a FreeSWITCH node.

It reads the *applied* state from the same PostgreSQL as the control plane (read-only
sessions), builds the snapshot generation from it at start and whenever an apply is
notified (``LISTEN`` on the store's channel, as a follower daemon learns of them), and serves
xml_curl from N workers on ``--listen`` with /status, /metrics and /readyz on
``--status-listen``. No pass, no spec files, no event socket, no portal, no leader lock: it
never writes to the database.

Faults: PostgreSQL down -> the last good generation keeps serving (from the state dir at
start, bound to the database's identity, or from the DSN's fingerprint while the database
cannot be asked); a reconnection re-reads everything (notifications sent while it was away
are lost). Another database behind the same DSN -> the persisted generation is dropped and
the workers fail closed until the new database's applied state is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from reconciler.core.backoff import Backoff
from reconciler.core.logs import event, register_secret
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.database import DatabaseLink
from reconciler.daemon.early import EarlyWorkers
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.serving import XmlCurlServing
from reconciler.daemon.snapshots import ServedSnapshot
from reconciler.daemon.startup import prepare_state_dir
from reconciler.daemon.tasks import TaskSupervisor
from reconciler.reconcile import AppliedState
from reconciler.serve import ListenerUnavailable, load_templates
from reconciler.store import PostgresStore, StoreError

log = logging.getLogger(__name__)


class ServeNode:
    def __init__(self, config: DaemonConfig, *, early: EarlyWorkers | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.database = DatabaseLink(
            config,
            on_ready=self._store_ready,
            on_leadership=_never_leads,
            on_notify=self._notified,
            on_connection=self._connection,
            campaign=False,
        )
        self.served = ServedSnapshot(
            config.generation_path,
            self.metrics,
            fingerprint=self.database.fingerprint,
            probe=self.database.probe_identity,
        )
        self.http = XmlCurlServing(
            config, self.served, load_templates(config.templates_dir), self.metrics,
            status_payload=self.status_payload,
            before_metrics=lambda: None, early=early,
        )  # fmt: skip
        self.applied = AppliedState()
        self.refreshes = 0
        self.last_refresh: dict[str, Any] = {}
        self._store: PostgresStore | None = None
        self._pending: set[str] | None = set()  # tenants to re-read; None: all of them
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.tasks = TaskSupervisor()
        register_secret(config.xml_curl_auth[1] if config.xml_curl_auth else None)
        register_secret(config.status_auth[1] if config.status_auth else None)

    def status_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "role": "data plane",
            "ready": self.served.current is not None,
            "database_up": self.database.up,
            "snapshot": self.served.describe(),
            "last_refresh": self.last_refresh,
        }
        workers = self.http.describe_workers()
        if workers is not None:
            payload["xml_curl_workers"] = workers
        return payload

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); returns the exit code."""
        event(log, "pbx serve starting", listen=f"{self.config.listen_host}:"
              f"{self.config.listen_port}", state_dir=str(self.config.state_dir))  # fmt: skip
        prepare_state_dir(self.config.state_dir)
        await self.served.load_persisted()
        try:
            await self.http.start()
        except ListenerUnavailable:
            await self.http.stop()
            raise
        if self.config.install_signal_handlers:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop)
        self.tasks.spawn(self.database.run(), "database", one_shot=True)
        self.tasks.spawn(self._refresh_loop(), "refresh")
        try:
            await self._stop.wait()
        finally:
            event(log, "shutting down")
            await self.http.stop()
            await self.database.stop()
            await self.tasks.cancel_all()
            self.served.close()
        return 0

    # -- database callbacks -----------------------------------------------------------------

    def _store_ready(self, store: PostgresStore) -> None:
        self._store = store
        self._request(None)

    async def _connection(self, connected: bool) -> None:
        self.metrics.database_up.set(1 if connected else 0)
        if connected:  # maybe another database now; notifications may have been missed
            await self.served.connected()
            self._request(None)

    async def _notified(self, received: frozenset[tuple[str, int]]) -> None:
        self._request({tenant for tenant, _pid in received})

    def _request(self, tenants: set[str] | None) -> None:
        if tenants is None or self._pending is None:
            self._pending = None
        else:
            self._pending |= tenants
        self._wake.set()

    # -- the one activity: re-read what was applied, serve it ------------------------------

    async def _refresh_loop(self) -> None:
        backoff = Backoff(base=0.5, cap=30.0, floor=0.5)
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._stop.is_set() or self._store is None:
                continue
            pending, self._pending = self._pending, set()
            try:
                await self._refresh(self._store, pending)
            except Exception as exc:  # down, not migrated yet, a bug: keep the last good
                if not isinstance(exc, StoreError):
                    log.exception("refresh failed unexpectedly")
                self._request(None if pending is None else pending)
                delay = backoff.next_delay()
                event(log, "applied state not read: serving the last generation",
                      logging.WARNING, error=str(exc), retry_in=delay)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            else:
                backoff.reset()

    async def _refresh(self, store: PostgresStore, pending: set[str] | None) -> None:
        started = time.monotonic()
        tenants = None if pending is None else frozenset(pending)
        changed = await asyncio.to_thread(self.applied.replace_tenants, store, tenants)
        if changed or self.served.stale:
            await self.served.rebuild(self.applied)
        self.refreshes += 1
        self.last_refresh = {
            "tenants": "all" if tenants is None else len(tenants),
            "changed": changed,
            "seconds": round(time.monotonic() - started, 3),
        }


async def _never_leads(leader: bool) -> None:
    """``pbx serve`` never campaigns for the apply lock."""

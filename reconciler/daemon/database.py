"""The daemon's database: which one (the embedded server when no DSN is configured), kept
retried with backoff; the store over it; leader election on a dedicated connection; which
database it is (the persisted snapshot is bound to it); and telling this daemon's own apply
notifications from other writers'."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from reconciler.core.backoff import Backoff
from reconciler.core.identity import DatabaseIdentity
from reconciler.core.logs import event, register_secret
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.early import database_fingerprint
from reconciler.daemon.leader import LeaderElection, OnLeadership, OnNotify
from reconciler.store import PostgresStore, StoreError, StoreUnavailable, database_url
from reconciler.store.database import dsn_password
from reconciler.store.identity import probe_identity

log = logging.getLogger(__name__)


class DatabaseLink:
    def __init__(
        self,
        config: DaemonConfig,
        *,
        on_ready: Callable[[PostgresStore], None],
        on_leadership: OnLeadership,
        on_notify: OnNotify,
        on_connection: Callable[[bool], Awaitable[None]],
        campaign: bool = True,
    ) -> None:
        """``campaign=False`` (``pbx serve``): listen to applies, never take the lock."""
        self._config = config
        self._campaign = campaign
        self._on_ready = on_ready
        self._on_leadership = on_leadership
        self._on_notify = on_notify
        self._on_connection = on_connection
        self._exit = contextlib.ExitStack()
        self.dsn: str | None = None
        self.store: PostgresStore | None = None
        self.up = False
        self.election: LeaderElection | None = None
        self.fingerprint = database_fingerprint(config)

    @property
    def is_leader(self) -> bool:
        return self.election is not None and self.election.is_leader

    async def run(self) -> None:
        """Resolve the DSN (starting pgserver if needed) with backoff, then elect forever."""
        backoff = Backoff(base=1.0, cap=30.0, floor=0.5)
        while self.dsn is None:
            try:
                self.dsn = await asyncio.to_thread(self._resolve)
            except StoreError as exc:
                delay = backoff.next_delay()
                event(log, "database unavailable", logging.WARNING, error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
        register_secret(dsn_password(self.dsn))
        self.store = PostgresStore(
            self.dsn,
            host=socket.gethostname(),
            credentials_grace=timedelta(seconds=self._config.credentials_grace),
        )
        self._on_ready(self.store)
        self.election = LeaderElection(
            self.dsn,
            on_leadership=self._on_leadership,
            on_notify=self._notified,
            on_connection=self._connection_changed,
            poll=self._config.leader_poll,
            campaign=self._campaign,
        )
        self.election.start()

    def probe_identity(self, timeout: float) -> DatabaseIdentity | None:
        """The configured database's identity (``store.identity.probe_identity``)."""
        dsn = self.dsn or self._config.database_url
        if dsn is None:
            raise StoreUnavailable("embedded database not started yet")
        return probe_identity(dsn, timeout)

    async def _notified(self, received: frozenset[tuple[str, int]]) -> None:
        """Our own applies come back too (same backend pids): already in memory, skipped."""
        own = self.store.own_backend_pids if self.store is not None else frozenset()
        mine = frozenset(pair for pair in received if pair[1] in own)
        if received - mine:
            await self._on_notify(received - mine)

    async def _connection_changed(self, connected: bool) -> None:
        self.up = connected
        await self._on_connection(connected)

    def _resolve(self) -> str:
        config = self._config
        data_dir = config.embedded_data_dir
        if config.database_url is None:
            data_dir = data_dir or config.state_dir / "postgres"
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                event(
                    log,
                    "embedded PostgreSQL started as root: pgserver runs it as its own user and "
                    "opens read access on the parent directories of its data dir; run pbx as "
                    "an unprivileged user (the systemd unit does) or set PBX_DATABASE_URL",
                    logging.WARNING,
                )
        return self._exit.enter_context(database_url(config.database_url, data_dir=data_dir))

    async def stop(self) -> None:
        if self.election is not None:
            await self.election.stop()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
        await asyncio.to_thread(self._exit.close)

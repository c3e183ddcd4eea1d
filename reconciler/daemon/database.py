"""The daemon's database: which one (the embedded server when no DSN is configured), kept
retried with backoff, then leader election on a dedicated connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import psycopg

from reconciler.core.backoff import Backoff
from reconciler.core.logs import event, register_secret
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.leader import LeaderElection, OnLeadership, OnNotify
from reconciler.store import StoreError, database_url

log = logging.getLogger(__name__)


class DatabaseLink:
    def __init__(
        self,
        config: DaemonConfig,
        *,
        on_ready: Callable[[str], None],
        on_leadership: OnLeadership,
        on_notify: OnNotify,
        on_connection: Callable[[bool], Awaitable[None]],
    ) -> None:
        self._config = config
        self._on_ready = on_ready
        self._on_leadership = on_leadership
        self._on_notify = on_notify
        self._on_connection = on_connection
        self._exit = contextlib.ExitStack()
        self.dsn: str | None = None
        self.up = False
        self.election: LeaderElection | None = None

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
        self._on_ready(self.dsn)
        self.election = LeaderElection(
            self.dsn,
            on_leadership=self._on_leadership,
            on_notify=self._on_notify,
            on_connection=self._connection_changed,
            poll=self._config.leader_poll,
        )
        self.election.start()

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
        await asyncio.to_thread(self._exit.close)


def dsn_password(dsn: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except psycopg.ProgrammingError:
        return None

"""Who applies: a PostgreSQL session advisory lock held on one dedicated connection.

Several daemons may share a database. Each keeps one connection that (a) tries to take the
leader lock every ``poll`` seconds while it is a follower, (b) checks the connection while it
is the leader (the lock dies with the session, so a lost connection means lost leadership),
and (c) LISTENs to the store's apply notifications so followers refresh their snapshot.
A leader that dies or loses its connection frees the lock; a follower takes it within
``poll`` seconds.

A leader that is alive but stuck (SIGSTOP, a frozen VM) keeps its TCP session, and with it
the lock, forever. So the session holds a lease: ``idle_session_timeout`` (PostgreSQL 14+)
makes the server end it after ``lease`` seconds without a statement, while a healthy leader
runs one every ``poll`` seconds. A stuck leader is replaced ``lease + poll`` seconds later;
once resumed it finds its session gone, so it is no longer the leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

import psycopg
from psycopg import sql

from reconciler.core.backoff import Backoff
from reconciler.core.logs import event
from reconciler.store import APPLIED_CHANNEL

log = logging.getLogger(__name__)

# pg_advisory_lock key space is shared by the whole database: a fixed, documented key.
LEADER_LOCK_KEY = 0x7062_785F_6C65_6164  # "pbx_lead"

OnLeadership = Callable[[bool], Awaitable[None]]
OnNotify = Callable[[frozenset[tuple[str, int]]], Awaitable[None]]
"""Receives ``(tenant id, backend pid of the notifying session)`` pairs: the pid tells a
daemon its own applies from everyone else's."""
OnConnection = Callable[[bool], Awaitable[None]]


class LeaderElection:
    """Background task; ``is_leader`` is only True while the lock is provably held."""

    def __init__(
        self,
        dsn: str,
        *,
        on_leadership: OnLeadership,
        on_notify: OnNotify,
        on_connection: OnConnection | None = None,
        poll: float = 1.0,
        lease: float | None = None,
        backoff_cap: float = 15.0,
        campaign: bool = True,
    ) -> None:
        self._dsn = dsn
        self._on_leadership = on_leadership
        self._on_notify = on_notify
        self._on_connection = on_connection
        self._poll = poll
        self._lease = lease if lease is not None else max(5.0, 5 * poll)
        self._backoff_cap = backoff_cap
        self._campaign = campaign
        self.is_leader = False
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self._close()
        if self.is_leader:
            self.is_leader = False
            await self._on_leadership(False)

    async def _close(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def _take_lease(self, conn: psycopg.AsyncConnection) -> None:
        try:
            await conn.execute(
                sql.SQL("SET idle_session_timeout = {}").format(
                    sql.Literal(f"{int(self._lease * 1000)}ms")
                )
            )
        except psycopg.errors.UndefinedObject:  # before PostgreSQL 14: no stuck-leader lease
            event(log, "leader lease unavailable (PostgreSQL < 14)", logging.WARNING)

    async def _run(self) -> None:
        backoff = Backoff(base=0.5, cap=self._backoff_cap, floor=0.25)
        while True:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, application_name="pbx-reconciler-leader"
                )
                await self._conn.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(APPLIED_CHANNEL))
                )
                await self._take_lease(self._conn)
                backoff.reset()
                await self._set_connected(True)
                await self._session(self._conn)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                event(log, "leader connection lost", logging.WARNING, error=str(exc).strip())
            except Exception:
                log.exception("leader election failed unexpectedly")
            await self._close()
            await self._set_connected(False)
            if self.is_leader:
                self.is_leader = False
                event(log, "leadership lost", logging.WARNING)
                await self._on_leadership(False)
            await asyncio.sleep(backoff.next_delay())

    async def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            if self._on_connection is not None:
                await self._on_connection(connected)

    async def _session(self, conn: psycopg.AsyncConnection) -> None:
        while True:
            if not self.is_leader and self._campaign:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,))
                row = await cur.fetchone()
                if row and row[0]:
                    self.is_leader = True
                    event(log, "leadership acquired")
                    await self._on_leadership(True)
            else:
                await conn.execute("SELECT 1")  # a dead session must be noticed within poll
            received: set[tuple[str, int]] = set()
            async for notify in conn.notifies(timeout=self._poll):
                received.add((notify.payload, notify.pid))
            if received:
                await self._on_notify(frozenset(received))

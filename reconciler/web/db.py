"""The portal's database gateway: a small pool of synchronous connections used from a
dedicated thread pool, so store calls never block the event loop and never compete with
the daemon's own worker threads (a reconcile pass can hold one for seconds).

The pool opens on first use, once the daemon knows its DSN; until then, and whenever the
database is unreachable, callers get ``Unavailable`` (503) instead of a hang.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from reconciler.store import StoreUnavailable
from reconciler.store.database import APPLICATION_NAME
from reconciler.store.portal import record_audit
from reconciler.web.errors import Unavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class PortalDb:
    def __init__(self, dsn: Callable[[], str | None], *, size: int = 4) -> None:
        self._dsn = dsn
        self._size = size
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="pbx-portal-db")

    def _connection_pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                dsn = self._dsn()
                if dsn is None:
                    raise Unavailable()
                self._pool = ConnectionPool(
                    dsn,
                    min_size=1,
                    max_size=self._size,
                    timeout=5.0,
                    kwargs={"autocommit": True, "application_name": f"{APPLICATION_NAME}-portal"},
                    open=True,
                )
            return self._pool

    def _call(
        self, fn: Callable[Concatenate[psycopg.Connection, P], R], *a: P.args, **kw: P.kwargs
    ) -> R:
        try:
            with self._connection_pool().connection() as conn:
                return fn(conn, *a, **kw)
        except (PoolTimeout, StoreUnavailable, psycopg.OperationalError) as exc:
            raise Unavailable() from exc

    async def run(
        self, fn: Callable[Concatenate[psycopg.Connection, P], R], *a: P.args, **kw: P.kwargs
    ) -> R:
        """``fn(conn, *a, **kw)`` on a pooled connection, in the portal's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._call, fn, *a, **kw))

    async def audit(
        self,
        actor: str | None,
        action: str,
        result: str,
        *,
        tenant_id: str | None = None,
        target: str | None = None,
        client_addr: str | None = None,
        detail: str | None = None,
        tenant_ids: Sequence[str] = (),
    ) -> None:
        """One audit row; an audit that cannot be written fails the request (no silent gap).
        ``tenant_ids``: every tenant of the person concerned (their admins all see it)."""
        await self.run(
            record_audit,
            actor=actor,
            action=action,
            result=result,
            tenant_id=tenant_id,
            target=target,
            client_addr=client_addr,
            detail=detail,
            tenant_ids=tenant_ids,
        )

    async def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

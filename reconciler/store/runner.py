"""``ConnectionRunner``: store functions run on pooled connections in threads of their own, for
callers on an event loop (the portal) that must never block it nor hold psycopg themselves.

The store owns psycopg: a caller names ``Connection`` in the signatures of its synchronous
store-side functions and hands them to ``run``; every way the database can be unreachable
(no DSN yet, a pool timeout, a lost connection) comes back as ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from reconciler.store.database import APPLICATION_NAME
from reconciler.store.errors import StoreUnavailable

Connection: TypeAlias = psycopg.Connection[Any]
"""What every store function takes first (an autocommit connection)."""

P = ParamSpec("P")
R = TypeVar("R")


class ConnectionRunner:
    """A lazily opened pool of ``size`` autocommit connections and as many threads.

    ``dsn`` is called on first use: None (the database is not resolved yet) raises
    ``StoreUnavailable``, and so does an unreachable database, instead of a hang."""

    def __init__(self, dsn: Callable[[], str | None], *, size: int, name: str) -> None:
        self._dsn = dsn
        self._size = size
        self._name = name
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(size, thread_name_prefix=f"pbx-{name}-db")

    def _connection_pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                dsn = self._dsn()
                if dsn is None:
                    raise StoreUnavailable("the database is not resolved yet")
                self._pool = ConnectionPool(
                    dsn,
                    min_size=1,
                    max_size=self._size,
                    timeout=5.0,
                    kwargs={
                        "autocommit": True,
                        "application_name": f"{APPLICATION_NAME}-{self._name}",
                    },
                    open=True,
                )
            return self._pool

    def _call(self, fn: Callable[Concatenate[Connection, P], R], *a: P.args, **kw: P.kwargs) -> R:
        try:
            with self._connection_pool().connection() as conn:
                return fn(conn, *a, **kw)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable("database unavailable") from exc

    async def run(
        self, fn: Callable[Concatenate[Connection, P], R], *a: P.args, **kw: P.kwargs
    ) -> R:
        """``fn(conn, *a, **kw)`` on a pooled connection, in the runner's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._call, fn, *a, **kw))

    async def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

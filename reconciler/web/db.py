"""The portal's database gateway: the store's ``ConnectionRunner`` (a small pool of
synchronous connections used from a dedicated thread pool), so store calls never block the
event loop and never compete with the daemon's own worker threads (a reconcile pass can hold
one for seconds). The portal imports no psycopg: the store owns it.

The pool opens on first use, once the daemon knows its DSN; until then, and whenever the
database is unreachable, callers get ``Unavailable`` (503) instead of a hang.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from reconciler.store import StoreUnavailable
from reconciler.store.accounts import record_audit
from reconciler.store.runner import Connection, ConnectionRunner
from reconciler.web.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")


class PortalDb:
    def __init__(self, dsn: Callable[[], str | None], *, size: int = 4) -> None:
        self._runner = ConnectionRunner(dsn, size=size, name="portal")

    async def run(
        self, fn: Callable[Concatenate[Connection, P], R], *a: P.args, **kw: P.kwargs
    ) -> R:
        """``fn(conn, *a, **kw)`` on a pooled connection, in the portal's threads; an
        unreachable database (or none resolved yet) answers 503."""
        try:
            return await self._runner.run(fn, *a, **kw)
        except StoreUnavailable as exc:
            raise Unavailable() from exc

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
        await self._runner.close()

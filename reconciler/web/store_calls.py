"""The three store operations of ``PortalDeps`` over the real store, ready for the daemon
to delegate to: synchronous store functions run in a small pool of the portal's own
threads and connections (never on the event loop, never on the daemon's pass connection).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from reconciler.store import (
    HistoryEntry,
    SipCredentials,
    read_history,
    rotate_credentials,
    rotate_pin,
    show_credentials,
    show_pin,
)
from reconciler.web.db import PortalDb


class StoreCalls:
    """``history``/``show_credentials``/``rotate_credentials`` as ``PortalDeps`` wants them.

    ``dsn`` is called on first use (None until the daemon resolved its database: callers
    then get ``errors.Unavailable``). Call ``close`` on shutdown."""

    def __init__(self, dsn: Callable[[], str | None], *, host: str | None = None) -> None:
        self._db = PortalDb(dsn, size=2)
        self._host = host or socket.gethostname()

    async def history(self, tenant_id: str | None, limit: int) -> Sequence[HistoryEntry]:
        return await self._db.run(read_history, tenant_id=tenant_id, limit=limit)

    async def show_credentials(self, tenant_id: str, extension: str) -> SipCredentials:
        return await self._db.run(show_credentials, tenant_id, extension)

    async def rotate_credentials(self, tenant_id: str, extension: str) -> None:
        await self._db.run(rotate_credentials, tenant_id, extension, host=self._host)

    async def show_pin(self, tenant_id: str, extension: str) -> str:
        return await self._db.run(show_pin, tenant_id, extension)

    async def rotate_pin(self, tenant_id: str, extension: str) -> None:
        await self._db.run(rotate_pin, tenant_id, extension, host=self._host)

    async def close(self) -> None:
        await self._db.close()

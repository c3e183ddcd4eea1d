"""The portal served for real on 127.0.0.1 from a background thread (its own event loop), for
clients that are not asyncio: schemathesis (requests) and Playwright's browser."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from reconciler.store import connect, migrate
from reconciler.store.accounts import create_api_token
from reconciler.web import PortalConfig, PortalServer
from reconciler.web.tokens import new_api_token, token_digest
from tests.conftest import fresh_database
from tests.fakes.portal import FakePortalDeps
from tests.web.support import make_account

T = TypeVar("T")


@contextmanager
def scratch_database(server_dsn: str) -> Iterator[str]:
    """A migrated database for a whole module (a live server outlives one test)."""
    with fresh_database(server_dsn, "pbx_web") as dsn:
        with connect(dsn) as conn:
            migrate(conn)
        yield dsn


class LivePortal:
    def __init__(
        self, deps: FakePortalDeps, ports: dict[Any, object] | None = None, **config: Any
    ) -> None:
        self.deps = deps
        self.ports = ports
        self.loop = asyncio.new_event_loop()
        self.config = PortalConfig(listen_port=0, public_url="http://127.0.0.1", **config)
        self.server: PortalServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start_loop(self) -> None:
        """The loop alone (idempotent): what must run on it before the server (a fake
        switch and its engine, for a port) is started with ``call`` first."""
        if not self._thread.is_alive():
            self._thread.start()

    def start(self) -> None:
        self.start_loop()
        self.server = PortalServer(self.deps, self.config, self.ports)
        self.call(self.server.start())

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run_in_loop(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.call(wrapper())  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def account(self, email: str) -> str | None:
        assert self.deps.dsn is not None
        return make_account(self.deps.dsn, self.deps, email)

    def api_token(self, email: str) -> str:
        assert self.deps.dsn is not None
        token = new_api_token()
        with connect(self.deps.dsn) as conn:
            create_api_token(conn, token_hash=token_digest(token), email=email, name="test")
        return token

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@contextmanager
def live_portal(dsn: str, **config: Any) -> Iterator[LivePortal]:
    portal = LivePortal(FakePortalDeps(dsn=dsn), **config)
    portal.start()
    try:
        yield portal
    finally:
        portal.stop()

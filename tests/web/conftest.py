"""Fixtures of the portal tests: a migrated database of its own, the fake daemon, and an
aiohttp test client of ``make_portal_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.store import connect, migrate
from reconciler.web import PortalConfig, make_portal_app
from tests.fakes.portal import FakePortalDeps


@pytest.fixture
def portal_dsn(pg_dsn: str) -> str:
    with connect(pg_dsn) as conn:
        migrate(conn)
    return pg_dsn


@pytest.fixture
def deps(portal_dsn: str) -> FakePortalDeps:
    return FakePortalDeps(dsn=portal_dsn)


@pytest.fixture
def config() -> PortalConfig:
    return PortalConfig(public_url="http://portal.test", sse_heartbeat=0.5)


@pytest.fixture
async def client(deps: FakePortalDeps, config: PortalConfig) -> AsyncIterator[TestClient]:
    app = make_portal_app(deps, config)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client

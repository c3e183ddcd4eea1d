"""Fixtures of the portal tests: a migrated database of its own, the fake daemon, an
aiohttp test client of ``make_portal_app``, and for browser tests a Chromium per module and
a desktop page per test (a module needing other page options overrides ``page`` with
``desktop_page``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.sync_api import Browser, Page, sync_playwright

from reconciler.store import connect, migrate
from reconciler.web import PortalConfig, make_portal_app
from tests.fakes.portal import FakePortalDeps
from tests.web.browser import desktop_page, launch


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with desktop_page(browser) as opened:
        yield opened

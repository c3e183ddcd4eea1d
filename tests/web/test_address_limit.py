"""The per-address budget of unauthenticated requests: a flood of bogus credentials from one
address is answered 429 without a database round trip; people who are logged in do not
spend it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import PortalConfig, RateLimit, make_portal_app
from reconciler.web.addresslimit import (
    ADDRESS_BUDGET,
    MAX_ADDRESSES,
    AddressBudget,
    address_key,
)
from reconciler.web.server import portal_of_app
from tests.fakes.portal import FakePortalDeps
from tests.web.support import make_account

BOB = "bob@acme.example.com"
BUDGET = 5


class CountingDb:
    """Every round trip the portal makes to PostgreSQL, counted."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self.calls = 0

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self._run(fn, *args, **kwargs)


@pytest.fixture
async def counted(deps: FakePortalDeps) -> AsyncIterator[tuple[TestClient, CountingDb]]:
    config = PortalConfig(
        public_url="http://portal.test",
        unauthenticated_per_address=RateLimit(attempts=BUDGET, window=60.0),
    )
    app = make_portal_app(deps, config)
    app[ADDRESS_BUDGET].refusal_delay = 0.0
    portal = portal_of_app(app)
    counter = CountingDb(portal.db.run)
    portal.db.run = counter.run  # type: ignore[method-assign]
    async with TestClient(TestServer(app)) as client:
        yield client, counter


async def test_a_flood_of_bogus_bearer_tokens_is_refused_without_a_lookup(
    counted: tuple[TestClient, CountingDb],
) -> None:
    client, db = counted
    statuses = []
    for n in range(40):
        response = await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer pbxp_bogus{n:040d}"}
        )
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "rate_limited"
    assert statuses == [401] * BUDGET + [429] * (40 - BUDGET)
    assert db.calls == BUDGET  # one lookup per token until the budget was spent, then none


async def test_bogus_session_cookies_spend_the_same_budget(
    counted: tuple[TestClient, CountingDb],
) -> None:
    client, db = counted
    statuses = []
    for n in range(20):
        client.session.cookie_jar.update_cookies({"pbx_session": f"bogus{n}"})
        statuses.append((await client.get("/account", allow_redirects=False)).status)
    assert statuses.count(429) == 20 - BUDGET
    assert db.calls <= BUDGET


async def test_pages_fetched_without_a_credential_do_not_spend_the_budget(
    counted: tuple[TestClient, CountingDb],
) -> None:
    """An office behind one NAT address opening the login page at shift start."""
    client, _db = counted
    for _ in range(4 * BUDGET):
        assert (await client.get("/login")).status == 200
        client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer bogus"})).status == 401


async def test_people_logged_in_do_not_spend_the_budget(
    counted: tuple[TestClient, CountingDb], deps: FakePortalDeps, portal_dsn: str
) -> None:
    client, _db = counted
    make_account(portal_dsn, deps, BOB)
    page = await client.get("/login")
    csrf = (await page.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf, "email": BOB, "password": "correct horse battery staple", "code": ""}
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 303
    for _ in range(4 * BUDGET):
        assert (await client.get("/api/v1/me")).status == 200


def test_the_budget_refills_and_refunds() -> None:
    now = [0.0]
    budget = AddressBudget(RateLimit(attempts=2, window=10.0), clock=lambda: now[0])
    assert budget.take("198.51.100.7") is None
    assert budget.take("198.51.100.7") is None
    retry = budget.take("198.51.100.7")
    assert retry is not None and 0 < retry <= 5.0
    assert budget.take("198.51.100.8") is None  # another address has its own
    now[0] = 5.0  # one token back
    assert budget.take("198.51.100.7") is None
    assert budget.take("198.51.100.7") is not None
    budget.refund("198.51.100.7")  # that one was authenticated after all
    assert budget.take("198.51.100.7") is None


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("unknown") == "unknown"


def test_distinct_addresses_do_not_grow_memory_without_bound() -> None:
    budget = AddressBudget(RateLimit(attempts=1, window=60.0), clock=lambda: 0.0)
    for n in range(MAX_ADDRESSES + 50):
        budget.take(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}-{n}")
    assert len(budget._buckets) <= MAX_ADDRESSES

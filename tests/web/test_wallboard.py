"""The queue wallboard: callers waiting, agents by state, today's figures; for the tenant's
admins and the agents of that queue only (404 to anyone else, and for another tenant)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from tests.fakes.portal import FakePortalDeps
from tests.web.support import login, make_account

ALICE, BOB, CAROL, GINA = (
    "alice@acme.example.com",  # admin
    "bob@acme.example.com",  # agent bob (support) and bob2 (sales)
    "carol@acme.example.com",  # member
    "gina@globex.example.com",  # globex's admin
)
DOMAIN = "acme.example.com"
API = "/api/v1/tenants/acme/queues/{}/wallboard"


async def _as(client: TestClient, deps: FakePortalDeps, dsn: str, email: str) -> None:
    await login(client, email, secret=make_account(dsn, deps, email), dsn=dsn)


async def test_the_board_counts_waiting_agents_and_today(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    presence = deps.presence
    presence.agent(DOMAIN, "alice", "Available")
    presence.agent(DOMAIN, "bob", "On Break")
    presence.agent(DOMAIN, "dave", "Available", state="In a queue call")
    await _as(client, deps, portal_dsn, ALICE)
    assert (await (await client.get(API.format("support"))).json())["waiting"] == 0
    presence.caller(DOMAIN, "support", "5551", "First")
    presence.caller(DOMAIN, "support", "5552", "Second")
    first, second = presence.domain(DOMAIN).members[f"support@{DOMAIN}"]
    first = replace(first, joined_at=datetime.now(UTC) - timedelta(seconds=90))
    presence.set_members(DOMAIN, "support", [first, second])
    board = await (await client.get(API.format("support"))).json()
    assert board["waiting"] == 2 and board["longest_waiting"] >= 90
    assert board["agents"] == {
        "available": ["alice"],
        "in call": ["dave"],
        "on break": ["bob"],
        "logged out": [],
    }
    presence.set_members(DOMAIN, "support", [replace(first, state="Answered")])  # 2nd hung up
    board = await (await client.get(API.format("support"))).json()
    assert (board["answered"], board["abandoned"], board["waiting"]) == (1, 1, 0)
    assert board["longest_wait_today"] >= 90 and board["service_level"] == 0
    page = await (await client.get("/t/acme/queues/support/wallboard")).text()
    assert 'id="wb-answered">1<' in page and "Service level (20 s)" in page
    assert "5551" not in page  # a wall screen shows waits, never callers' numbers


async def test_agents_see_only_their_queues_and_others_get_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await _as(client, deps, portal_dsn, BOB)
    assert (await client.get(API.format("support"))).status == 200
    assert (await client.get("/t/acme/queues/sales/wallboard")).status == 200  # via bob2
    tenant = await (await client.get("/t/acme")).text()
    assert "/t/acme/queues/support/wallboard" in tenant
    await client.post("/logout", data={})
    client.session.cookie_jar.clear()
    await _as(client, deps, portal_dsn, CAROL)
    assert (await client.get(API.format("support"))).status == 404
    assert (await client.get("/t/acme/queues/support/wallboard/live")).status == 404


async def test_another_tenants_queue_is_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await _as(client, deps, portal_dsn, GINA)
    for url in (
        API.format("support"),
        "/t/acme/queues/support/wallboard",
        "/api/v1/tenants/globex/queues/nope/wallboard",
    ):
        assert (await client.get(url)).status == 404, url


def test_the_background_tally_counts_without_any_wallboard_open(deps: FakePortalDeps) -> None:
    from reconciler.core.queue_today import QueueToday
    from reconciler.web.wallboard import tally

    today = QueueToday()
    tenants = list(deps.state.values())
    tally(tenants, deps.presence, today)
    deps.presence.caller(DOMAIN, "sales", "5553")
    tally(tenants, deps.presence, today)
    deps.presence.set_members(DOMAIN, "sales", [])
    tally(tenants, deps.presence, today)
    figures = today.figures(f"sales@{DOMAIN}", datetime.now(UTC))
    assert (figures.answered, figures.abandoned) == (0, 1)


async def test_the_service_level_target_is_a_setting(deps: FakePortalDeps, portal_dsn: str) -> None:
    from aiohttp.test_utils import TestServer

    from reconciler.web import PortalConfig, make_portal_app

    config = PortalConfig(public_url="http://portal.test", service_level=30)
    async with TestClient(TestServer(make_portal_app(deps, config))) as client:
        await _as(client, deps, portal_dsn, ALICE)
        board = await (await client.get(API.format("sales"))).json()
        assert board["service_level_seconds"] == 30
        page = await (await client.get("/t/acme/queues/sales/wallboard")).text()
        assert "Service level (30 s)" in page

"""The portal through the real daemon and the fake switch, in Debian's headless Chromium:
an agent logs in, sees a phone register live, sets their status, and the switch gets it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from reconciler.store import connect
from reconciler.web import PortalConfig, invite
from reconciler.web.invitations import activate
from tests.e2e.conftest import ACME, World, eventually, start_world
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS

BOB = "bob@acme.example.com"
PASSWORD = "correct horse battery staple 42"


@pytest.fixture
async def portal_world(tmp_path: Path, pg_dsn: str) -> AsyncIterator[World]:
    config = PortalConfig(public_url="http://127.0.0.1:0", listen_port=0)
    async with start_world(tmp_path, pg_dsn, portal=config) as world:
        yield world


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


def activate_account(dsn: str, email: str) -> None:
    """What a person does with `pbx users invite`'s link: set a password."""
    with connect(dsn) as conn:
        link = invite(conn, email, base_url="http://portal.test")
        token = link.url.rsplit("/", 1)[1]
        activate(conn, token, password=PASSWORD, confirmation=PASSWORD, code="")


async def test_an_agent_sets_their_status_in_the_browser_and_the_switch_gets_it(
    portal_world: World, browser: Browser
) -> None:
    world = portal_world
    server = world.daemon.portal.server
    assert server is not None
    await asyncio.to_thread(activate_account, world.dsn, BOB)
    base = f"http://127.0.0.1:{server.port}"
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    await page.goto(base + "/login")
    await page.get_by_label("Email").fill(BOB)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"/t/acme$"))

    world.fs.sofia.register("1002", ACME, user_agent="Yealink T54W")
    await expect(page.locator("#live-extensions")).to_contain_text("Yealink T54W")

    agent = f"bob@{ACME}"
    assert world.fs.agents[agent].status != "On Break"
    await page.locator("#agent-bob").get_by_role("button", name="On Break").click()
    await eventually(lambda: world.fs.agents[agent].status == "On Break", "status on the switch")
    await expect(page.locator("#agent-bob")).to_contain_text("On Break")
    await page.close()

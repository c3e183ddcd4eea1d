"""In Chromium: a queue wallboard and the super admin's overview update live without a
reload; the credentials page's copy buttons copy and say so (mouse and keyboard); the
Activity filters narrow the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.sync_api import Browser, Page, expect

from reconciler.store import connect
from reconciler.store.accounts import record_audit
from reconciler.web.ports import NodeStatus
from tests.fakes.portal import SUPER
from tests.web.browser import desktop_page, log_in_as
from tests.web.live_server import LivePortal, live_portal, scratch_database

ALICE, CAROL = "alice@acme.example.com", "carol@acme.example.com"
DOMAIN = "acme.example.com"


@pytest.fixture(scope="module")
def portal(pg_server_dsn: str) -> Iterator[LivePortal]:
    with scratch_database(pg_server_dsn) as dsn, live_portal(dsn, sse_heartbeat=1.0) as running:
        running.secrets = {e: running.account(e) for e in (SUPER, ALICE, CAROL)}  # type: ignore[attr-defined]
        yield running


@pytest.fixture
def page(browser: Browser, portal: LivePortal) -> Iterator[Page]:
    with desktop_page(browser) as opened:
        opened.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal.url)
        yield opened


def test_the_wallboard_updates_live(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, ALICE)
    page.get_by_role("link", name="Wallboard of queue support").click()
    expect(page.locator("body.live-on")).to_have_count(1)
    expect(page.locator("#wb-waiting")).to_have_text("0")
    presence = portal.deps.presence
    portal.run_in_loop(lambda: presence.caller(DOMAIN, "support", "5551", "First"))
    expect(page.locator("#wb-waiting")).to_have_text("1")
    portal.run_in_loop(lambda: presence.agent(DOMAIN, "bob", "On Break"))
    expect(page.locator(".wb-on-break")).to_contain_text("bob")

    def answer() -> None:
        (member,) = presence.domain(DOMAIN).members[f"support@{DOMAIN}"]
        presence.set_members(DOMAIN, "support", [replace(member, state="Answered")])

    portal.run_in_loop(answer)
    expect(page.locator("#wb-answered")).to_have_text("1")
    expect(page.locator("#wb-waiting")).to_have_text("0")
    expect(page.locator("#wb-sl")).to_have_text("100%")


def test_the_overview_updates_live(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, SUPER)
    expect(page.locator("body.live-on")).to_have_count(1)
    overview = page.locator("#live-overview")
    expect(overview).to_contain_text("connected")
    deps = portal.deps
    portal.run_in_loop(lambda: setattr(deps, "node_list", [NodeStatus("fs9:8021", False)]))
    expect(overview).to_contain_text("fs9:8021")
    expect(overview).to_contain_text("disconnected")


def test_copy_buttons_copy_and_say_so(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, CAROL)
    page.goto(portal.url + "/t/acme/extensions/1010")
    page.get_by_role("button", name="Reveal credentials").click()
    password = portal.deps.passwords["acme", "1010"]
    button = page.get_by_role("button", name="Copy password")
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == password
    expect(page.locator(".copied-status")).to_have_text("Copied password")
    tls = page.get_by_role("button", name="Copy proxy address for TLS")
    tls.focus()
    page.keyboard.press("Enter")
    expect(tls).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"{DOMAIN}:5061;transport=tls"


def test_activity_filters_narrow_the_audit_trail(page: Page, portal: LivePortal) -> None:
    assert portal.deps.dsn is not None
    with connect(portal.deps.dsn) as conn:
        record_audit(
            conn,
            actor="zed@acme.example.com",
            action="reveal",
            result="ok",
            tenant_id="acme",
            target="1999",
        )
    log_in_as(page, portal, ALICE)
    page.goto(portal.url + "/t/acme/activity")
    page.get_by_label("Who").fill("zed@acme.example.com")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"actor=zed%40acme\.example\.com"))
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("1999")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    text = download.value.path().read_text()
    assert "zed@acme.example.com" in text and text.count("\n") == 2

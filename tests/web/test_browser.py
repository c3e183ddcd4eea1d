"""The portal in a real headless Chromium: each role logs in and sees exactly its data,
reveals credentials, sets an agent status that reaches the presence view, live updates
arrive without a reload, a CSRF-less POST and a cross-tenant URL are refused, logout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fakes.portal import PASSWORD, SUPER
from tests.web.browser import log_in_as
from tests.web.live_server import LivePortal, live_portal, scratch_database

ALICE, BOB, CAROL = "alice@acme.example.com", "bob@acme.example.com", "carol@acme.example.com"


@pytest.fixture(scope="module")
def portal(pg_server_dsn: str) -> Iterator[LivePortal]:
    with scratch_database(pg_server_dsn) as dsn, live_portal(dsn, sse_heartbeat=1.0) as running:
        running.secrets = {e: running.account(e) for e in (SUPER, ALICE, BOB, CAROL)}  # type: ignore[attr-defined]
        yield running


def test_super_admin_sees_every_tenant_nodes_and_can_search(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, SUPER)
    expect(page).to_have_url(portal.url + "/platform")
    table = page.locator("table.tenants")
    for tenant in ("acme", "globex", "initech"):
        expect(table).to_contain_text(tenant)
    expect(table).to_contain_text("suspended")
    expect(page.locator("body")).to_contain_text("fs1:8021")
    page.get_by_role("searchbox").first.fill("dave")
    page.get_by_role("button", name="Search").first.click()
    expect(page.locator(".hits li")).to_have_count(3)  # dave in two tenants, and agent dave
    expect(page.locator(".hits")).to_contain_text("agent")


def test_tenant_admin_sees_the_whole_tenant_and_nothing_else(
    page: Page, portal: LivePortal
) -> None:
    log_in_as(page, portal, ALICE)
    expect(page).to_have_url(portal.url + "/t/acme")
    extensions = page.locator("#live-extensions")
    for number in ("1001", "1002", "1003", "1004", "1010"):
        expect(extensions).to_contain_text(number)
    expect(page.locator("#queues")).to_contain_text("support")
    expect(page.locator("#people")).to_contain_text("carol@acme.example.com")
    response = page.goto(portal.url + "/t/globex")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    assert page.goto(portal.url + "/platform").status == 404  # type: ignore[union-attr]


def test_agent_sets_own_status_and_it_reaches_the_presence_view(
    page: Page, portal: LivePortal
) -> None:
    log_in_as(page, portal, BOB)
    extensions = page.locator("#live-extensions")
    expect(extensions).to_contain_text("1002")
    expect(extensions).not_to_contain_text("1001")
    expect(page.locator("#queues")).to_have_count(0)
    row = page.locator("#agent-bob")
    expect(page.locator("#agent-alice")).to_have_count(0)
    row.get_by_role("button", name="On Break").click()
    expect(page.locator("#agent-bob")).to_contain_text("On Break")
    assert ("bob@acme.example.com", "On Break") in portal.deps.presence.status_calls


def test_live_registration_appears_without_a_reload(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, BOB)
    expect(page.locator("body.live-on")).to_have_count(1)
    portal.run_in_loop(
        lambda: portal.deps.presence.register("acme.example.com", "1003", user_agent="Linphone 5.2")
    )
    expect(page.locator("#live-extensions")).to_contain_text("Linphone 5.2")


def test_member_reveals_own_credentials_with_a_qr_code(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, CAROL)
    page.get_by_role("link", name="Credentials").click()
    page.get_by_role("button", name="Reveal credentials").click()
    password = portal.deps.passwords["acme", "1010"]
    expect(page.locator("code.secret")).to_have_text(password)
    expect(page.locator("img.qr").first).to_be_visible()  # the Grandstream Wave one
    assert page.eval_on_selector("img.qr", "img => img.complete && img.naturalWidth") > 0
    expect(page.get_by_role("link", name="Credentials")).to_have_count(0)  # one row: hers
    assert page.goto(portal.url + "/t/acme/extensions/1001").status == 404  # type: ignore[union-attr]


def test_a_post_without_csrf_token_is_refused(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, BOB)
    before = len(portal.deps.presence.status_calls)
    response = page.request.post(
        portal.url + "/t/acme/agents/bob/status", form={"status": "Logged Out"}
    )
    assert response.status == 403
    assert len(portal.deps.presence.status_calls) == before


def test_logout_ends_the_session(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, ALICE)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(portal.url + "/t/acme")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Ft%2Facme$"))


def test_pages_fit_a_phone(browser: Browser, portal: LivePortal) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    log_in_as(page, portal, ALICE)
    width = page.evaluate("document.documentElement.scrollWidth")
    context.close()
    assert width <= 390 + 1


def test_a_status_the_switch_did_not_take_is_said_in_the_page(
    page: Page, portal: LivePortal
) -> None:
    log_in_as(page, portal, BOB)
    portal.deps.presence.fail_nodes = {"fs1"}
    try:
        page.locator("#agent-bob2").get_by_role("button", name="Logged Out").click()
        alert = page.locator("#agents [role=alert]")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("bob2's status was not set")
    finally:
        portal.deps.presence.fail_nodes = set()


def test_a_tenant_admin_sets_an_agents_status(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, ALICE)
    page.locator("#agent-dave").get_by_role("button", name="On Break").click()
    expect(page.locator("#agent-dave")).to_contain_text("On Break")
    assert ("dave@acme.example.com", "On Break") in portal.deps.presence.status_calls


def test_rotate_asks_for_confirmation_first(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, CAROL)
    page.goto(portal.url + "/t/acme/extensions/1010")
    questions: list[str] = []

    def answer(dialog, accept: bool) -> None:  # type: ignore[no-untyped-def]
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.get_by_role("button", name="Rotate password").click()
    assert questions and "logged out" in questions[0]
    expect(page).to_have_url(portal.url + "/t/acme/extensions/1010")
    assert ("acme", "1010") not in portal.deps.rotations
    page.once("dialog", lambda d: answer(d, True))
    page.get_by_role("button", name="Rotate password").click()
    expect(page.locator("p.notice")).to_contain_text("New credentials generated")
    assert ("acme", "1010") in portal.deps.rotations


def test_times_read_relative_and_local_and_the_live_dot_says_what_it_means(
    page: Page, portal: LivePortal
) -> None:
    portal.run_in_loop(lambda: portal.deps.presence.register("acme.example.com", "1002"))
    log_in_as(page, portal, BOB)
    stamp = page.locator("#live-extensions time").first
    expect(stamp).to_have_text(re.compile(r"^in (59|60) min$|^in 1 hour$"))
    title = stamp.get_attribute("title") or ""
    assert title and "UTC" not in title  # the reader's local time on hover
    dot = page.locator(".live-dot")
    expect(dot).to_have_attribute("title", "live updates: connected")
    expect(page.locator(".switches")).to_have_text("1/1 switches connected")


def test_someone_removed_from_git_is_told_why(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, CAROL)
    expect(page).to_have_url(re.compile(r"/t/acme$"))  # landed, not still on the way
    page.wait_for_load_state("networkidle")
    page.goto("about:blank")  # no page of hers is left open to race the next one
    state = portal.deps.state
    acme = state["acme"]
    users = {k: v for k, v in acme.users.items() if k != CAROL}
    portal.run_in_loop(
        lambda: portal.deps.replace_state({**state, "acme": replace(acme, users=users)})
    )
    try:
        page.goto(portal.url + "/t/acme")
        expect(page).to_have_url(re.compile(r"/login\?removed=1$"))
        expect(page.locator("#removed")).to_contain_text("access to this portal was removed")
    finally:
        portal.run_in_loop(lambda: portal.deps.replace_state(state))


def test_after_logging_in_you_land_where_you_asked(page: Page, portal: LivePortal) -> None:
    page.goto(portal.url + "/t/acme/extensions/1010")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email").fill(CAROL)
    page.get_by_label("Password").fill(PASSWORD)
    expect(page.get_by_label(re.compile("Authenticator code"))).to_have_count(0)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(portal.url + "/t/acme/extensions/1010")

"""Every page of every role in a real Chromium, as its people use it: readable on a 390 px
phone without horizontal scrolling, a dark theme when the system asks for one, a skip link,
a visible focus, controls named after what they act on, and no serious or critical axe-core
violation (light and dark)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fakes.portal import SUPER
from tests.web import axe_check
from tests.web.axe_check import blocking_violations
from tests.web.browser import log_in
from tests.web.live_server import LivePortal, live_portal, scratch_database
from tests.web.screenshots import populate

ALICE, BOB, CAROL = "alice@acme.example.com", "bob@acme.example.com", "carol@acme.example.com"
DAVE, GINA = "dave@example.org", "gina@globex.example.com"
Visit = Callable[[Page, str], None]
PHONE_WIDTH = 390
# Controls a phone cannot reach: outside the screen's width and not inside a box that scrolls
# sideways (a wide table scrolls within its own frame, the page never does).
UNREACHABLE = """() => [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select')]
  .filter(e => e.getClientRects().length)
  .filter(e => {
    const box = e.getBoundingClientRect();
    if (box.left >= 0 && box.right <= window.innerWidth + 1) return false;
    for (let up = e.parentElement; up; up = up.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(up).overflowX)) return false;
    }
    return true;
  })
  .map(e => e.outerHTML.slice(0, 80))"""


def goto(path: str) -> Visit:
    def visit(page: Page, base: str) -> None:
        page.goto(base + path)

    visit.__name__ = path
    return visit


def revealed(number: str) -> Visit:
    def visit(page: Page, base: str) -> None:
        page.goto(f"{base}/t/acme/extensions/{number}")
        page.get_by_role("button", name=re.compile("Reveal credentials")).click()
        expect(page.locator("code.secret")).to_be_visible()

    visit.__name__ = f"credentials {number}"
    return visit


def invited(page: Page, base: str) -> None:
    page.goto(base + "/invite")
    page.get_by_label("Email").first.fill(GINA)
    page.get_by_role("button", name=re.compile("invitation")).click()
    expect(page.locator("code.secret.link")).to_be_visible()


COMMON = [goto("/account"), goto("/no/such/page")]
PAGES: dict[str | None, list[Visit]] = {
    None: [goto("/login"), goto("/login/reset"), goto("/no/such/page")],
    SUPER: [
        goto("/platform"),
        goto("/platform?sync=invalid"),
        goto("/platform/activity"),
        goto("/platform/activity?action=reveal&since=2026-01-01"),
        goto("/t/acme/queues/support/wallboard"),
        goto("/platform/search?q=dave"),
        goto("/platform/search?q=nothing-like-this"),
        goto("/platform/sessions"),
        goto("/platform/locks"),
        goto("/invite"),
        goto("/t/acme"),
        goto("/t/acme/activity"),
        goto("/t/acme/people"),
        goto("/t/acme/extensions/1001"),
        *COMMON,
    ],
    ALICE: [
        goto("/t/acme"),
        goto("/t/acme/activity"),
        goto("/t/acme/activity?actor=nobody@example.org"),
        goto("/t/acme/queues/support/wallboard"),
        goto("/t/acme/people"),
        goto("/t/acme/extensions/1001"),
        revealed("1001"),
        goto("/invite"),
        *COMMON,
    ],
    BOB: [
        goto("/t/acme"),
        goto("/t/acme/extensions/1002"),
        revealed("1002"),
        goto("/t/acme/queues/sales/wallboard"),
        *COMMON,
    ],
    CAROL: [goto("/t/acme"), goto("/t/acme/extensions/1010"), revealed("1010"), *COMMON],
    DAVE: [goto("/"), goto("/t/globex"), *COMMON],
}
ROLES = list(PAGES)


@pytest.fixture(scope="module")
def portal(pg_server_dsn: str) -> Iterator[LivePortal]:
    with scratch_database(pg_server_dsn) as dsn, live_portal(dsn, sse_heartbeat=1.0) as running:
        populate(running.deps)  # long errors, many tenants, live phones, waiting callers
        running.secrets = {e: running.account(e) for e in (SUPER, ALICE, BOB, CAROL, DAVE)}  # type: ignore[attr-defined]
        yield running


def session(
    browser: Browser, portal: LivePortal, email: str | None, **options: object
) -> BrowserContext:
    """A logged-in context; CSP bypassed only so the test can inject axe-core."""
    context = browser.new_context(bypass_csp=True, **options)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    if email is not None:
        log_in(context.new_page(), portal, email, portal.secrets[email])  # type: ignore[attr-defined]
    return context


def each_page(context: BrowserContext, portal: LivePortal, email: str | None) -> Iterator[str]:
    page = context.pages[0] if context.pages else context.new_page()
    for visit in PAGES[email]:
        visit(page, portal.url)
        yield f"{visit.__name__} ({page.url})"


@pytest.mark.parametrize("email", ROLES, ids=[str(r) for r in ROLES])
def test_no_page_scrolls_sideways_on_a_phone(
    browser: Browser, portal: LivePortal, email: str | None
) -> None:
    context = session(
        browser, portal, email, viewport={"width": PHONE_WIDTH, "height": 844}, is_mobile=True
    )
    page = context.pages[0] if context.pages else context.new_page()
    wide = []
    for where in each_page(context, portal, email):
        scroll, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        # a mobile browser widens its layout viewport to fit wide content: innerWidth
        # grows with it, so the phone's own 390 px is the bound too
        if scroll > inner or inner > PHONE_WIDTH:
            wide.append(f"{where}: {scroll} px wide in {inner} px (the phone has {PHONE_WIDTH})")
        wide += [f"{where}: unreachable {html}" for html in page.evaluate(UNREACHABLE)]
    context.close()
    assert not wide, "\n".join(wide)


def test_the_phone_probes_see_what_they_look_for(browser: Browser, portal: LivePortal) -> None:
    context = session(browser, portal, None, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(portal.url + "/login")
    page.evaluate(
        "document.querySelector('main').insertAdjacentHTML('beforeend',"
        ' \'<p style="width: 600px"><button>far</button></p>'
        '<button style="margin-left: 500px">off</button>\')'
    )
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    unreachable = page.evaluate(UNREACHABLE)
    context.close()
    assert scroll > 390
    assert len(unreachable) == 1 and "off" in unreachable[0]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("email", ROLES, ids=[str(r) for r in ROLES])
def test_axe_finds_no_serious_violation(
    browser: Browser, portal: LivePortal, email: str | None, scheme: str
) -> None:
    context = session(
        browser, portal, email, viewport={"width": 1280, "height": 900}, color_scheme=scheme
    )
    page = context.pages[0] if context.pages else context.new_page()
    found = [
        f"{where}: {line}"
        for where in each_page(context, portal, email)
        for line in blocking_violations(page)
    ]
    context.close()
    assert not found, "\n".join(found)


def test_an_invitation_and_its_activation_page_pass_axe(
    browser: Browser, portal: LivePortal
) -> None:
    context = session(browser, portal, SUPER, color_scheme="dark")
    page = context.pages[0]
    invited(page, portal.url)
    found = blocking_violations(page)
    link = page.locator("code.secret.link").inner_text()
    page.get_by_role("button", name="Log out").click()
    page.goto(portal.url + "/activate/" + link.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
    found += blocking_violations(page)
    context.close()
    assert not found, "\n".join(found)


def luminance(css_colour: str) -> float:
    """Relative luminance (WCAG) of an ``rgb(...)`` computed colour."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", css_colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("email", [ALICE, CAROL])
def test_the_dark_theme_follows_the_system_setting(
    browser: Browser, portal: LivePortal, email: str
) -> None:
    context = session(browser, portal, email, color_scheme="dark")
    page = context.pages[0]
    page.goto(portal.url + "/t/acme")
    body = "getComputedStyle(document.body)"
    background, ink = page.evaluate(f"[{body}.backgroundColor, {body}.color]")
    card = page.evaluate("getComputedStyle(document.querySelector('table')).color")
    context.close()
    assert luminance(background) < 0.05, background
    assert contrast(background, ink) >= 7, (background, ink)
    assert luminance(card) > 0.5, card


def test_the_light_theme_stays_light(browser: Browser, portal: LivePortal) -> None:
    context = session(browser, portal, BOB, color_scheme="light")
    page = context.pages[0]
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    context.close()
    assert luminance(background) > 0.8, background


def test_the_skip_link_comes_first_and_lands_on_the_main_content(
    browser: Browser, portal: LivePortal
) -> None:
    context = session(browser, portal, ALICE)
    page = context.pages[0]
    page.goto(portal.url + "/t/acme")
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.textContent, document.activeElement.hash]")
    assert focused == ["Skip to content", "#main"]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "focus must be visible"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    inside = page.evaluate("document.querySelector('main').contains(document.activeElement)")
    context.close()
    assert inside, "the next Tab after the skip link stays in the main content"


def test_focus_is_visible_on_buttons_and_links(browser: Browser, portal: LivePortal) -> None:
    context = session(browser, portal, BOB)
    page = context.pages[0]
    page.goto(portal.url + "/t/acme")
    seen = []
    for _ in range(12):
        page.keyboard.press("Tab")
        tag, outline, width = page.evaluate(
            "(e => [e.tagName, getComputedStyle(e).outlineStyle,"
            " parseFloat(getComputedStyle(e).outlineWidth)])(document.activeElement)"
        )
        seen.append((tag, outline, width))
    context.close()
    hidden = [s for s in seen if s[0] != "BODY" and (s[1] == "none" or s[2] < 2)]
    assert not hidden, seen


def test_repeated_controls_name_what_they_act_on(browser: Browser, portal: LivePortal) -> None:
    context = session(browser, portal, ALICE)
    page = context.pages[0]
    page.goto(portal.url + "/t/acme")
    for number in ("1001", "1002", "1010"):
        expect(page.get_by_role("link", name=f"Credentials for {number}")).to_have_count(1)
    for status in ("Available", "On Break", "Logged Out"):
        expect(page.get_by_role("button", name=f"Set alice {status}")).to_have_count(1)
    page.goto(portal.url + "/t/acme/extensions/1001")
    expect(page.get_by_role("button", name=re.compile("Rotate .*1001"))).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile("Reveal credentials .*1001"))).to_have_count(
        1
    )
    context.close()


def test_an_agent_with_two_agents_tells_their_buttons_apart(
    browser: Browser, portal: LivePortal
) -> None:
    context = session(browser, portal, BOB)
    page = context.pages[0]
    for agent in ("bob", "bob2"):
        for status in ("Available", "On Break", "Logged Out"):
            button = page.get_by_role("button", name=f"Set {agent} {status}", exact=True)
            expect(button).to_have_count(1)
    context.close()


def test_a_missing_axe_core_fails_and_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(axe_check, "AXE_JS", tmp_path / "axe.min.js")
    axe_check.axe_source.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match="npm ci"):
            axe_check.axe_source()
    finally:
        axe_check.axe_source.cache_clear()

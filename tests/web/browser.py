"""Debian's Chromium driven by Playwright (never a downloaded browser), and logging in
through the real form. Missing Chromium is a failure, not a skip: CI installs it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Page, Playwright

from reconciler.store import connect
from tests.fakes.portal import PASSWORD
from tests.web.live_server import LivePortal
from tests.web.support import allow_code_reuse

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Plays an <audio> element muted to its end (``locator.evaluate``): resolves with where it
# ended (its decoded length, in seconds), rejects with the media error's code.
PLAY_TO_THE_END = """audio => new Promise((resolve, reject) => {
    audio.muted = true;
    audio.addEventListener("ended", () => resolve(audio.currentTime), {once: true});
    audio.addEventListener("error", () => reject(String(audio.error && audio.error.code)));
    audio.play().catch(reject);
})"""


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def log_in(page: Page, portal: LivePortal, email: str, secret: str | None = None) -> None:
    if secret is not None:
        assert portal.deps.dsn is not None
        with connect(portal.deps.dsn) as conn:
            allow_code_reuse(conn, email)
    page.goto(portal.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    if secret is not None:  # the second step, only for accounts with an authenticator
        page.get_by_label(re.compile("Authenticator code")).fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/(platform|t/\w+)?$"))


@contextmanager
def desktop_page(browser: Browser, *, timeout_ms: int = 10_000, **options: Any) -> Iterator[Page]:
    """A page in a fresh 1280x900 context (``options`` go to the context), closed after."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    context.set_default_timeout(timeout_ms)
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in_as(page: Page, portal: LivePortal, email: str) -> None:
    """Log in as one of the people whose secrets the module's portal fixture kept."""
    log_in(page, portal, email, portal.secrets[email])  # type: ignore[attr-defined]

"""Voicemail in a real headless Chromium: the owner's page plays a message (the audio
element fetches it with Range and plays it), and a message left while the page is open
appears without a reload; the portal reads the fake switch over ESL as it would the real."""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from reconciler.core.audio_roots import AudioRoots
from reconciler.web.ports import VOICEMAIL
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.fakes.portal import FakePortalDeps
from tests.switch.voicemail_support import connected_voicemail
from tests.web.browser import PLAY_TO_THE_END, desktop_page, log_in
from tests.web.live_server import LivePortal, scratch_database

CAROL = "carol@acme.example.com"
ACME = "acme.example.com"


def tone(path: Path) -> None:
    """Half a second of 440 Hz, 8 kHz mono 16-bit PCM: what mod_voicemail writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(4000))
        out.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))


class Switch:
    """The fake switch and the voicemail engine, on the portal's own event loop."""

    def __init__(self, portal: LivePortal) -> None:
        self.portal = portal
        self.fs = FakeFreeSwitch()
        self._engine: Any = None

    async def start(self) -> Any:
        await self.fs.start()
        self._engine = connected_voicemail(self.fs)
        return await self._engine.__aenter__()

    async def stop(self) -> None:
        await self._engine.__aexit__(None, None, None)
        await self.fs.stop()

    def leave(self, root: Path, box: str, number: str) -> str:
        path = root / "acme" / box / f"msg_{number}.wav"
        tone(path)

        async def left() -> str:
            return self.fs.voicemail.leave(box, ACME, str(path), caller_number=number).uuid

        return str(self.portal.call(left()))


@pytest.fixture(scope="module")
def running(
    pg_server_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LivePortal, Switch, Path]]:
    root = tmp_path_factory.mktemp("voicemail")
    with scratch_database(pg_server_dsn) as dsn:
        deps = FakePortalDeps(dsn=dsn)
        acme = deps.state["acme"]
        boxes = {n: replace(e, voicemail_enabled=True) for n, e in acme.extensions.items()}
        deps.state["acme"] = replace(acme, extensions=boxes)
        roots = AudioRoots(
            recordings="/nonexistent/r", sounds="/nonexistent/s", voicemail=str(root)
        )
        portal = LivePortal(deps, sse_heartbeat=1.0, audio_roots=roots)
        portal.start_loop()
        switch = Switch(portal)
        portal.ports = {VOICEMAIL: portal.call(switch.start())}
        portal.start()
        portal.secrets = {CAROL: portal.account(CAROL)}  # type: ignore[attr-defined]
        try:
            yield portal, switch, root
        finally:
            portal.call(switch.stop())
            portal.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with desktop_page(browser, timeout_ms=15_000) as opened:
        yield opened


def test_a_message_plays_and_a_new_one_appears_without_a_reload(
    page: Page, running: tuple[LivePortal, Switch, Path]
) -> None:
    portal, switch, root = running
    switch.leave(root, "1010", "5551")
    log_in(page, portal, CAROL, portal.secrets[CAROL])  # type: ignore[attr-defined]
    page.goto(portal.url + "/t/acme/voicemail")
    row = page.locator("#voicemail tbody tr", has_text="5551")
    expect(row).to_be_visible()
    played = row.locator("audio").evaluate(PLAY_TO_THE_END)
    assert 0.4 < played < 0.6  # the half second the box holds, decoded by the browser
    switch.leave(root, "1010", "5552")
    expect(page.locator("#voicemail tbody tr", has_text="5552")).to_be_visible()
    # the page was never reloaded: one navigation
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

"""Recordings in a real headless Chromium: a tenant admin lists, filters, plays (the
``<audio>`` element loads real audio through Range requests answered 206) and downloads a
recording; an agent sees only the calls they answered; another tenant's recording is 404."""

from __future__ import annotations

import io
import math
import re
import struct
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from reconciler.core.audio_roots import AudioRoots
from tests.web.browser import desktop_page, log_in_as
from tests.web.live_server import LivePortal, live_portal, scratch_database

ALICE, BOB = "alice@acme.example.com", "bob@acme.example.com"  # tenant admin; agent bob
U1, U2, U3 = (f"{n:08x}-0000-4000-8000-000000000000" for n in (1, 2, 3))
TEMPLATE = "support/{date}/{uuid}.wav"
ALICE_CALL = f"support/2026-12-07/{U1}.wav"
BOB_CALL = f"support/2026-12-06/{U2}.wav"
BOB_PHONE = f"extensions/1002/2026-12-05/{U3}.in.wav"


def _tone(seconds: float) -> bytes:
    """A real WAV (8 kHz, mono, 16-bit) Chromium can decode: 440 Hz for ``seconds``."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        frames = int(8000 * seconds)
        audio.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / 8000)))
                for n in range(frames)
            )
        )
    return out.getvalue()


AUDIO = _tone(2.0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("recordings")
    for rel in (ALICE_CALL, BOB_CALL, BOB_PHONE):
        (base / "acme" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "acme" / rel).write_bytes(AUDIO)
    notes = base / "acme" / ".answered"
    notes.mkdir()
    (notes / f"{U1}.alice").write_text("")
    (notes / f"{U2}.bob").write_text("")
    (base / "globex").mkdir()
    (base / "globex" / "secret.wav").write_bytes(AUDIO)
    return base


@pytest.fixture(scope="module")
def portal(pg_server_dsn: str, root: Path) -> Iterator[LivePortal]:
    roots = AudioRoots(recordings=str(root), sounds="/nonexistent/s", voicemail="/nonexistent/v")
    with (
        scratch_database(pg_server_dsn) as dsn,
        live_portal(dsn, audio_roots=roots, recordings_fresh_seconds=0.0) as running,
    ):
        acme = running.deps.state["acme"]
        support = replace(acme.queues["support"], record_template=TEMPLATE)
        running.deps.state["acme"] = replace(acme, queues={**acme.queues, "support": support})
        running.secrets = {e: running.account(e) for e in (ALICE, BOB)}  # type: ignore[attr-defined]
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with desktop_page(browser, timeout_ms=15_000, accept_downloads=True) as opened:
        yield opened


def _rows(page: Page) -> list[str]:
    return [row.inner_text() for row in page.locator("#recordings tbody tr").all()]


def test_an_admin_lists_filters_plays_and_downloads(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, ALICE)
    page.goto(portal.url + "/t/acme/recordings")
    expect(page.locator("#recordings tbody tr")).to_have_count(3)
    page.get_by_label("Agent").fill("bob")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"agent=bob"))
    rows = _rows(page)
    assert len(rows) == 1 and "bob" in rows[0] and "support" in rows[0]

    ranged: list[Response] = []
    page.on(
        "response",
        lambda r: ranged.append(r) if "/recordings/file" in r.url and r.status == 206 else None,
    )
    audio = page.locator("#recordings audio").first
    audio.evaluate("a => { a.preload = 'auto'; a.load(); }")
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())
    duration = audio.evaluate("a => a.duration")
    assert 1.9 < duration < 2.1  # the 2 s tone, decoded by Chromium
    assert audio.evaluate("a => a.error") is None
    assert ranged, "Chromium's media requests were not answered 206"
    assert ranged[0].headers["content-range"].startswith("bytes 0-")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="download").first.click()
    saved = download_info.value.path()
    assert download_info.value.suggested_filename == f"{U2}.wav"
    assert Path(saved).read_bytes() == AUDIO


def test_an_agent_sees_only_the_calls_they_answered(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, BOB)
    page.goto(portal.url + "/t/acme/recordings")
    expect(page.locator("#recordings tbody tr")).to_have_count(2)
    text = " ".join(_rows(page))
    assert "1002" in text and "bob" in text and "alice" not in text
    alices = page.request.get(
        portal.url + "/api/v1/tenants/acme/recordings/file", params={"path": ALICE_CALL}
    )
    assert alices.status == 404


def test_another_tenants_recording_is_404(page: Page, portal: LivePortal) -> None:
    log_in_as(page, portal, ALICE)
    for url in (
        "/api/v1/tenants/globex/recordings/file?path=secret.wav",
        "/api/v1/tenants/acme/recordings/file?path=../globex/secret.wav",
    ):
        assert page.request.get(portal.url + url).status == 404
    page.goto(portal.url + "/t/globex/recordings")
    assert "secret" not in page.content()

"""Chromium as the WebRTC media endpoint of a test browser phone: the same engine the
portal's SIP.js phone runs on, driven by Playwright, with the fake microphone.

Why Chromium and not a Python peer: aiortc 1.16 against FreeSWITCH 1.10.12 completed ICE
and DTLS, yet FreeSWITCH relayed none of its RTP (and aiortc's ECDSA-only DTLS ciphers
refuse FreeSWITCH's RSA certificate when FreeSWITCH calls it); the captured SIP.js runs show
Chromium and FreeSWITCH agreeing by themselves. Each call gets a page of its own on a
secure origin (``http://127.0.0.1``, served by Playwright's router, nothing listens),
``getUserMedia`` with the flags of ``flags-matrix.txt``, and no ICE server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
PAGE_URL = "http://127.0.0.1:9/phone"
WAIT = 30.0

# The page's WebRTC half of SIP.js: one peer connection, full (non-trickle) SDP.
PAGE = """<!doctype html><html><head><title>media</title></head><body><script>
window.peer = {
  pc: null,
  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    this.pc = new RTCPeerConnection({iceServers: []});
    stream.getTracks().forEach((t) => this.pc.addTrack(t, stream));
    // played, as the phone plays it: Chromium decodes (and counts) only audio it plays
    this.pc.ontrack = (e) => {
      const out = new Audio();
      out.srcObject = e.streams[0] || new MediaStream([e.track]);
      out.play().catch(() => {});
    };
  },
  gathered() {
    if (this.pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((done) => this.pc.addEventListener("icegatheringstatechange",
      () => { if (this.pc.iceGatheringState === "complete") done(); }));
  },
  async offer() {
    await this.start();
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this.gathered();
    return this.pc.localDescription.sdp;
  },
  async answer(sdp) {
    await this.start();
    await this.pc.setRemoteDescription({type: "offer", sdp});
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await this.gathered();
    return this.pc.localDescription.sdp;
  },
  async accept(sdp) { await this.pc.setRemoteDescription({type: "answer", sdp}); },
  async counts() {
    let sent = 0, received = 0, samples = 0;
    (await this.pc.getStats()).forEach((r) => {
      if (r.kind !== "audio") return;
      if (r.type === "outbound-rtp") sent += r.packetsSent;
      if (r.type === "inbound-rtp") { received += r.packetsReceived; samples += r.totalSamplesReceived || 0; }
    });
    return [sent, received, samples];
  },
};
</script></body></html>"""


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium (never a downloaded browser); its absence is a failure."""
    _require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class BrowserMedia:
    """One call's media in a Chromium page (``sipws.MediaPeer``)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @classmethod
    async def open(cls, browser: Browser) -> BrowserMedia:
        page = await browser.new_page()

        async def serve(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/html", body=PAGE)

        await page.route(PAGE_URL, serve)
        await page.goto(PAGE_URL)
        return cls(page)

    async def offer(self) -> str:
        return str(await self.page.evaluate("peer.offer()"))

    async def answer(self, offer: str) -> str:
        return str(await self.page.evaluate("(sdp) => peer.answer(sdp)", offer))

    async def accept(self, answer: str) -> None:
        await self.page.evaluate("(sdp) => peer.accept(sdp)", answer)

    async def counts(self) -> tuple[int, int, int]:
        """(RTP packets sent, RTP packets received, audio samples decoded)."""
        sent, received, samples = await self.page.evaluate("peer.counts()")
        return int(sent), int(received), int(samples)

    async def flowing_both_ways(self, packets: int) -> tuple[int, int, int]:
        """Wait until ``packets`` went each way and audio was decoded; the counts then
        (or when the wait ran out, for the failure message)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            sent, received, samples = await self.counts()
            if (min(sent, received) >= packets and samples > 0) or loop.time() > deadline:
                return sent, received, samples
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.page.evaluate("peer.pc && peer.pc.close()")
        await self.page.close()

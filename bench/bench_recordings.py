"""Listing one tenant's 10,000 recordings (the portal's scan: walk, stat, read names and
answered notes back) and streaming one recording through ``tenant_files``.

Run: ``.venv/bin/python bench/bench_recordings.py``; prints p50/p99 of the scan and the
streaming rate in MB/s (compare with nginx serving the same file on the same host)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.core.recording_names import RecordingNames
from reconciler.web.recordings import scan
from reconciler.web.tenant_files import file_response, open_tenant_file

COUNT = 10_000
RUNS = 30


def _populate(root: Path) -> None:
    base = root / "acme"
    notes = base / ".answered"
    notes.mkdir(parents=True)
    for n in range(COUNT):
        uuid = f"{n:08x}-0000-4000-8000-000000000000"
        day = base / "support" / f"2026-12-{1 + n % 28:02d}"
        day.mkdir(parents=True, exist_ok=True)
        (day / f"{uuid}.wav").write_bytes(b"RIFF" + b"\0" * 60)
        if n % 2:
            (notes / f"{uuid}.alice").write_text("")


async def _stream(root: Path, size: int) -> float:
    (root / "acme" / "big.wav").write_bytes(b"\0" * size)

    async def serve(request: web.Request) -> web.StreamResponse:
        return await file_response(request, open_tenant_file(root, "acme", "big.wav"))

    app = web.Application()
    app.router.add_get("/", serve)
    async with TestClient(TestServer(app)) as client:
        started = time.perf_counter()
        response = await client.get("/")
        got = len(await response.read())
        return got / (time.perf_counter() - started) / 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _populate(root)
        names = RecordingNames({"support": "support/{date}/{uuid}.wav"}, "acme.example.com")
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            found, _ = scan(root, "acme", names)
            times.append((time.perf_counter() - started) * 1000)
        assert len(found) == COUNT
        times.sort()
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        print(f"scan {COUNT} recordings: p50 {statistics.median(times):.1f} ms, p99 {p99:.1f} ms")
        rate = asyncio.run(_stream(root, 200 * 1024 * 1024))
        print(f"stream 200 MB through tenant_files: {rate:.0f} MB/s")


if __name__ == "__main__":
    main()

"""xml_curl latency while the portal (same process, same event loop) is flooded with bogus
bearer tokens from one address.

    python bench/bench_portal_flood.py --dsn postgresql://127.0.0.1/pbx_bench [--duration 10]

Starts ``serve`` as a subprocess (xml_curl and the portal on uvloop, as ``pbx run`` serves
them; the portal on the given migrated database), then measures FreeSWITCH-like lookups
(one new connection each, sequential, from a process of its own) for ``--duration`` seconds
without load, and again while another process keeps ``--connections`` kept-alive
connections busy sending ``GET /api/v1/me`` with a bogus ``pbxp_`` bearer token. Prints
p50/p99 of the lookups and how the portal answered the flood (status counts). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVE = """
import asyncio, sys
import uvloop
sys.path.insert(0, sys.argv[1])
from reconciler.serve import ListenerLimits, start_server
from reconciler.serve.xmlcurl_app import make_app
from reconciler.serve.snapshot import build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.web import PortalConfig, PortalServer
from tests.fakes.portal import FakePortalDeps
from tests.serve.test_xmlcurl_fixtures import a1_hashes_for, load_state
import tempfile, pathlib

async def main(dsn, xml_port, portal_port):
    state = load_state(pathlib.Path(tempfile.mkdtemp()))
    snapshot = build_snapshot(state, a1_hashes_for(state), generation="bench")
    limits = ListenerLimits()
    app = make_app(lambda: snapshot, load_templates(), auth=None, limits=limits)
    runner = await start_server(app, "127.0.0.1", xml_port, limits)
    portal = PortalServer(FakePortalDeps(dsn=dsn),
                          PortalConfig(listen_port=portal_port, public_url="http://127.0.0.1"))
    await portal.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

uvloop.run(main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""

LOOKUPS = """
import json, socket, sys, time
sys.path.insert(0, sys.argv[1])
from tests.serve.test_listener import sip_auth_request
port, duration = int(sys.argv[2]), float(sys.argv[3])
request = sip_auth_request()
times, failed = [], 0
end = time.monotonic() + duration
while time.monotonic() < end:
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        ok = reply.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    if ok:
        times.append(time.perf_counter() - started)
    else:
        failed += 1
    time.sleep(0.002)
print(json.dumps({"times": times, "failed": failed}))
"""

FLOOD = """
import asyncio, collections, json, sys
port, connections, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
statuses = collections.Counter()

async def one(n):
    request = (f"GET /api/v1/me HTTP/1.1\\r\\nHost: x\\r\\n"
               f"Authorization: Bearer pbxp_bogus{n:040d}\\r\\n\\r\\n").encode()
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    while loop.time() < end:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while loop.time() < end:
                writer.write(request)
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                statuses[head.split(b" ", 2)[1].decode()] += 1
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            writer.close()
        except (OSError, asyncio.IncompleteReadError):
            statuses["closed"] += 1

async def main():
    await asyncio.gather(*(one(n) for n in range(connections)))
    print(json.dumps(statuses))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def lookups(port: int, duration: float) -> dict[str, float]:
    """FreeSWITCH's side, always this checkout's client (the request of transcript 11)."""
    out = subprocess.run(
        [sys.executable, "-c", LOOKUPS, str(ROOT), str(port), str(duration)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    data = json.loads(out)
    times = data["times"]
    return {
        "answered": len(times),
        "failed": data["failed"],
        "p50_ms": round(percentile(times, 0.5), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True, help="a migrated database (the portal's)")
    parser.add_argument("--tree", default=str(ROOT), help="the checkout to measure")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    xml_port, portal_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, args.tree, args.dsn, str(xml_port), str(portal_port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=args.tree,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        quiet = lookups(xml_port, args.duration)
        flooder = [sys.executable, "-c", FLOOD, str(portal_port), str(args.connections)]
        flood = subprocess.Popen(
            [*flooder, str(args.duration + 2)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        flooded = lookups(xml_port, args.duration)
        statuses = json.loads(flood.communicate()[0])
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps({"quiet": quiet, "flooded": flooded, "portal_answers": statuses}))


if __name__ == "__main__":
    main()

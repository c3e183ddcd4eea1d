"""Benchmark of the call history: ingest rate with xml_curl latency beside it, and the admin's
queries over a tenant of 1,000,000 calls.

    python bench/bench_calls.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        [--seconds 10] [--posters 8] [--rows 1000000]

``ingest``: one process serves xml_curl (the in-process default, the worst case for
interference) and ``POST /freeswitch/cdr`` (``daemon.cdr``) on one listener, over a fresh
database; ``--posters`` concurrent clients post the captured real record (a fresh uuid each,
url-encoded as mod_xml_cdr sends it) for ``--seconds`` while one client times sequential
sip_auth lookups; the same lookups are timed idle first. ``query``: ``--rows`` a legs in one
tenant (generated in SQL over 90 days, 200 extensions, 5 queues), then the admin's first page,
a member's first page, and a month's totals, each timed 30 times (p50/p99 in ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import aiohttp
from bench_xmlcurl import CAPTURE, build_bench_snapshot, sip_auth_body

from reconciler.core.call_query import CallQuery
from reconciler.daemon.cdr import CDR_PATH, CdrIntake, cdr_handler
from reconciler.daemon.metrics import Metrics
from reconciler.serve.listener import ListenerLimits, start_server
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import XML_PATH
from reconciler.serve.xmlcurl_app import make_app
from reconciler.store import connect, migrate
from reconciler.store.calls import call_totals, read_calls
from reconciler.store.migrations import create_tenant_schema
from tests.conftest import fresh_database
from tests.realswitch.processes import free_port

RECORD = (REPO / "tests" / "fakes" / "cdr" / "ext_answered_a.cdr.xml").read_text()
OLD_UUID = "12568f90-3095-43b4-9d13-5be69e5deb22"
AUTH = ("freeswitch", "bench-secret")
HEADERS = {
    "Authorization": "Basic " + __import__("base64").b64encode(b"freeswitch:bench-secret").decode(),
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


async def lookups(session: aiohttp.ClientSession, url: str, body: str, stop: float) -> list[float]:
    times: list[float] = []
    while time.perf_counter() < stop:
        started = time.perf_counter()
        async with session.post(
            url, data=body, headers={**HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
        ) as r:
            await r.read()
        times.append(time.perf_counter() - started)
    return times


async def poster(session: aiohttp.ClientSession, url: str, stop: float, counts: list[int]) -> None:
    while time.perf_counter() < stop:
        text = RECORD.replace(OLD_UUID, str(uuid.uuid4()))
        body = "cdr=" + quote(text, safe="")  # encode=true, as the node config sets it
        headers = {**HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            counts[0 if r.status == 200 else 1] += 1


async def serve(dsn: str, port: int) -> None:
    """The daemon's two routes on one listener, as ``pbx run`` without workers serves them."""
    snapshot = build_bench_snapshot(10, 100)
    domains = {"acme.example.com": "acme"}
    quarantine = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    intake = CdrIntake(lambda: dsn, lambda: domains, quarantine, Metrics())
    app = make_app(lambda: snapshot, load_templates(None), auth=AUTH)
    app.router.add_post(CDR_PATH, cdr_handler(intake, AUTH))
    await start_server(app, "127.0.0.1", port, ListenerLimits(), what="bench")
    await asyncio.Event().wait()


async def drive(port: int, seconds: float, posters: int) -> dict[str, object]:
    base = f"http://127.0.0.1:{port}"
    template = json.loads(CAPTURE.read_text())["body"]
    body = sip_auth_body(template, "t0001.bench.example", "1001")
    async with aiohttp.ClientSession() as session:
        idle = await lookups(session, base + XML_PATH, body, time.perf_counter() + seconds / 2)
        stop = time.perf_counter() + seconds
        counts = [0, 0]
        started = time.perf_counter()
        busy, *_ = await asyncio.gather(
            lookups(session, base + XML_PATH, body, stop),
            *(poster(session, base + CDR_PATH, stop, counts) for _ in range(posters)),
        )
        elapsed = time.perf_counter() - started
    return {
        "records_per_second": round(counts[0] / elapsed, 1),
        "records": counts[0],
        "failed": counts[1],
        "xml_curl_idle_p50_ms": pct(idle, 0.5),
        "xml_curl_idle_p99_ms": pct(idle, 0.99),
        "xml_curl_ingest_p50_ms": pct(busy, 0.5),
        "xml_curl_ingest_p99_ms": pct(busy, 0.99),
    }


def ingest(dsn: str, seconds: float, posters: int) -> dict[str, object]:
    """The server in a process of its own (the load generator must not share its loop)."""
    port = free_port()
    command = [sys.executable, __file__, "serve", "--dsn", dsn, "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        return asyncio.run(drive(port, seconds, posters))
    finally:
        server.terminate()
        server.wait(10)


FILL = """
INSERT INTO tenant_acme.calls (uuid, call_uuid, leg, domain, direction, outcome, hangup_cause,
    from_number, from_name, to_number, did, from_extension, to_extension, queue, agent,
    bridge_uuid, started_at, answered_at, ended_at, ring_seconds, talk_seconds, node)
SELECT u, u, 'a', 'acme.example.com',
    (ARRAY['internal','inbound','outbound'])[1 + i %% 3],
    (ARRAY['answered','answered','answered','no_answer','busy','abandoned'])[1 + i %% 6],
    'NORMAL_CLEARING', '+1415555' || lpad((i %% 10000)::text, 4, '0'), 'Caller ' || i,
    (1000 + i %% 200)::text, NULL, (1000 + (i * 7) %% 200)::text, (1000 + i %% 200)::text,
    CASE WHEN i %% 4 = 0 THEN 'q' || (i %% 5) END, CASE WHEN i %% 4 = 0 THEN 'agent' || (i %% 20) END,
    NULL, t, t + interval '5 seconds', t + interval '65 seconds', i %% 30, 60, 'bench'
FROM (SELECT i, md5(i::text)::uuid::text AS u,
             now() - (i * interval '90 days' / %(rows)s) AS t
      FROM generate_series(1, %(rows)s) AS i) g
"""


def query(dsn: str, rows: int) -> dict[str, object]:
    with connect(dsn) as conn:
        started = time.perf_counter()
        conn.execute(FILL, {"rows": rows})
        conn.execute("ANALYZE tenant_acme.calls")
        fill_seconds = time.perf_counter() - started

        def timed(fn, *args) -> list[float]:  # type: ignore[no-untyped-def]
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                fn(conn, *args)
                times.append(time.perf_counter() - t0)
            return times

        from datetime import UTC, datetime, timedelta

        month = CallQuery(since=datetime.now(UTC) - timedelta(days=30))
        admin = timed(read_calls, "acme", CallQuery())
        member = timed(read_calls, "acme", CallQuery(only_extensions=frozenset({"1042"})))
        totals = timed(call_totals, "acme", month, 20)
        filtered = timed(read_calls, "acme", CallQuery(outcome="busy", number="5550042"))
    return {
        "rows": rows,
        "fill_seconds": round(fill_seconds, 1),
        "admin_first_page_p50_ms": pct(admin, 0.5),
        "admin_first_page_p99_ms": pct(admin, 0.99),
        "member_first_page_p50_ms": pct(member, 0.5),
        "member_first_page_p99_ms": pct(member, 0.99),
        "month_totals_p50_ms": pct(totals, 0.5),
        "month_totals_max_ms": pct(totals, 1.0),
        "number_search_busy_p50_ms": pct(filtered, 0.5),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dsn", required=True, help="the server's DSN (a database is created)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--posters", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args.dsn, args.port))
        return
    with fresh_database(args.dsn, prefix="pbx_bench_calls") as dsn:
        with connect(dsn) as conn:
            migrate(conn)
            with conn.transaction():
                create_tenant_schema(conn, "acme")
        results = {"ingest": ingest(dsn, args.seconds, args.posters)}
        results["query"] = query(dsn, args.rows)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

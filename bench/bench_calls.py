"""Benchmark of the call history: ingest rate with xml_curl latency beside it, and the admin's
queries over a tenant of 1,000,000 calls.

    python bench/bench_calls.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        [--seconds 60] [--posters 8] [--rows 1000000] [--xml-curl-workers 2] \
        [--baseline /path/to/previous/tree] [--rounds 2]

``ingest``: a process serves ``POST /freeswitch/cdr`` (``daemon.cdr``, the control plane's
listener) over a fresh database; with ``--xml-curl-workers N`` (2 by default, as production
runs) N ``reconciler.dataplane.worker`` processes answer xml_curl from a generation file on a
socket of their own, with 0 the same process answers both (the worst case for interference).
A poster process runs ``--posters`` concurrent clients posting the captured real record (a
fresh uuid each, url-encoded as mod_xml_cdr sends it) for ``--seconds`` while this process
times sequential sip_auth lookups (its loop does nothing else); the same lookups are timed
idle first, for ``--seconds`` too. Reported: records acknowledged per second, records
filed (rows in the tenant's table) per second over the window, how long the rest took to
be filed after it, and the filed rate over both. ``--baseline TREE`` runs TREE's own
``bench/bench_calls.py serve`` (the previous release's intake) in turns with this tree's,
for ``--rounds`` rounds: on a shared machine only interleaved runs compare.
``query``: ``--rows`` a legs in one tenant (generated in SQL over 90 days, 200 extensions,
5 queues; the rollup and the trigram index built after the fill, as filing and migration 8
would), then the admin's first page, a member's first page, a month's totals (rollup and raw),
and a number search, each timed 30 times (p50/p99 in ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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
import psycopg
from bench_xmlcurl import CAPTURE, build_bench_snapshot, sip_auth_body

from reconciler.core.call_query import CallQuery
from reconciler.daemon.cdr import CDR_PATH, CdrIntake, cdr_handler
from reconciler.daemon.metrics import Metrics
from reconciler.serve.generation import write_generation
from reconciler.serve.listener import ListenerLimits, start_server
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import XML_PATH
from reconciler.serve.xmlcurl_app import make_app
from reconciler.store import connect, migrate
from reconciler.store.call_rollup import fold_statement
from reconciler.store.calls import call_totals, raw_call_totals, read_calls
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


ENCODED = "cdr=" + quote(RECORD, safe="")  # encode=true, as the node config sets it


async def poster(session: aiohttp.ClientSession, url: str, stop: float, counts: list[int]) -> None:
    while time.perf_counter() < stop:
        body = ENCODED.replace(OLD_UUID, str(uuid.uuid4()))  # a uuid is its own encoding
        headers = {**HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            counts[0 if r.status == 200 else 1] += 1


async def serve(dsn: str, port: int) -> None:
    """The daemon's two routes on one listener, as ``pbx run`` without workers serves them
    (with workers, the lookups go to the workers and this listener takes the posts only)."""
    snapshot = build_bench_snapshot(10, 100)
    domains = {"acme.example.com": "acme"}
    state = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    intake = CdrIntake(lambda: dsn, lambda: domains, state / "q", Metrics(), state / "journal")
    intake.start()
    app = make_app(lambda: snapshot, load_templates(None), auth=AUTH)
    app.router.add_post(CDR_PATH, cdr_handler(intake, AUTH))
    await start_server(app, "127.0.0.1", port, ListenerLimits(), what="bench")
    await asyncio.Event().wait()


async def post(port: int, seconds: float, posters: int) -> None:
    """The switch's side: ``posters`` concurrent clients for ``seconds``; prints the counts."""
    counts = [0, 0]
    connector = aiohttp.TCPConnector(limit=posters)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"http://127.0.0.1:{port}{CDR_PATH}"
        print("ready", flush=True)  # imports done: the driver's window starts now
        started = time.perf_counter()
        stop = started + seconds
        await asyncio.gather(*(poster(session, url, stop, counts) for _ in range(posters)))
        elapsed = time.perf_counter() - started
    print(json.dumps({"accepted": counts[0], "failed": counts[1], "seconds": elapsed}))


def cpu_seconds(pid: int) -> float:
    """User + system CPU so far of process ``pid`` and its live children (the intake's
    reader processes)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or its child
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def call_rows(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM tenant_acme.calls").fetchone()[0])  # type: ignore[index]


async def drive(
    dsn: str, port: int, lookup_port: int, seconds: float, posters: int, server: int
) -> dict[str, object]:
    xml_curl = f"http://127.0.0.1:{lookup_port}{XML_PATH}"
    template = json.loads(CAPTURE.read_text())["body"]
    body = sip_auth_body(template, "t0001.bench.example", "1001")
    async with aiohttp.ClientSession() as session:
        load_idle = os.getloadavg()[0]
        idle = await lookups(session, xml_curl, body, time.perf_counter() + seconds)
        rows = call_rows(dsn)
        cpu = cpu_seconds(server)
        command = [sys.executable, __file__, "post", "--dsn", "-", "--port", str(port),
                   "--seconds", str(seconds), "--posters", str(posters)]  # fmt: skip
        posting = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        assert posting.stdout is not None
        await posting.stdout.readline()  # "ready"
        started = time.perf_counter()
        busy = await lookups(session, xml_curl, body, started + seconds)
        out, _ = await posting.communicate()
        elapsed = time.perf_counter() - started
        filed_in_window = call_rows(dsn) - rows
        counts = json.loads(out.decode().splitlines()[-1])
        load_busy = os.getloadavg()[0]
        deadline = time.perf_counter() + 600
        while call_rows(dsn) - rows < counts["accepted"] and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
        drained = time.perf_counter() - started
        filed = call_rows(dsn) - rows
        cpu = cpu_seconds(server) - cpu
    return {
        "records_per_second": round(counts["accepted"] / counts["seconds"], 1),
        "filed_per_second_in_window": round(filed_in_window / elapsed, 1),
        "filed_per_second_until_drained": round(filed / drained, 1),
        "drain_seconds_after_window": round(drained - elapsed, 1),
        "server_cpu_ms_per_record": round(1000 * cpu / max(1, filed), 2),
        "records": counts["accepted"],
        "filed": filed,
        "failed": counts["failed"],
        "xml_curl_idle_p50_ms": pct(idle, 0.5),
        "xml_curl_idle_p99_ms": pct(idle, 0.99),
        "xml_curl_ingest_p50_ms": pct(busy, 0.5),
        "xml_curl_ingest_p99_ms": pct(busy, 0.99),
        "xml_curl_lookups_idle_busy": [len(idle), len(busy)],
        "load_average_idle_busy": [round(load_idle, 1), round(load_busy, 1)],
    }


def ingest(
    dsn: str, seconds: float, posters: int, workers: int, tree: Path = REPO
) -> dict[str, object]:
    """The server in a process of its own (the load generator must not share its loop), run
    from ``tree`` (this one, or the previous release's); the xml_curl workers from this one."""
    port = free_port()
    command = [sys.executable, str(tree / "bench" / "bench_calls.py"), "serve", "--dsn", dsn,
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs: list[subprocess.Popen[bytes]] = []
    lookup_port = port
    if workers:
        from bench_dataplane import ID, _start_workers

        generation = Path(tempfile.mkdtemp(prefix="bench-calls-gen-")) / "generation"
        write_generation(build_bench_snapshot(10, 100), generation, identity=ID,
                         dsn_fingerprint="fp")  # fmt: skip
        lookup_port, procs = _start_workers(workers, generation)
    try:
        for p in {port, lookup_port}:
            deadline = time.time() + 60
            while time.time() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", p), 1):
                    break
                time.sleep(0.2)
        time.sleep(2)  # the workers map their generation
        result = asyncio.run(drive(dsn, port, lookup_port, seconds, posters, server.pid))
        return {"tree": str(tree), "xml_curl_workers": workers, **result}
    finally:
        for proc in [server, *procs]:
            proc.terminate()
            proc.wait(10)


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


TRIGRAM = """CREATE INDEX IF NOT EXISTS calls_numbers_trgm ON tenant_acme.calls USING gin (
    (from_number || E'\\n' || to_number || E'\\n' || coalesce(did, '')) gin_trgm_ops)
    WHERE leg = 'a'"""  # as tenant migration 8 builds it when pg_trgm exists


def query(dsn: str, rows: int) -> dict[str, object]:
    with connect(dsn) as conn:
        started = time.perf_counter()
        trigram = conn.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'calls_numbers_trgm'"
        ).fetchone()
        conn.execute("DROP INDEX IF EXISTS tenant_acme.calls_numbers_trgm")
        conn.execute("TRUNCATE tenant_acme.calls, tenant_acme.calls_daily")  # the posts'
        conn.execute(FILL, {"rows": rows})
        calls = psycopg.sql.SQL("tenant_acme.calls")
        conn.execute(fold_statement("acme", calls))  # what filing them one by one would count
        if trigram:
            conn.execute(TRIGRAM)
        conn.execute("VACUUM ANALYZE tenant_acme.calls")
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
        raw = timed(raw_call_totals, "acme", month, 20)
        assert call_totals(conn, "acme", month, 20) == raw_call_totals(conn, "acme", month, 20)
        filtered = timed(read_calls, "acme", CallQuery(outcome="busy", number="5550042"))
        suffix = timed(read_calls, "acme", CallQuery(number="0042"))
        common = timed(read_calls, "acme", CallQuery(number="555"))
    return {
        "rows": rows,
        "fill_seconds": round(fill_seconds, 1),
        "admin_first_page_p50_ms": pct(admin, 0.5),
        "admin_first_page_p99_ms": pct(admin, 0.99),
        "member_first_page_p50_ms": pct(member, 0.5),
        "member_first_page_p99_ms": pct(member, 0.99),
        "month_totals_p50_ms": pct(totals, 0.5),
        "month_totals_max_ms": pct(totals, 1.0),
        "month_totals_raw_p50_ms": pct(raw, 0.5),
        "number_search_trigram_index": bool(trigram),
        "number_search_busy_p50_ms": pct(filtered, 0.5),
        "number_search_busy_p99_ms": pct(filtered, 0.99),
        "number_search_rare_0042_p50_ms": pct(suffix, 0.5),
        "number_search_rare_0042_p99_ms": pct(suffix, 0.99),
        "number_search_common_555_p50_ms": pct(common, 0.5),
    }


CPU_PROBE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from reconciler.core.cdr import read_cdr
from reconciler.daemon.cdr import _document
body, n = open(sys.argv[2], "rb").read(), 300
form = "application/x-www-form-urlencoded"
text = _document(body, form)
t0 = time.process_time()
for _ in range(n):
    _document(body, form)
t1 = time.process_time()
for _ in range(n):
    read_cdr(text)
t2 = time.process_time()
print(json.dumps({"decode_ms": round((t1 - t0) * 1000 / n, 3),
                  "read_ms": round((t2 - t1) * 1000 / n, 3)}))
"""


def cpu_per_record(trees: list[Path], rounds: int) -> list[dict[str, object]]:
    """CPU (process time, so the machine's other load counts little) of decoding a post and
    reading its record, each tree's own code, in turns."""
    post = Path(tempfile.mkdtemp(prefix="bench-calls-post-")) / "post"
    post.write_text(ENCODED)
    runs: list[dict[str, object]] = []
    for _ in range(rounds):
        for tree in trees:
            out = subprocess.run([sys.executable, "-c", CPU_PROBE, str(tree), str(post)],
                                 capture_output=True, check=True, text=True).stdout  # fmt: skip
            runs.append({"tree": str(tree), **json.loads(out.splitlines()[-1])})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "post"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dsn", required=True, help="the server's DSN (a database is created)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--posters", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xml-curl-workers", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="a previous release's tree, in turns")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args.dsn, args.port))
        return
    if args.mode == "post":
        asyncio.run(post(args.port, args.seconds, args.posters))
        return
    with fresh_database(args.dsn, prefix="pbx_bench_calls") as dsn:
        with connect(dsn) as conn:
            migrate(conn)
            with conn.transaction():
                create_tenant_schema(conn, "acme")
        runs = []
        for _ in range(args.rounds if args.seconds else 0):
            for tree in [t for t in (args.baseline, REPO) if t is not None]:
                runs.append(ingest(dsn, args.seconds, args.posters, args.xml_curl_workers, tree))
                print(json.dumps(runs[-1]), file=sys.stderr)
        trees = [t for t in (args.baseline, REPO) if t is not None]
        results: dict[str, object] = {"cpu": cpu_per_record(trees, max(1, args.rounds))}
        results["ingest"] = runs
        if args.rows:
            results["query"] = query(dsn, args.rows)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

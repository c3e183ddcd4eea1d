"""Benchmark of the mod_xml_curl endpoint under SIP-auth load, side by side with nginx.

    python bench/bench_xmlcurl.py run [--duration 10] [--concurrency 1,16] [--uvloop]
    python bench/bench_xmlcurl.py serve --port 18080 [--uvloop] [--nofile 1024]
    python bench/bench_xmlcurl.py hostile [--uvloop]   # memory, labels, idle sockets

``run`` builds nothing itself: it starts ``serve`` as a subprocess (pinned to CPU 0, as the
daemon would run on one core), waits for /readyz, then drives it with ``wrk`` pinned to
CPU 1 (a separate load process) posting the captured sip_auth body of transcript 11 with
user/domain varied over 1,000 tenants x 100 extensions. The same response bytes are then
served as a static file by a private nginx (loopback port, one worker on CPU 0, started and
stopped here) to give a ratio. Each scenario runs twice: keep-alive (wrk's default) and
``Connection: close`` (what FreeSWITCH does: one new connection per fetch).

Needs ``wrk`` and ``nginx`` (Debian: ``apt-get install -y wrk nginx``). Loopback only, every
run bounded by ``--duration``. Figures go to stdout and, with ``--json``, to a file.

``hostile`` starts ``serve`` with the file-descriptor limit systemd gives a unit by default
(1,024) and measures what the adversarial review reported: server RSS after 6,000 requests
each with a unique ``user`` (60 KB by default, under the body cap; the review used 250 KB,
now refused with 413); the size of /metrics after 3,000 unique 1 KB ``section`` values; and
FreeSWITCH-like lookups (new connection each, 2 s timeout) while another process holds
2,000 silent sockets open (reopened as soon as the server closes one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reconciler.core.model import Extension, Tenant, TenantState
from reconciler.serve.listener import ListenerLimits, start_server
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import XML_PATH, answer, parse_form
from reconciler.serve.xmlcurl_app import make_app

SHARED = Path(os.environ.get("PBX_SHARED_DIR", REPO.parent / "shared"))
CAPTURE = SHARED / "freeswitch" / "transcripts" / "xml_curl" / "11-directory-register-a1hash.json"
CREDENTIALS = ("freeswitch", "bench-secret")
TARGET_P99_MS = 2.0
TARGET_RPS = 5000


def domain_of(tenant: int) -> str:
    return f"t{tenant:04d}.bench.example"


def build_bench_snapshot(tenants: int, extensions: int, freeze: bool = False) -> Snapshot:
    """1,000 x 100 by default, straight from records: no database, no spec files."""
    state = {}
    hashes = {}
    for t in range(tenants):
        tid = f"t{t:04d}"
        domain = domain_of(t)
        exts = {}
        for e in range(extensions):
            number = str(1000 + e)
            exts[number] = Extension(number=number, name=f"User {number} of {tid}")
            hashes[(tid, number)] = hashlib.md5(
                f"{number}:{domain}:pw-{tid}-{number}".encode()
            ).hexdigest()
        state[tid] = TenantState(
            tenant=Tenant(id=tid, domain=domain, name=f"Tenant {tid}", status="active"),
            extensions=exts,
        )
    return build_snapshot(state, hashes, generation="bench", freeze=freeze)


def sip_auth_body(template: str, domain: str, user: str) -> str:
    """The captured body with the tenant-specific fields swapped."""
    replacements = {
        "key_value": domain,
        "domain": domain,
        "user": user,
        "sip_auth_username": user,
        "sip_auth_realm": domain,
        "sip_to_user": user,
        "sip_to_host": domain,
        "sip_from_user": user,
        "sip_from_host": domain,
        "sip_request_host": domain,
        "sip_contact_user": user,
    }
    fields = []
    for pair in template.split("&"):
        name, _, value = pair.partition("=")
        fields.append(f"{name}={replacements.get(name, value)}")
    return "&".join(fields)


# --- serve -----------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from aiohttp import web

    started = time.perf_counter()
    snapshot = build_bench_snapshot(args.tenants, args.extensions, freeze=not args.no_freeze)
    print(
        f"snapshot: {snapshot.counts()['users']} users in {time.perf_counter() - started:.2f} s",
        flush=True,
    )
    if args.nofile:
        # what a service gets without LimitNOFILE= (systemd's default soft limit is 1,024)
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, max(hard, args.nofile)))
    # the daemon's own observer (Prometheus counters and histogram) is on the request path
    from reconciler.daemon.metrics import Metrics

    metrics = Metrics()
    app = make_app(
        lambda: snapshot, load_templates(), auth=CREDENTIALS, observer=metrics.observe_xmlcurl
    )

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain")

    app.router.add_get("/metrics", metrics_page)

    async def listen() -> None:
        # as the daemon serves it: the connection guard and its limits on the request path
        await start_server(app, "127.0.0.1", args.port, ListenerLimits())
        await asyncio.Event().wait()  # until SIGTERM

    asyncio.run(listen())


# --- run -------------------------------------------------------------------------------

# Only the short check run looks at bodies: a Lua response() callback makes wrk itself
# the bottleneck (measured: nginx 33k req/s with it, far more without).
CHECK_RESPONSE = """
function response(status, headers, body)
  if status == 200 and string.find(body, "a1-hash", 1, true) then
    found = found + 1
  else
    other = other + 1
  end
end
"""

LUA = """
local bodies = {}
local index = 0
local threads = {}
found, other = 0, 0  -- globals: done() reads them per thread with thread:get()

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open("%(bodies)s", "r"))
  for line in f:lines() do table.insert(bodies, line) end
  f:close()
  index = math.random(#bodies)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["User-Agent"] = "freeswitch-xml/1.0"
  wrk.headers["Authorization"] = "%(authorization)s"
  %(connection)s
end

function request()
  index = index %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[index])
end

%(response)s

function done(summary, latency, requests)
  local f, o = 0, 0
  for _, thread in ipairs(threads) do
    f = f + thread:get("found")
    o = o + thread:get("other")
  end
  io.write(string.format("CHECK found=%%d other=%%d\\n", f, o))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("PCTL %%g %%d\\n", p, latency:percentile(p)))
  end
end
"""

NGINX_CONF = """
worker_processes 1;
worker_cpu_affinity 01;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      root %(dir)s/www;
      default_type text/xml;
      # a static file answers POST only through this: same request as the endpoint gets
      error_page 405 =200 $uri;
    }
  }
}
"""


def wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (nginx: master + workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run_wrk(
    args: argparse.Namespace, url: str, script: Path, server_pid: int | None = None
) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", args.load_cpus, *command]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu_used = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    requests = int(re.search(r"(\d+) requests in", output)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    check = re.search(r"CHECK found=(\d+) other=(\d+)", output)
    pctl = {float(p): int(us) / 1000 for p, us in re.findall(r"PCTL ([\d.]+) (\d+)", output)}
    cpu_us = cpu_used / requests * 1e6 if requests and server_pid else 0.0
    return {
        "rps": rps,
        "requests": requests,
        # server CPU per request, and what one fully busy core would then serve: robust
        # against other load on the machine, unlike wall-clock figures
        "cpu_us_per_request": cpu_us,
        "rps_per_core": 1e6 / cpu_us if cpu_us else 0.0,
        "p50_ms": pctl[50.0],
        "p90_ms": pctl[90.0],
        "p99_ms": pctl[99.0],
        "p999_ms": pctl[99.9],
        "non_2xx": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1] if socket_errors else "",
        "found": int(check[1]) if check else -1,
        "other": int(check[2]) if check else -1,
    }


def write_script(
    workdir: Path, name: str, bodies: Path, close: bool, auth: str, check: bool
) -> Path:
    script = workdir / f"{name}.lua"
    script.write_text(
        LUA
        % {
            "bodies": bodies,
            "authorization": auth,
            "connection": 'wrk.headers["Connection"] = "close"' if close else "",
            "response": CHECK_RESPONSE if check else "",
        }
    )
    return script


def run(args: argparse.Namespace) -> None:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install -y wrk nginx")
    template = json.loads(CAPTURE.read_text())["body"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-xmlcurl-"))
    os.chmod(workdir, 0o755)  # nginx workers may run as another user
    results: dict[str, object] = {
        "tenants": args.tenants,
        "extensions": args.extensions,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "event_loop": "uvloop" if args.uvloop else "asyncio",
        "gc_freeze": not args.no_freeze,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # request bodies: one per (tenant, extension) pair, in a shuffled but fixed order
        bodies = workdir / "bodies.txt"
        count = min(args.bodies, args.tenants * args.extensions)
        step = 7919  # a prime: walks every tenant and extension
        with bodies.open("w") as out:
            for i in range(count):
                k = (i * step) % (args.tenants * args.extensions)
                tenant, ext = divmod(k, args.extensions)
                out.write(sip_auth_body(template, domain_of(tenant), str(1000 + ext)) + "\n")
        auth = "Basic " + base64.b64encode(":".join(CREDENTIALS).encode()).decode()

        # the exact bytes the endpoint answers for one of those requests, for nginx
        snapshot = build_bench_snapshot(1, args.extensions)
        sample = answer(
            snapshot,
            parse_form(sip_auth_body(template, domain_of(0), "1000").encode()),
            load_templates(),
        )
        www = workdir / "www" / XML_PATH.strip("/").rsplit("/", 1)[0]
        www.mkdir(parents=True)
        (www / XML_PATH.rsplit("/", 1)[1]).write_bytes(sample.body.encode())
        os.chmod(workdir / "www", 0o755)
        results["response_bytes"] = len(sample.body.encode())

        # the endpoint, as a separate process on CPU 0
        serve_cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "serve",
            "--port",
            str(args.port),
            "--tenants",
            str(args.tenants),
            "--extensions",
            str(args.extensions),
            *(["--uvloop"] if args.uvloop else []),
            *(["--no-freeze"] if args.no_freeze else []),
        ]
        if shutil.which("taskset"):
            serve_cmd = ["taskset", "-c", args.server_cpu, *serve_cmd]
        server = subprocess.Popen(serve_cmd, cwd=REPO)
        processes.append(server)
        wait_ready(f"http://127.0.0.1:{args.port}/readyz", 120, server)

        # nginx with a private config
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF % {"dir": workdir, "port": args.nginx_port})
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        nginx = subprocess.Popen(
            [nginx_bin, "-c", str(conf), "-p", str(workdir)],
            stderr=subprocess.DEVNULL,
        )
        processes.append(nginx)
        wait_ready(f"http://127.0.0.1:{args.nginx_port}{XML_PATH}", 20, nginx)

        endpoints = {
            "aiohttp": (f"http://127.0.0.1:{args.port}{XML_PATH}", server.pid),
            "nginx": (f"http://127.0.0.1:{args.nginx_port}{XML_PATH}", nginx.pid),
        }
        scenarios = {}
        for close in (False, True):
            mode = "close" if close else "keepalive"
            # a short run that reads every body: right user, right tenant, no error
            checker = write_script(workdir, f"check-{mode}", bodies, close, auth, check=True)
            short = argparse.Namespace(**{**vars(args), "duration": 2, "connections": 4})
            for server_name, (url, _) in endpoints.items():
                checked = run_wrk(short, url, checker)  # doubles as the warm-up
                if checked["other"] or checked["non_2xx"] or not checked["found"]:
                    raise SystemExit(f"{server_name} {mode}: wrong answers: {checked}")
            script = write_script(workdir, mode, bodies, close, auth, check=False)
            for connections in args.concurrency:
                measured = argparse.Namespace(**{**vars(args), "connections": connections})
                for server_name, (url, pid) in endpoints.items():
                    key = f"{server_name}_{mode}_c{connections}"
                    scenarios[key] = run_wrk(measured, url, script, pid)
        results["scenarios"] = scenarios
        results["load_average_after"] = os.getloadavg()
    finally:
        for process in reversed(processes):
            stop(process, signal.SIGQUIT if process.args[0].endswith("nginx") else signal.SIGTERM)
        shutil.rmtree(workdir, ignore_errors=True)

    report(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, object]) -> None:
    scenarios: dict[str, dict[str, float]] = results["scenarios"]  # type: ignore[assignment]
    print(
        f"\n{results['tenants']} tenants x {results['extensions']} extensions, "
        f"{results['duration_s']} s per run, event loop {results['event_loop']}, "
        f"gc.freeze {'on' if results['gc_freeze'] else 'off'}, "
        f"response {results['response_bytes']} bytes"
    )
    before = ", ".join(f"{x:.2f}" for x in results["load_average_before"])  # type: ignore[attr-defined]
    after = ", ".join(f"{x:.2f}" for x in results["load_average_after"])  # type: ignore[attr-defined]
    print(f"load average before: {before}; after: {after} (on {results['cpus']} CPUs)")
    print(
        f"{'scenario':<26}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p99.9':>9}"
        f"{'CPU us/req':>12}{'req/s/core':>12}"
    )
    for name, s in scenarios.items():
        errors = f"  non-2xx {s['non_2xx']}" if s["non_2xx"] else ""
        if s["socket_errors"]:
            errors += f"  socket errors: {s['socket_errors']}"
        print(
            f"{name:<26}{s['rps']:>9.0f}{s['p50_ms']:>9.2f}{s['p90_ms']:>9.2f}"
            f"{s['p99_ms']:>9.2f}{s['p999_ms']:>9.2f}{s['cpu_us_per_request']:>12.0f}"
            f"{s['rps_per_core']:>12.0f}{errors}"
        )
    for name, ours in scenarios.items():
        if not name.startswith("aiohttp_"):
            continue
        theirs = scenarios["nginx_" + name.removeprefix("aiohttp_")]
        print(
            f"{name.removeprefix('aiohttp_')}: aiohttp/nginx throughput "
            f"{ours['rps'] / theirs['rps']:.2f}, p99 {ours['p99_ms']:.2f} ms vs "
            f"{theirs['p99_ms']:.2f} ms"
        )
    lowest = min(int(n.rsplit("_c", 1)[1]) for n in scenarios)
    highest = max(int(n.rsplit("_c", 1)[1]) for n in scenarios)
    for mode in ("keepalive", "close"):
        latency = scenarios[f"aiohttp_{mode}_c{lowest}"]["p99_ms"]
        throughput = scenarios[f"aiohttp_{mode}_c{highest}"]["rps"]
        verdict = "meets" if latency <= TARGET_P99_MS and throughput >= TARGET_RPS else "misses"
        print(
            f"target ({mode}): p99 {latency:.2f} ms at {lowest} connection(s), "
            f"{throughput:.0f} req/s at {highest}: {verdict} p99 <= {TARGET_P99_MS} ms and "
            f">= {TARGET_RPS} req/s"
        )


# --- hostile load ----------------------------------------------------------------------


async def exchange(
    port: int, body: bytes, *, path: str = XML_PATH, method: str = "POST", timeout: float = 5.0
) -> tuple[int, bytes]:
    """One request on a new connection (as FreeSWITCH does); (0, b"") when the server closed
    or refused it."""
    auth = base64.b64encode(":".join(CREDENTIALS).encode()).decode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + body)
            await writer.drain()
            response = await reader.read()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return 0, b""
    finally:
        if writer is not None:
            writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, rest.partition(b"\r\n\r\n")[2]


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


async def flood(port: int, bodies: list[bytes], connections: int) -> dict[str, int]:
    """Post every body, ``connections`` at a time; counts answers by HTTP status."""
    statuses: dict[str, int] = {}
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            status, _ = await exchange(port, queue.pop(), timeout=30)
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses


async def hold_idle(port: int, count: int, stop: asyncio.Event, opened: list[int]) -> None:
    """Keep ``count`` connections open that never send a byte; reopen any the server closes."""

    async def one() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            opened[0] += 1
            with contextlib.suppress(OSError):
                stopped = asyncio.ensure_future(stop.wait())
                closed = asyncio.ensure_future(reader.read())
                await asyncio.wait({stopped, closed}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                closed.cancel()
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


async def legit(port: int, body: bytes, seconds: float) -> dict[str, float]:
    """Sequential FreeSWITCH-like lookups (new connection each, 2 s timeout)."""
    ok = failed = 0
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        status, answer_body = await exchange(port, body, timeout=2.0)
        if status == 200 and b"a1-hash" in answer_body:
            ok += 1
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "ok": ok,
        "failed": failed,
        "p50_ms": pick(0.5) if latencies else 0.0,
        "p99_ms": pick(0.99) if latencies else 0.0,
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
    }


async def hostile_phases(args: argparse.Namespace, pid: int, template: str) -> dict[str, object]:
    results: dict[str, object] = {"memory_start_kb": memory_kb(pid)}
    # only the `user` field grows: the lookup key, as in the reported attack
    pad = "x" * max(0, args.user_bytes - 8)
    base = sip_auth_body(template, domain_of(0), "1000")
    bodies = [
        base.replace("&user=1000&", f"&user={i:08d}{pad}&").encode() for i in range(args.users)
    ]
    results["unique_users"] = await flood(args.port, bodies, 4)
    del bodies
    results["memory_after_users_kb"] = memory_kb(pid)

    head = "hostname=fs1&section="
    rest = "&tag_name=domain&key_name=name&key_value=x&user=1000&domain=x"
    spad = "s" * max(0, args.section_bytes - 6)
    sections = [f"{head}{i:06d}{spad}{rest}".encode() for i in range(args.sections)]
    results["unique_sections"] = await flood(args.port, sections, 4)
    _, page = await exchange(args.port, b"", path="/metrics", method="GET", timeout=30)
    results["metrics_bytes"] = len(page)
    results["memory_after_sections_kb"] = memory_kb(pid)

    return results


def idle_phase(args: argparse.Namespace, pid: int, template: str) -> dict[str, object]:
    """Lookups while another process holds ``--idle`` silent sockets (as FreeSWITCH's
    lookups come from a process of their own)."""
    legit_body = sip_auth_body(template, domain_of(0), "1000").encode()
    holder_cmd = [sys.executable, str(Path(__file__).resolve()), "idle"]
    holder = subprocess.Popen(
        [*holder_cmd, "--port", str(args.port), "--idle", str(args.idle)],
        stdout=subprocess.PIPE,
        text=True,
    )
    results: dict[str, object] = {"idle_sockets": args.idle}
    try:
        time.sleep(args.idle_settle)
        results["legit_under_idle"] = asyncio.run(legit(args.port, legit_body, args.legit_seconds))
    finally:
        holder.send_signal(signal.SIGINT)
        output, _ = holder.communicate(timeout=30)
    results["idle_connections_opened"] = int(output.strip().splitlines()[-1])
    results["legit_after"] = asyncio.run(legit(args.port, legit_body, 2.0))
    results["memory_end_kb"] = memory_kb(pid)
    return results


def idle(args: argparse.Namespace) -> None:
    """Hold ``--idle`` silent connections until SIGINT; print how many were opened."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    opened = [0]

    async def hold() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        await hold_idle(args.port, args.idle, stop, opened)

    asyncio.run(hold())
    print(opened[0], flush=True)


def hostile(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the load side needs ~2,000 fds
    template = json.loads(CAPTURE.read_text())["body"]
    serve_cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        "--port",
        str(args.port),
        "--tenants",
        str(args.tenants),
        "--extensions",
        str(args.extensions),
        "--nofile",
        str(args.nofile),
        *(["--uvloop"] if args.uvloop else []),
    ]
    server = subprocess.Popen(serve_cmd, cwd=REPO)
    try:
        wait_ready(f"http://127.0.0.1:{args.port}/readyz", 120, server)
        results = asyncio.run(hostile_phases(args, server.pid, template))
        results.update(idle_phase(args, server.pid, template))
    finally:
        stop(server)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve", "hostile", "idle"):
        p = sub.add_parser(name)
        p.add_argument("--tenants", type=int, default=1000)
        p.add_argument("--extensions", type=int, default=100)
        p.add_argument("--port", type=int, default=18080)
        p.add_argument("--uvloop", action="store_true", help="serve on uvloop")
        p.add_argument(
            "--no-freeze",
            action="store_true",
            help="leave the snapshot to the cyclic GC (full collections then stall the loop)",
        )
    run_parser = sub.choices["run"]
    run_parser.add_argument("--nginx-port", type=int, default=18081)
    run_parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    run_parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 16],
        help="connection counts to measure, comma-separated: the lowest is how FreeSWITCH "
        "calls (one pending fetch per SIP profile), the highest shows the ceiling",
    )
    run_parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    run_parser.add_argument("--bodies", type=int, default=20000, help="distinct request bodies")
    run_parser.add_argument("--server-cpu", default="0")
    run_parser.add_argument("--load-cpus", default="1")
    run_parser.add_argument("--json", help="also write the figures here (e.g. bench/results/)")
    sub.choices["serve"].add_argument(
        "--nofile", type=int, default=0, help="RLIMIT_NOFILE of the server (systemd: 1024)"
    )
    hostile_parser = sub.choices["hostile"]
    hostile_parser.set_defaults(tenants=100)
    hostile_parser.add_argument("--nofile", type=int, default=1024)
    hostile_parser.add_argument("--users", type=int, default=6000, help="unique user values")
    hostile_parser.add_argument(
        "--user-bytes", type=int, default=60_000, help="under the 64 KiB body cap (250,000: 413)"
    )
    hostile_parser.add_argument("--sections", type=int, default=3000, help="unique sections")
    hostile_parser.add_argument("--section-bytes", type=int, default=1000)
    hostile_parser.add_argument("--idle", type=int, default=2000, help="idle sockets held")
    sub.choices["idle"].add_argument("--idle", type=int, default=2000)
    hostile_parser.add_argument("--idle-settle", type=float, default=3.0)
    hostile_parser.add_argument("--legit-seconds", type=float, default=10.0)
    hostile_parser.add_argument("--json")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    elif args.command == "hostile":
        hostile(args)
    elif args.command == "idle":
        idle(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

"""Recordings: listing one tenant's 10,000 recordings a page at a time, and streaming one
recording next to nginx serving the same file.

``listing``: the portal's listing work (read the tenant's recordings, filter by date, queue,
extension or agent, take a page) over 10,000 recordings (queue recordings with half of them
noted as answered, extension recordings in and out), filters and pages taken in turn, with a
new recording arriving every ``--arrive-every`` listings (the index must notice it). It
runs whatever ``reconciler`` is first on the path, so the previous release is measured from
an export of it:

    git archive <commit> reconciler specs_schema | tar -x -C /tmp/prev
    PYTHONPATH=/tmp/prev .venv/bin/python bench/bench_recordings.py listing   # previous
    .venv/bin/python bench/bench_recordings.py listing                        # this tree

``stream``: one 100 MB WAV served by ``tenant_files`` (an aiohttp app on a loopback port: the
portal's file path without its session lookup) and by nginx (a throwaway config on a free
port, ``sendfile on``), fetched with curl, one stream and ``--parallel`` at once, rounds
interleaved; bytes per second. Skips with a message when nginx or curl is not installed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from reconciler.core.recording_names import RecordingNames
from reconciler.web.tenant_files import file_response, open_tenant_file

TEMPLATES = {"support": "support/{date}/{uuid}.wav", "sales": "sales/{date}/{uuid}.wav"}
DOMAIN = "acme.example.com"
AGENTS = ("alice", "bob", "carol", "dave")
EXTENSIONS = tuple(str(1001 + n) for n in range(20))
PAGE = 50


def _uuid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-000000000000"


def _populate(root: Path, count: int) -> None:
    """``count`` recordings: 60% queue calls (half noted as answered), 40% extensions'."""
    base = root / "acme"
    notes = base / ".answered"
    notes.mkdir(parents=True)
    for n in range(count):
        uuid, day = _uuid(n), f"2026-11-{1 + n % 28:02d}"
        if n % 5 < 3:
            queue = "support" if n % 2 else "sales"
            path = base / queue / day / f"{uuid}.wav"
            if n % 2:
                (notes / f"{uuid}.{AGENTS[n % len(AGENTS)]}").write_text("")
        else:
            direction = "in" if n % 2 else "out"
            path = base / "extensions" / EXTENSIONS[n % 20] / day / f"{uuid}.{direction}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF" + bytes(60))
        then = time.time() - 3600 - n
        os.utime(path, (then, then))


def _requests() -> list[tuple[dict[str, str], int]]:
    """The filters and offsets a portal sees in turn."""
    return [
        ({}, 0),
        ({}, 500),
        ({"date": "2026-11-07"}, 0),
        ({"queue": "support"}, 0),
        ({"queue": "support"}, 1000),
        ({"extension": "1007"}, 0),
        ({"agent": "bob"}, 0),
        ({"date": "2026-11-20", "queue": "sales"}, 0),
    ]


def _lister(root: Path, fresh: float) -> tuple[str, Callable[[dict[str, str], int], int]]:
    """This tree's listing (the index) or, in an older tree, its scan; both as the portal's
    ``listing`` uses them: all recordings, filtered, one page."""
    names = RecordingNames(TEMPLATES, DOMAIN)
    try:
        from reconciler.web.recording_index import RecordingIndex
    except ImportError:
        from reconciler.web.recordings import matches, scan  # type: ignore[attr-defined,unused-ignore]

        def listed(chosen: dict[str, str], offset: int) -> int:
            found, _ = scan(root, "acme", names)
            shown = [r for r in found if matches(r, chosen)]
            return len(shown[offset : offset + PAGE])

        return "previous (scan per request)", listed
    index = RecordingIndex(root, fresh_for=fresh)
    key = (DOMAIN, tuple(sorted(TEMPLATES.items())))

    def indexed(chosen: dict[str, str], offset: int) -> int:
        found = index.read("acme", names, key)
        if getattr(found, "indexing", False):
            return -1 - len(found.newest_first)  # a partial answer: what was indexed so far
        shown = found.select(chosen)
        return len(shown[offset : offset + PAGE])

    return f"index, a look at the disk trusted {fresh:g} s", indexed


def listing(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _populate(root, args.count)
        label, listed = _lister(root, args.fresh)
        time.sleep(3)  # the directories just written settle (no longer "racy")
        started = time.perf_counter()
        partial = listed({}, 0)
        cold = (time.perf_counter() - started) * 1000
        first = f"the first listing {cold:.0f} ms"
        if partial < 0:  # answered before the walk was over: the rounds start once it is
            while listed({}, 0) < 0:
                time.sleep(0.01)
            whole = (time.perf_counter() - started) * 1000
            first += (
                f" ({-1 - partial} indexed so far, 'still indexing'; whole after {whole:.0f} ms)"
            )
        requests = _requests()
        times: list[float] = []
        cpu: list[float] = []  # the request's own CPU: what a loaded machine's waits hide
        arrived = 0
        for n in range(args.rounds):
            if args.arrive_every and n % args.arrive_every == args.arrive_every - 1:
                day = root / "acme" / "support" / "2026-11-28"
                (day / f"{_uuid(args.count + arrived)}.wav").write_bytes(b"RIFF" + bytes(60))
                arrived += 1
            chosen, offset = requests[n % len(requests)]
            started, cpu_started = time.perf_counter(), time.thread_time()
            listed(chosen, offset)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - cpu_started) * 1000)
        times.sort()
        cpu.sort()
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        print(
            f"listing {args.count} recordings ({label}, {args.rounds} pages, a new recording "
            f"every {args.arrive_every}): p50 {statistics.median(times):.1f} ms, "
            f"p99 {p99:.1f} ms, max {times[-1]:.1f} ms; {first}; "
            f"the request's own CPU p50 {statistics.median(cpu):.2f} ms, "
            f"p99 {cpu[min(len(cpu) - 1, int(0.99 * len(cpu)))]:.2f} ms"
        )


# -- streaming -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  types {{ audio/wav wav; }}
  server {{
    listen 127.0.0.1:{port};
    root {root};
    add_header Cache-Control no-store;
  }}
}}
"""
    )
    process = subprocess.Popen([shutil.which("nginx") or "nginx", "-c", str(conf)])
    return process, port


def _aiohttp_server(root: Path, port: int) -> None:
    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        return await file_response(request, open_tenant_file(root, "acme", path))

    app = web.Application()
    app.router.add_get("/acme/{path:.+}", serve)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _wait_for(port: int) -> None:
    for _ in range(1200):  # a loaded machine takes its time to import aiohttp
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _fetch(urls: Sequence[str]) -> float:
    """Fetch every url at once with curl; total bytes per second."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["curl", "-fsS", "-o", "/dev/null", "-w", "%{size_download}", url],
            stdout=subprocess.PIPE,
        )
        for url in urls
    ]
    sizes = [int(p.communicate()[0] or 0) for p in procs]
    elapsed = time.perf_counter() - started
    if len(set(sizes)) != 1 or not sizes[0]:
        raise RuntimeError(f"incomplete downloads: {sizes} bytes ({urls[0]})")
    return sum(sizes) / elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (nginx's workers), from /proc."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    total = 0
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def stream(args: argparse.Namespace) -> None:
    if shutil.which("nginx") is None or shutil.which("curl") is None:
        print("stream: skipped (nginx or curl not installed; apt-get install -y nginx-light curl)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers run as another user when started as root
        root, work = Path(tmp) / "recordings", Path(tmp) / "nginx"
        (root / "acme").mkdir(parents=True)
        work.mkdir()
        audio = root / "acme" / "call.wav"
        with audio.open("wb") as out:
            out.write(random.randbytes(args.size_mb * 1024 * 1024))
        ours_port = _free_port()
        ours = subprocess.Popen(
            [sys.executable, __file__, "serve", str(root), str(ours_port)],
        )
        nginx, nginx_port = _nginx(root, work)
        try:
            _wait_for(ours_port)
            _wait_for(nginx_port)
            results: dict[str, dict[int, list[float]]] = {"tenant_files": {}, "nginx": {}}
            cpu: dict[str, float] = {"tenant_files": 0.0, "nginx": 0.0}
            served: dict[str, int] = {"tenant_files": 0, "nginx": 0}
            servers = (("tenant_files", ours_port, ours.pid), ("nginx", nginx_port, nginx.pid))
            for _ in range(args.rounds):
                for name, port, pid in servers:
                    for parallel in (1, args.parallel):
                        url = f"http://127.0.0.1:{port}/acme/call.wav"
                        before = _cpu_seconds(pid)
                        rate = _fetch([url] * parallel)
                        cpu[name] += _cpu_seconds(pid) - before
                        served[name] += parallel * args.size_mb * 1024 * 1024
                        results[name].setdefault(parallel, []).append(rate)
            for name, by_parallel in results.items():
                for parallel, rates in by_parallel.items():
                    print(
                        f"stream {args.size_mb} MB, {parallel} at once, {name}: median "
                        f"{statistics.median(rates) / 1e6:.0f} MB/s "
                        f"(rounds: {', '.join(f'{r / 1e6:.0f}' for r in rates)})"
                    )
                print(f"server CPU per GB served, {name}: {cpu[name] / (served[name] / 1e9):.2f} s")
        finally:
            for process in (ours, nginx):
                process.terminate()
                process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listed = commands.add_parser("listing")
    listed.add_argument("--count", type=int, default=10_000)
    listed.add_argument("--rounds", type=int, default=400)
    listed.add_argument("--arrive-every", type=int, default=20)
    listed.add_argument("--fresh", type=float, default=1.0, help="the portal's default is 1 s")
    streamed = commands.add_parser("stream")
    streamed.add_argument("--size-mb", type=int, default=100)
    streamed.add_argument("--rounds", type=int, default=3)
    streamed.add_argument("--parallel", type=int, default=4)
    served = commands.add_parser("serve")  # the aiohttp side of ``stream``, in its own process
    served.add_argument("root", type=Path)
    served.add_argument("port", type=int)
    args: Any = parser.parse_args(argv)
    if args.command == "listing":
        listing(args)
    elif args.command == "stream":
        stream(args)
    else:
        _aiohttp_server(args.root, args.port)


if __name__ == "__main__":
    main()

"""The data plane: the in-memory snapshot vs the mapped generation, and xml_curl over HTTP
answered in process vs by worker processes.

    python bench/bench_dataplane.py [tenants] [users] [lookups]      # answer() cost
    python bench/bench_dataplane.py http [workers] [seconds]         # over HTTP
    python bench/bench_dataplane.py passes [tenants] [seconds]       # during full passes
    BENCH_BASE=DIR python bench/bench_dataplane.py rss [tenants]     # control plane RSS
    BENCH_BASE=DIR python bench/bench_dataplane.py startup [tenants] # start to serving

The first: a synthetic served view (tenants x users built directly as served records),
directory lookups through ``xmlcurl.answer`` (the template render included; no cache),
interleaved rounds. ``http``: 1,000 x 100 (``bench_xmlcurl.build_bench_snapshot``), the
captured sip_auth body over 1,000 x 100 users, ``Connection: close`` (FreeSWITCH's mode),
one connection (p50/p99/max) and 16 (lookups/s); the in-process server
(``bench_xmlcurl.py serve``) and N workers on one socket over the same data as a
generation file, interleaved, two rounds each. The client is Python on the same 2 cores:
figures compare the two, they are not the server's ceiling. ``passes``: a real ``pbx run``
on a scratch database (127.0.0.1:5432) with ``tenants`` x 100 extensions
(``bench_validate.tenant_yaml``), one lookup at a time with close while the daemon gets
SIGHUP (a full pass) every 5 s; ``--xml-curl-workers 0`` and ``2`` interleaved, two rounds.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.core.identity import DatabaseIdentity
from reconciler.dataplane.board import Board
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.snapshot import DirectoryUser, ServedTenant, Snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import answer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))  # interleaved rounds of http and passes
ID = DatabaseIdentity("1", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")


def synthetic(tenants: int, users: int) -> Snapshot:
    served = {}
    for t in range(tenants):
        domain = f"t{t}.example.com"
        us = {
            str(1000 + u): DirectoryUser(
                str(1000 + u), "0" * 32, f"User {u}", str(1000 + u), 3, 30, ()
            )
            for u in range(users)
        }
        served[domain] = ServedTenant(f"t{t}", domain, None, None, MappingProxyType(us))
    return Snapshot(generation="bench", tenants=MappingProxyType(served))


def run(view: object, forms: list[dict[str, str]], templates: object) -> list[float]:
    times = []
    for form in forms:
        started = time.perf_counter()
        answer(view, form, templates)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    tenants, users, lookups = (int(a) for a in ([*sys.argv[1:], "1000", "100", "20000"])[:3])
    snapshot = synthetic(tenants, users)
    path = Path(tempfile.mkdtemp()) / "g"
    started = time.perf_counter()
    write_generation(snapshot, path, identity=ID, dsn_fingerprint="fp")
    print(f"write {time.perf_counter() - started:.2f} s, {path.stat().st_size / 1e6:.1f} MB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    mapped = open_generation(path, dsn_fingerprint="fp")
    print(f"open+verify {1000 * (time.perf_counter() - started):.1f} ms")
    templates = load_templates()
    rng = random.Random(1)
    forms = [
        {"section": "directory", "user": str(1000 + rng.randrange(users)),
         "domain": f"t{rng.randrange(tenants)}.example.com", "key_value": ""}
        for _ in range(lookups)
    ]  # fmt: skip
    results: dict[str, list[float]] = {"memory": [], "mapped": []}
    for _round in range(4):  # interleaved
        results["memory"] += run(snapshot, forms, templates)
        results["mapped"] += run(mapped, forms, templates)
    for name, times in results.items():
        times.sort()
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
        print(
            f"{name}: {len(times) / sum(times):,.0f} lookups/s, p50 {p50 * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us"
        )
    print(f"max RSS of this process (snapshot in heap + mapping): {rss / 1024:.0f} MB")


# --- over HTTP ----------------------------------------------------------------------------


async def _one(port: int, request: bytes) -> float:
    import asyncio

    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = await reader.read()
    writer.close()
    if b"200 OK" not in data[:20] or b"a1-hash" not in data:
        raise RuntimeError(f"unexpected answer: {data[:200]!r}")
    return time.perf_counter() - started


async def _drive(port: int, requests: list[bytes], connections: int, seconds: float) -> list[float]:
    import asyncio

    times: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            times.append(await _one(port, requests[index % len(requests)]))
            index += connections

    await asyncio.gather(*(client(i) for i in range(connections)))
    return times


def _requests(count: int) -> list[bytes]:
    sys.path.insert(0, str(Path(__file__).parent))
    import base64
    import json

    from bench_xmlcurl import CAPTURE, CREDENTIALS, domain_of, sip_auth_body

    template = json.loads(CAPTURE.read_text())["body"]
    auth = base64.b64encode(":".join(CREDENTIALS).encode()).decode()
    rng = random.Random(2)
    out = []
    for _ in range(count):
        body = sip_auth_body(
            template, domain_of(rng.randrange(1000)), str(1000 + rng.randrange(100))
        )
        out.append(
            (f"POST /freeswitch/xml HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
             f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        )  # fmt: skip
    return out


def _wait(port: int, path: str = "/readyz", timeout: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server never ready")


def _start_inprocess(port: int) -> Any:
    import subprocess

    here = Path(__file__).parent
    return subprocess.Popen([sys.executable, str(here / "bench_xmlcurl.py"), "serve", "--port",
                             str(port), "--uvloop"], stdout=subprocess.DEVNULL)  # fmt: skip


def _start_workers(count: int, generation: Path) -> tuple[int, list[Any]]:
    import json
    import socket
    import subprocess

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_xmlcurl import CREDENTIALS

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    board = Board.create(count)
    settings = {"fd": sock.fileno(), "generation_path": str(generation), "dsn_fingerprint": "fp",
                "auth": list(CREDENTIALS), "templates_dir": None, "board_fd": board.fd}  # fmt: skip
    procs = []
    for slot in range(count):
        proc = subprocess.Popen([sys.executable, "-m", "reconciler.dataplane.worker"],
                                stdin=subprocess.PIPE, pass_fds=(sock.fileno(), board.fd),
                                stderr=subprocess.DEVNULL)  # fmt: skip
        proc.stdin.write(json.dumps({**settings, "slot": slot}).encode() + b"\n")
        proc.stdin.close()
        procs.append(proc)
    port = sock.getsockname()[1]
    sock.close()
    return port, procs


def _private_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {"rss": fields["Rss"], "pss": fields["Pss"],
            "private": fields["Private_Clean"] + fields["Private_Dirty"]}  # fmt: skip


def http_main(workers: int, seconds: float) -> None:
    import asyncio
    import socket

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_xmlcurl import build_bench_snapshot

    generation = Path(tempfile.mkdtemp()) / "g"
    write_generation(build_bench_snapshot(1000, 100), generation, identity=ID, dsn_fingerprint="fp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        inproc_port = s.getsockname()[1]
    inproc = _start_inprocess(inproc_port)
    worker_port, procs = _start_workers(workers, generation)
    requests = _requests(5000)
    try:
        _wait(inproc_port)
        _wait(worker_port)
        for round_ in range(ROUNDS):  # interleaved; one line per run (medians: by hand)
            for name, port in (("in-process", inproc_port), (f"{workers} workers", worker_port)):
                for conns in (1, 16):
                    times = sorted(asyncio.run(_drive(port, requests, conns, seconds)))
                    print(f"round {round_}, {name}, {conns} conn, close: "
                          f"{len(times) / seconds:,.0f} lookups/s, "
                          f"p50 {times[len(times) // 2] * 1e3:.2f} ms, "
                          f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms, "
                          f"max {times[-1] * 1e3:.1f} ms", flush=True)  # fmt: skip
        print(f"in-process server memory (kB): {_private_kb(inproc.pid)}")
        for proc in procs:
            print(f"worker {proc.pid} memory (kB): {_private_kb(proc.pid)}")
    finally:
        for proc in [inproc, *procs]:
            proc.terminate()
            proc.wait()


# --- during full passes ------------------------------------------------------------------


def _spawn_daemon(
    dsn: str, tenants: Path, state: Path, workers: int, cwd: str | None = None
) -> tuple[Any, int, int]:
    import os
    import socket
    import subprocess

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    env = {**os.environ, "PBX_DATABASE_URL": dsn, "PBX_FREESWITCH": "127.0.0.1:1:ClueCon",
           "PBX_INTERVAL": "3600", "PBX_XML_CURL_AUTH": "freeswitch:bench-secret"}  # fmt: skip
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{ports[0]}",
               "--status-listen", f"127.0.0.1:{ports[1]}", "--no-portal",
               "--xml-curl-workers", str(workers), "--tenants", str(tenants),
               "--state-dir", str(state)]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd)  # fmt: skip
    return proc, ports[0], ports[1] if workers else ports[0]


def _sip_auth(domain: str, user: str) -> bytes:
    import base64

    auth = base64.b64encode(b"freeswitch:bench-secret").decode()
    body = (f"hostname=b&section=directory&tag_name=domain&key_name=name&key_value={domain}"
            f"&action=sip_auth&user={user}&domain={domain}")  # fmt: skip
    return (f"POST /freeswitch/xml HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()  # fmt: skip


def _during_passes(proc: Any, port: int, tenants: int, seconds: float) -> list[float]:
    import asyncio
    import signal
    import threading

    stop = threading.Event()

    def hup() -> None:
        while not stop.wait(5.0):
            proc.send_signal(signal.SIGHUP)

    thread = threading.Thread(target=hup)
    rng = random.Random(3)
    requests = [_sip_auth(f"t{rng.randrange(tenants):05d}.example.net",
                          str(1000 + rng.randrange(100))) for _ in range(2000)]  # fmt: skip
    thread.start()
    try:
        return asyncio.run(_drive(port, requests, 1, seconds))
    finally:
        stop.set()
        thread.join()


def passes_main(tenants: int, seconds: float) -> None:
    import asyncio
    import shutil
    import signal
    import uuid

    import psycopg
    from psycopg import sql

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_validate import tenant_yaml

    server = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"pbx_bench_dp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-dp-"))
    (root / "tenants.d").mkdir()
    for i in range(tenants):
        (root / "tenants.d" / f"t{i:05d}.yaml").write_text(tenant_yaml(i, 100))
    last = _sip_auth(f"t{tenants - 1:05d}.example.net", "1099")
    try:
        for round_ in range(ROUNDS):
            for workers in (0, 2):
                proc, port, _status = _spawn_daemon(dsn, root / "tenants.d",
                                                    root / f"state-{workers}-{round_}", workers)  # fmt: skip
                try:
                    deadline = time.monotonic() + 600
                    while time.monotonic() < deadline:
                        try:
                            asyncio.run(_one(port, last))
                            break
                        except (OSError, RuntimeError):
                            time.sleep(0.5)
                    times = sorted(_during_passes(proc, port, tenants, seconds))
                    print(f"workers={workers} round {round_}: {len(times)} lookups during "
                          f"SIGHUP every 5 s: p50 {times[len(times) // 2] * 1e3:.2f} ms, "
                          f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms, "
                          f"max {times[-1] * 1e3:.1f} ms", flush=True)  # fmt: skip
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


# --- control plane memory ---------------------------------------------------------------


def _rss_kb(pid: int) -> dict[str, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def _status(status_port: int) -> dict[str, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status", timeout=5) as r:
        return dict(json.loads(r.read()))


def _settled(status_port: int, users: int, trigger: str = "", timeout: float = 900.0) -> None:
    """A pass ended ok (its trigger naming ``trigger``) and ``users`` are served."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = _status(status_port)
            last = status.get("last_pass") or {}
            served = (status.get("snapshot") or {}).get("users")
            if (
                last.get("result") == "ok"
                and trigger in str(last.get("trigger"))
                and served == users
            ):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no {trigger or 'first'} pass")


def worker_memory_kb(pid: int, state: Path) -> dict[str, int]:
    """A worker's PSS, and its PSS without the generation's mapped pages (shared with the
    page cache and the other workers), from ``/proc/PID/smaps``."""
    pss = snapshot = 0
    mapping = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
            mapping = head[5] if len(head) == 6 else ""
        elif line.startswith("Pss:"):
            kb = int(line.split()[1])
            pss += kb
            if mapping.startswith(str(state)):
                snapshot += kb
    return {"pss": pss, "snapshot_pss": snapshot, "private_pss": pss - snapshot}


def rss_main(tenants: int) -> None:
    """The control plane's RSS (current and peak) with 2 workers after its first pass and
    after a SIGHUP pass, and each worker's memory: this tree against ``BENCH_BASE`` (a tree
    of an earlier commit, put first on the daemon's PYTHONPATH), interleaved,
    ``BENCH_ROUNDS`` rounds."""
    import shutil
    import signal

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_validate import tenant_yaml

    root = Path(tempfile.mkdtemp(prefix="pbx-bench-rss-"))
    (root / "tenants.d").mkdir()
    for i in range(tenants):
        (root / "tenants.d" / f"t{i:05d}.yaml").write_text(tenant_yaml(i, 100))
    base = os.environ.get("BENCH_BASE", "")
    try:
        with _database("pbx_bench_rss") as dsn:
            for round_ in range(ROUNDS):
                for label, path in (("base", base), ("this", "")):
                    if label == "base" and not base:
                        continue
                    os.environ["PYTHONPATH"] = path  # python -m puts the cwd first: that tree
                    state = root / f"state-{label}-{round_}"
                    proc, _port, status = _spawn_daemon(
                        dsn, root / "tenants.d", state, 2,
                        cwd=path or str(Path(__file__).parent.parent),
                    )  # fmt: skip
                    try:
                        _settled(status, tenants * 100)
                        time.sleep(3)
                        first = _rss_kb(proc.pid)
                        proc.send_signal(signal.SIGHUP)
                        _settled(status, tenants * 100, "sighup")
                        time.sleep(3)
                        after = _rss_kb(proc.pid)
                        print(f"{label} round {round_}: control plane after the first pass "
                              f"RSS {first['VmRSS'] / 1024:.0f} MB; after a SIGHUP pass RSS "
                              f"{after['VmRSS'] / 1024:.0f} MB, peak {after['VmHWM'] / 1024:.0f} "
                              f"MB (load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
                        pid_file = state / "xmlcurl-workers.pid"
                        for pid in (int(p) for p in pid_file.read_text().split()):
                            memory = {k: round(v / 1024, 1)
                                      for k, v in worker_memory_kb(pid, state).items()}  # fmt: skip
                            print(f"  worker {pid} (MB): {memory} rss "
                                  f"{_rss_kb(pid)['VmRSS'] / 1024:.0f}", flush=True)  # fmt: skip
                    finally:
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(timeout=60)
    finally:
        os.environ.pop("PYTHONPATH", None)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _database(prefix: str) -> Iterator[str]:
    """``BENCH_DSN`` (a database holding ``tenants`` x 100 applied already: a cold apply at
    1,000 x 100 takes 10-25 min on the loaded machine), else a scratch one, dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    if os.environ.get("BENCH_DSN"):
        yield os.environ["BENCH_DSN"]
        return
    server = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


def _first_answer(port: int, request: bytes, timeout: float = 300.0) -> float:
    """Seconds until ``request`` is answered with a user (polled every 10 ms)."""
    import asyncio

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            asyncio.run(_one(port, request))
            return time.monotonic() - started
        except (OSError, RuntimeError):
            time.sleep(0.01)
    raise RuntimeError("never answered")


def _kill_daemon(proc: Any, state: Path) -> None:
    """SIGKILL ``pbx run`` and its workers: a SIGTERM would wait for its first pass (minutes
    at 1,000 x 100 on a loaded machine), which a start-up measure does not need."""
    import signal

    pids = [int(p) for p in (state / "xmlcurl-workers.pid").read_text().split()] if (
        state / "xmlcurl-workers.pid").exists() else []  # fmt: skip
    proc.kill()
    proc.wait()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def startup_main(tenants: int) -> None:
    """Daemon start to serving from its persisted state (2 workers), this tree against
    ``BENCH_BASE``: each first writes its state dir (round 0; skipped for a ``BENCH_ROOT``
    kept from an earlier run), then restarts are timed, interleaved: from the spawn of
    ``pbx run`` to the first lookup answered with the user."""
    import shutil

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_validate import tenant_yaml

    kept = os.environ.get("BENCH_ROOT")
    root = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="pbx-bench-start-"))
    if not kept:
        (root / "tenants.d").mkdir()
        for i in range(tenants):
            (root / "tenants.d" / f"t{i:05d}.yaml").write_text(tenant_yaml(i, 100))
    last = _sip_auth(f"t{tenants - 1:05d}.example.net", "1099")
    base = os.environ.get("BENCH_BASE", "")
    variants = [("base", base)] if base else []
    variants.append(("this", ""))
    try:
        with _database("pbx_bench_start") as dsn:
            for round_ in range(0 if not kept else 1, ROUNDS + 1):  # round 0: untimed
                for label, path in variants:
                    os.environ["PYTHONPATH"] = path
                    state = root / f"state-{label}"
                    proc, port, status = _spawn_daemon(
                        dsn, root / "tenants.d", state, 2,
                        cwd=path or str(Path(__file__).parent.parent),
                    )  # fmt: skip
                    try:
                        seconds = _first_answer(port, last)
                        if round_:
                            print(f"{label} round {round_}: start to the first answer "
                                  f"{seconds:.2f} s (load average {os.getloadavg()[0]:.1f})",
                                  flush=True)  # fmt: skip
                        else:
                            _settled(status, tenants * 100)
                    finally:
                        _kill_daemon(proc, state)
    finally:
        os.environ.pop("PYTHONPATH", None)
        if not kept:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["startup"]:
        startup_main(int((sys.argv[2:3] or ["1000"])[0]))
    elif sys.argv[1:2] == ["rss"]:
        rss_main(int((sys.argv[2:3] or ["1000"])[0]))
    elif sys.argv[1:2] == ["passes"]:
        passes_main(int((sys.argv[2:3] or ["300"])[0]), float((sys.argv[3:4] or ["30"])[0]))
    elif sys.argv[1:2] == ["http"]:
        http_main(int((sys.argv[2:3] or ["2"])[0]), float((sys.argv[3:4] or ["5"])[0]))
    else:
        main()

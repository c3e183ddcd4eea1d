"""Benchmark: save-to-served latency of one changed extension with N tenants loaded, the way
production runs: ``pbx run`` as a process of its own with 2 xml_curl workers, the lookups
sent to the workers' port.

It applies N tenants x M extensions (or takes ``--dsn``, a database holding them applied
already: a cold apply at 1,000 x 100 takes 10-25 min on a loaded machine), then repeatedly
edits one tenant file (adds an extension) and measures the time from the write until a
worker answers for the new user (a fresh connection every 5 ms, like FreeSWITCH's). With
``BENCH_BASE=<tree of an earlier commit>`` that tree's daemon runs too, interleaved.

Where the time goes comes from the daemon's JSON log (this tree's; the earlier one may not
log all of it): ``served after pass`` (the pass and the generation's write, its wait for
the workers included), ``snapshot swapped`` and each worker's ``serving generation``.

    python bench/bench_save_to_served.py --tenants 1000 --extensions 100 [--dsn DSN]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dataplane import worker_memory_kb
from bench_validate import tenant_yaml

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
AUTH = "freeswitch:bench-secret"
TOP = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(domain: str, user: str) -> bytes:
    import base64

    token = base64.b64encode(AUTH.encode()).decode()
    body = (f"hostname=b&section=directory&tag_name=domain&key_name=name&key_value={domain}"
            f"&action=sip_auth&user={user}&domain={domain}")  # fmt: skip
    return (f"POST /freeswitch/xml HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()  # fmt: skip


def served(port: int, domain: str, user: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(_request(domain, user))
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except OSError:
        return False
    return f'<user id="{user}"'.encode() in b"".join(chunks)


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return dict(json.loads(r.read()))


def _wait_settled(status_port: int, users: int, timeout: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            status = _status(status_port)
            last = status.get("last_pass") or {}
            if last.get("result") == "ok" and (status.get("snapshot") or {}).get("users") == users:
                return
        time.sleep(0.5)
    raise RuntimeError("the daemon never settled")


@contextlib.contextmanager
def daemon(
    dsn: str, tenants: Path, state: Path, log: Path, tree: str
) -> Iterator[tuple[int, int, int]]:
    port, status = _port(), _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {"PBX_DATABASE_URL": dsn, "PBX_INTERVAL": "3600", "PBX_XML_CURL_AUTH": AUTH,
            "PYTHONPATH": tree}  # fmt: skip
    command = [sys.executable, "-m", "reconciler", "--log-format", "json", "run",
               "--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status}",
               "--no-portal", "--xml-curl-workers", "2", "--tenants", str(tenants),
               "--state-dir", str(state)]  # fmt: skip
    with log.open("wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                cwd=tree or str(TOP))  # fmt: skip
        try:
            yield port, status, proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


def _memory(pid: int, state: Path) -> str:
    """The control plane's RSS and peak, each worker's PSS and its PSS without the mapped
    generation (shared through the page cache), in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    out = [f"control plane RSS {int(fields['VmRSS'].split()[0]) // 1024}, "
           f"peak {int(fields['VmHWM'].split()[0]) // 1024}"]  # fmt: skip
    for worker in (int(p) for p in (state / "xmlcurl-workers.pid").read_text().split()):
        kb = worker_memory_kb(worker, state)
        out.append(f"worker PSS {kb['pss'] / 1024:.0f}, without the generation "
                   f"{kb['private_pss'] / 1024:.0f}")  # fmt: skip
    return "; ".join(out)


def _events(log: Path, since: float) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("ts", 0) >= since:
                out.append(record)
    return out


def _breakdown(log: Path, t0: float) -> str:
    """From the write at ``t0`` (epoch): pass start, pass, generation written and swapped,
    the workers serving it."""
    events = _events(log, t0)
    after = next((e for e in events if e["msg"] == "served after pass"), None)
    swapped = next((e for e in events if e["msg"] == "snapshot swapped"), None)
    serving = [e["ts"] for e in events if e["msg"] == "serving generation"]
    parts = []
    if after is not None:
        start = after["ts"] - after["serve_s"] - after["pass_s"] - after["wait_s"]
        parts.append(f"to pass start {start - t0:.3f}")
        parts.append(f"pass {after['pass_s']:.3f} ({after.get('trigger', '?')})")
    if swapped is not None and after is not None:
        parts.append(f"generation swapped +{swapped['ts'] - (after['ts'] - after['serve_s']):.3f}")
    if swapped is not None and serving:
        parts.append(f"workers serving +{max(serving[:2]) - swapped['ts']:.3f}")
    return ", ".join(parts)


def run(args: argparse.Namespace, dsn: str, root: Path) -> None:
    tenants_dir = root / "tenants.d"
    tenants_dir.mkdir()
    for i in range(args.tenants):
        (tenants_dir / f"t{i:05d}.yaml").write_text(tenant_yaml(i, args.extensions))
    base = os.environ.get("BENCH_BASE", "")
    variants = ([("base", base)] if base else []) + [("this", "")]
    samples: dict[str, list[float]] = {label: [] for label, _ in variants}
    users = args.tenants * args.extensions
    number = 5000
    target = tenants_dir / "t00000.yaml"
    for round_ in range(args.rounds):
        for label, tree in variants:
            log = root / f"{label}-{round_}.log"
            started = time.perf_counter()
            state = root / f"state-{label}"
            with daemon(dsn, tenants_dir, state, log, tree) as (port, status, pid):
                _wait_settled(status, users)
                print(f"{label} round {round_}: settled after {time.perf_counter() - started:.1f}"
                      " s", flush=True)  # fmt: skip
                for _ in range(args.edits):
                    number += 1
                    users += 1
                    text = target.read_text().replace(
                        "extensions:\n",
                        f'extensions:\n  - {{number: "{number}", name: "New {number}"}}\n', 1
                    )  # fmt: skip
                    t0_epoch, t0 = time.time(), time.perf_counter()
                    target.write_text(text)
                    while not served(port, "t00000.example.net", str(number)):
                        time.sleep(0.005)
                    seconds = time.perf_counter() - t0
                    samples[label].append(seconds)
                    time.sleep(1.0)  # the logs of this edit are written
                    print(f"  {label}: {seconds:.3f} s ({_breakdown(log, t0_epoch)}; load "
                          f"{os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
                    time.sleep(0.5)
                print(f"  {label} memory: {_memory(pid, state)}", flush=True)
    for label, values in samples.items():
        print(f"{label}: save_to_served_s median={statistics.median(values):.3f} "
              f"min={min(values):.3f} max={max(values):.3f} edits={len(values)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="daemon runs per variant")
    parser.add_argument("--edits", type=int, default=5, help="edits per daemon run")
    parser.add_argument("--dsn", help="a database holding the tenants applied already")
    parser.add_argument("--server-dsn", default=SERVER, help="server where a scratch DB is created")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-s2s-"))
    name = None
    dsn = args.dsn
    if dsn is None:
        name = f"pbx_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        info = psycopg.conninfo.conninfo_to_dict(args.server_dsn)
        info["dbname"] = name
        dsn = psycopg.conninfo.make_conninfo(**info)
    try:
        run(args, dsn, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if name is not None:
            with psycopg.connect(args.server_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


if __name__ == "__main__":
    main()

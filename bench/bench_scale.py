"""The next scale (issue 17), measured once: N tenants x 100 extensions from YAML files.

    python bench/bench_scale.py --tenants 10000 [--workers 2] [--lookup-seconds 20]

Builds N tenant files (``bench_validate.tenant_yaml``: 100 extensions and users, 10 agents,
5 queues of 10 tiers, one DID) in a temp dir, applies them cold with ``pbx apply --yes``
into a fresh database, then starts ``pbx run --xml-curl-workers W`` on that database and
measures: start to serving, lookups one at a time with ``Connection: close`` (p50 / p99 /
max), one edited extension's save-to-served, the control plane's RSS (current and peak) and
each worker's, and the generation's size on disk. Everything runs at ``nice 10`` (the
machine is shared); the database and the temp dir are dropped at the end, whatever happens.
It refuses to start with less than ``--min-free-gb`` free where the database and the files
live. The progress of the cold apply (tenants committed per minute) is printed every 30 s,
so a run can be stopped early and extrapolated.

    python bench/bench_scale.py schemas [count] [--database NAME]

Schema creation alone, rolled back, 3 interleaved rounds of ``count``: the migrations
replayed one statement at a time (``create_tenant_schema``) against the writer's one round
trip, in a fresh database, and with ``--database`` also the first in that database (one
holding many tenants: the catalog's size).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dataplane import _drive, _private_kb, _rss_kb, _settled, _sip_auth, _spawn_daemon
from bench_validate import tenant_yaml

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent


def _free_gb(path: str) -> float:
    return shutil.disk_usage(path).free / 1e9


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


@contextmanager
def _scratch_database(server: str) -> Iterator[str]:
    name = f"pbx_bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(server)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        print(f"dropped database {name}", flush=True)


def _count_applied(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pbx.tenants WHERE last_result = 'applied'"
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def cold_apply(dsn: str, tenants_dir: Path, tenants: int, log: Path) -> tuple[float, float]:
    """``pbx apply --yes`` as a process: its wall seconds and peak RSS (MB)."""
    env = {**os.environ, "PBX_DATABASE_URL": dsn}
    command = [sys.executable, "-m", "reconciler", "apply", "--yes", "--tenants", str(tenants_dir)]
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        done = threading.Event()

        def progress() -> None:
            while not done.wait(30.0):
                count = _count_applied(dsn)
                minutes = (time.monotonic() - started) / 60
                print(
                    f"  cold apply: {minutes:.1f} min, {count} tenant(s) committed, load {_load()}",
                    flush=True,
                )

        watcher = threading.Thread(target=progress, daemon=True)
        watcher.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"pbx apply exited {proc.returncode}:\n" + "\n".join(tail))
    return seconds, usage.ru_maxrss / 1024


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def _sizes(state: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in state.iterdir() if p.is_file()}


def _served(port: int, domain: str, user: str) -> bool:
    from bench_dataplane import _one

    try:
        asyncio.run(_one(port, _sip_auth(domain, user)))
        return True
    except (OSError, RuntimeError):
        return False


def save_to_served(tenants_dir: Path, port: int, rounds: int) -> list[float]:
    """Add one extension to the first tenant's file; seconds until a worker answers for it."""
    samples = []
    target = tenants_dir / "t00000.yaml"
    for n in range(rounds):
        number = str(5000 + n)
        text = target.read_text().replace(
            "extensions:\n", f'extensions:\n  - {{number: "{number}", name: "New {n}"}}\n', 1
        )
        started = time.monotonic()
        target.write_text(text)
        while not _served(port, "t00000.example.net", number):
            if time.monotonic() - started > 300:
                raise RuntimeError(f"extension {number} never served")
            time.sleep(0.01)
        samples.append(time.monotonic() - started)
        time.sleep(1.0)
    return samples


def serve_and_measure(
    dsn: str, root: Path, tenants: int, workers: int, seconds: float, rounds: int
) -> None:
    state = root / "state"
    started = time.monotonic()
    proc, port, status_port = _spawn_daemon(dsn, root / "tenants.d", state, workers)
    try:
        _settled(status_port, tenants * 100, timeout=3600)
        print(
            f"pbx run: start to serving every user (its first full pass) "
            f"{time.monotonic() - started:.1f} s, load {_load()}",
            flush=True,
        )
        time.sleep(3)
        rng = random.Random(17)
        requests = [
            _sip_auth(f"t{rng.randrange(tenants):05d}.example.net", str(1000 + rng.randrange(100)))
            for _ in range(5000)
        ]
        for round_ in range(2):
            times = sorted(asyncio.run(_drive(port, requests, 1, seconds)))
            print(
                f"lookups, 1 connection, close, idle, round {round_ + 1}: {len(times)} in "
                f"{seconds:.0f} s, p50 {times[len(times) // 2] * 1e3:.2f} ms, "
                f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms, "
                f"max {times[-1] * 1e3:.1f} ms, load {_load()}",
                flush=True,
            )
        samples = save_to_served(root / "tenants.d", port, rounds)
        print(
            "save-to-served, one extension added: "
            + ", ".join(f"{s:.2f}" for s in samples)
            + f" s (median {sorted(samples)[len(samples) // 2]:.2f} s), load {_load()}",
            flush=True,
        )
        rss = _rss_kb(proc.pid)
        print(
            f"control plane: RSS {rss['VmRSS'] / 1024:.0f} MB, peak {rss['VmHWM'] / 1024:.0f} MB",
            flush=True,
        )
        for pid in _children(proc.pid):
            try:
                kb = _private_kb(pid)
            except (OSError, KeyError):
                continue
            print(
                f"child {pid}: RSS {kb['rss'] / 1024:.0f} MB, PSS {kb['pss'] / 1024:.0f} MB, "
                f"private {kb['private'] / 1024:.0f} MB",
                flush=True,
            )
        sizes = _sizes(state)
        total = sum(v for k, v in sizes.items() if "generation" in k)
        print(
            f"generation on disk: {total / 1e6:.1f} MB ("
            + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items()))
            + ")",
            flush=True,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lookup-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5, help="save-to-served edits")
    parser.add_argument("--server-dsn", default=SERVER)
    parser.add_argument("--min-free-gb", type=float, default=20.0)
    parser.add_argument("--apply-only", action="store_true", help="stop after the cold apply")
    args = parser.parse_args()
    os.nice(10)  # inherited by pbx apply, pbx run and its workers
    # Stopped early (a background job ignores SIGINT): still drop the database and files.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(f"stopped by signal; load {_load()}"))
    tmp = tempfile.gettempdir()
    with psycopg.connect(args.server_dsn, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        data_dir = str(row[0]) if row else "/"
        locks = conn.execute("SHOW max_locks_per_transaction").fetchone()
    for path in {tmp, data_dir}:
        if _free_gb(path) < args.min_free_gb:
            sys.exit(f"only {_free_gb(path):.0f} GB free at {path}: refusing")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.tenants} tenants x 100, "
        f"{args.workers} workers, {os.cpu_count()} cores, load {_load()}, "
        f"free {_free_gb(data_dir):.0f} GB, max_locks_per_transaction {locks[0] if locks else '?'}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-scale-"))
    try:
        (root / "tenants.d").mkdir()
        started = time.monotonic()
        for i in range(args.tenants):
            (root / "tenants.d" / f"t{i:05d}.yaml").write_text(tenant_yaml(i, 100))
        size = sum(p.stat().st_size for p in (root / "tenants.d").iterdir())
        print(
            f"wrote {args.tenants} files ({size / 1e6:.0f} MB) in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        with _scratch_database(args.server_dsn) as dsn:
            seconds, peak = cold_apply(dsn, root / "tenants.d", args.tenants, root / "apply.log")
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT pg_database_size(current_database()), "
                    "(SELECT count(*) FROM pg_class WHERE relkind = 'r')"
                ).fetchone()
            db_bytes, tables = row if row else (0, 0)
            print(
                f"cold pbx apply: {seconds:.1f} s ({seconds / 60:.1f} min), peak RSS "
                f"{peak:.0f} MB; database {db_bytes / 1e9:.2f} GB, {tables} tables; "
                f"load {_load()}",
                flush=True,
            )
            if not args.apply_only:
                serve_and_measure(
                    dsn, root, args.tenants, args.workers, args.lookup_seconds, args.rounds
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        print(f"removed {root}; load {_load()}", flush=True)


def schemas_main(count: int, database: str | None) -> None:
    from reconciler.store.migrations import create_tenant_schema, migrate
    from reconciler.store.writer import TenantWriter

    def one_by_one(conn: psycopg.Connection, tenant_id: str) -> None:
        create_tenant_schema(conn, tenant_id)

    def one_trip(conn: psycopg.Connection, tenant_id: str) -> None:
        TenantWriter(conn, tenant_id, f"{tenant_id}.example.net")._create_schema()

    os.nice(10)
    with _scratch_database(SERVER) as dsn, psycopg.connect(dsn, autocommit=True) as fresh:
        migrate(fresh)
        runs = [("fresh, one by one", fresh, one_by_one), ("fresh, one trip", fresh, one_trip)]
        if database:
            big = psycopg.connect(SERVER.rsplit("/", 1)[0] + f"/{database}", autocommit=True)
            runs.append((f"{database}, one by one", big, one_by_one))
        for round_ in range(3):
            for label, conn, create in runs:
                started = time.perf_counter()
                for k in range(count):
                    try:
                        with conn.transaction():
                            create(conn, f"bench_{round_}_{k}")
                            raise LookupError  # rolled back: nothing is left behind
                    except LookupError:
                        pass
                per = (time.perf_counter() - started) / count * 1e3
                print(f"round {round_ + 1}, {label}: {per:.0f} ms per schema, load {_load()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["schemas"]:
        rest = sys.argv[2:]
        database = rest[rest.index("--database") + 1] if "--database" in rest else None
        schemas_main(int(rest[0]) if rest and rest[0].isdigit() else 30, database)
    else:
        main()

"""Benchmark: save-to-served latency of one changed extension with N tenants loaded.

Starts the real daemon (in process, its own event loop) on a fresh database, lets it apply
N tenants x M extensions, then repeatedly edits one tenant file (adds an extension) and
measures the time until xml_curl answers for the new user.

    python bench/bench_save_to_served.py --tenants 1000 --extensions 100 [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validate import tenant_yaml

from reconciler.daemon.root import Daemon, DaemonConfig

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def form(domain: str, user: str) -> dict[str, str]:
    return {
        "hostname": "bench",
        "section": "directory",
        "tag_name": "domain",
        "key_name": "name",
        "key_value": domain,
        "action": "sip_auth",
        "user": user,
        "domain": domain,
    }


async def served(session: aiohttp.ClientSession, port: int, domain: str, user: str) -> bool:
    async with session.post(
        f"http://127.0.0.1:{port}/freeswitch/xml", data=form(domain, user)
    ) as r:
        return f'<user id="{user}"' in await r.text()


async def run(args: argparse.Namespace, dsn: str, root: Path) -> None:
    tenants_dir = root / "tenants.d"
    tenants_dir.mkdir()
    for i in range(args.tenants):
        (tenants_dir / f"t{i:05d}.yaml").write_text(tenant_yaml(i, args.extensions))
    port = 18000 + (uuid.uuid4().int % 2000)
    daemon = Daemon(
        DaemonConfig(
            tenants_dir=tenants_dir,
            database_url=dsn,
            listen_port=port,
            nodes=(),
            interval=3600,
            state_dir=root / "state",
            install_signal_handlers=False,
            debounce_ms=50,
        )
    )
    task = asyncio.create_task(daemon.run())
    await daemon.serving.wait()
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        last = args.tenants - 1
        while not await served(session, port, f"t{last:05d}.example.net", "1000"):
            await asyncio.sleep(0.2)
        cold = time.perf_counter() - started
        print(f"daemon_cold_apply_s={cold:.1f} extensions={args.tenants * args.extensions}")
        samples = []
        for n in range(args.rounds):
            target = tenants_dir / "t00000.yaml"
            number = str(5000 + n)
            text = target.read_text().replace(
                "extensions:\n", f'extensions:\n  - {{number: "{number}", name: "New {n}"}}\n', 1
            )
            t0 = time.perf_counter()
            target.write_text(text)
            while not await served(session, port, "t00000.example.net", number):
                await asyncio.sleep(0.005)
            samples.append(time.perf_counter() - t0)
            await asyncio.sleep(0.3)
    daemon.request_stop()
    await task
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"save_to_served_s median={statistics.median(samples):.3f} max={max(samples):.3f} "
        f"rounds={len(samples)} (includes the {50} ms debounce)"
    )
    print(f"peak_rss_mb={rss:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server-dsn", default=SERVER, help="server where a scratch DB is created")
    args = parser.parse_args()
    name = f"pbx_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(args.server_dsn)
    info["dbname"] = name
    dsn = psycopg.conninfo.make_conninfo(**info)
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-s2s-"))
    try:
        asyncio.run(run(args, dsn, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(args.server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()

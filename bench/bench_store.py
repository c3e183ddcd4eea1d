"""Store benchmark: cold apply, no-op plan (read_state + plan) and peak RSS at scale.

Generates tenants directly as ``TenantState`` records (no YAML), in a database of its own that
it creates and drops. Targets for 1000 tenants x 100 extensions on 2 cores: cold apply
<= 60 s, no-op plan <= 3 s, peak RSS <= 500 MB.

    python bench/bench_store.py --tenants 1000 --extensions 100 --queues 5 --agents 10 \\
        --dsn postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.core.model import (
    Agent,
    Extension,
    InboundNumber,
    Queue,
    Tenant,
    TenantState,
    Tier,
    User,
    user_contact,
)
from reconciler.core.plan import plan
from reconciler.store import apply_plan, connect, open_pool, read_a1_hashes, read_state


def make_tenant(index: int, extensions: int, queues: int, agents: int) -> TenantState:
    tenant_id = f"t{index:05d}"
    domain = f"{tenant_id}.bench.example"
    tenant = Tenant(
        id=tenant_id, domain=domain, name=f"Tenant {index} & Co <bench>", status="active"
    )
    numbers = [str(1000 + i) for i in range(extensions)]
    exts = {n: Extension(number=n, name=f'Phone {n} "desk"') for n in numbers}
    users = {
        f"u{n}@{domain}": User(
            email=f"u{n}@{domain}", name=f"User {n}", role="member", extensions=(n,)
        )
        for n in numbers
    }
    agent_records = {
        f"a{i}": Agent(
            name=f"a{i}",
            type="Callback",
            contact=user_contact(numbers[i % len(numbers)], domain),
            extension=numbers[i % len(numbers)],
        )
        for i in range(agents)
    }
    queue_records = {f"q{i}": Queue(name=f"q{i}", number=str(7000 + i)) for i in range(queues)}
    tiers = {f"{q}/{a}": Tier(queue=q, agent=a) for q in queue_records for a in agent_records}
    dids = {}
    if queue_records:
        number = f"+1{200 + index // 10000}{index % 10000:04d}5550"
        dids[number] = InboundNumber(number, "queue", next(iter(queue_records)))
    return TenantState(tenant, exts, users, agent_records, queue_records, tiers, dids)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100)
    parser.add_argument("--queues", type=int, default=5)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="tenants applied in parallel")
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the benchmark may create a database",
    )
    args = parser.parse_args()

    name = f"pbx_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(args.dsn)
    info["dbname"] = name
    dsn = psycopg.conninfo.make_conninfo(**info)
    try:
        t0 = time.perf_counter()
        desired = {
            s.tenant.id: s
            for s in (
                make_tenant(i, args.extensions, args.queues, args.agents)
                for i in range(args.tenants)
            )
        }
        t_gen = time.perf_counter() - t0
        with connect(dsn) as conn:
            t0 = time.perf_counter()
            cold = plan(desired, read_state(conn))
            t_cold_plan = time.perf_counter() - t0
        pool = open_pool(dsn, min_size=args.workers, max_size=args.workers)
        try:
            t0 = time.perf_counter()
            report = apply_plan(pool, cold, desired=desired, workers=args.workers)
            t_apply = time.perf_counter() - t0
        finally:
            pool.close()
        assert report.ok, dict(list(report.failed.items())[:3])
        cold_changes = len(cold.changes)
        del cold  # only the no-op read and plan are measured from here on
        with connect(dsn) as conn:
            t0 = time.perf_counter()
            actual = read_state(conn)
            t_read = time.perf_counter() - t0
            t0 = time.perf_counter()
            noop = plan(desired, actual)
            t_plan = time.perf_counter() - t0
            assert noop.empty, noop.changes[:3]
            del actual
            t0 = time.perf_counter()
            assert plan(desired, read_state(conn)).empty
            t_warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            hashes = read_a1_hashes(conn)
            t_hashes = time.perf_counter() - t0
        records = sum(
            1
            + len(s.extensions)
            + len(s.users)
            + len(s.agents)
            + len(s.queues)
            + len(s.tiers)
            + len(s.inbound_numbers)
            for s in desired.values()
        )
        print(
            f"tenants={args.tenants} extensions={args.extensions} queues={args.queues} "
            f"agents={args.agents} workers={args.workers} records={records} "
            f"credentials={len(hashes)}"
        )
        print(f"generate            {t_gen:7.2f} s")
        print(f"cold plan           {t_cold_plan:7.2f} s  ({cold_changes} changes)")
        print(f"cold apply          {t_apply:7.2f} s  (target <= 60 s)")
        print(f"no-op read_state    {t_read:7.2f} s")
        print(f"no-op plan          {t_plan:7.2f} s")
        print(f"no-op total         {t_read + t_plan:7.2f} s  (target <= 3 s; fresh connection)")
        print(f"no-op again         {t_warm:7.2f} s  (same connection, as a daemon's pool)")
        print(f"read_a1_hashes      {t_hashes:7.2f} s")
        print(f"peak RSS            {peak_rss_mb():7.0f} MB (target <= 500 MB)")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: ``pbx plan`` with nothing to do, the whole command, interleaved with a baseline.

Each sample is one ``pbx plan --no-live --detailed-exitcode`` in a fresh process, so a
fresh PostgreSQL session (the server's per-session relation and plan caches start empty:
what the change counter saves is exactly that first touch). The baseline is another
checkout run from the same interpreter through ``PYTHONPATH``, against a database of its
own (settled tenants are recorded with a digest of the code that recorded them, so each
release needs its own applied copy; ``--new-dsn`` may be ``CREATE DATABASE ... TEMPLATE``
of the baseline's, then made settled by this release's full passes, e.g.
``bench_passes.py --no-plan-command``). Rounds alternate which goes first; the load
average is printed with every sample because the machine's figures move with it:

    python bench/bench_plan_noop.py --tenants-dir DIR --base-tree ../base \\
        --base-dsn postgresql://.../pbx_base --new-dsn postgresql://.../pbx_new --rounds 3

``--fingerprints`` times only the fingerprint read of every tenant in a fresh session (and
again in the same session), each release's own ``read_fingerprints``. ``--layout`` (no
other argument needed) is the experiment behind one control table of counters rather than
a counter table in each tenant schema: a scratch database with 1,000 of each, a fresh
session reading all 1,000 counters either way, interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.append(str(Path(__file__).resolve().parent))  # bench_passes, beside this file

from bench_passes import plan_command

_FINGERPRINTS = """
import sys, time, psycopg
from reconciler.store.fingerprints import read_fingerprints
started = time.perf_counter()
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    read_fingerprints(conn)
    first = time.perf_counter() - started
    started = time.perf_counter()
    read_fingerprints(conn)
print(first, time.perf_counter() - started)
"""


def fingerprints_once(tree: Path, dsn: str) -> tuple[float, float]:
    """Seconds of ``tree``'s ``read_fingerprints`` in a fresh session, then again in it."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", _FINGERPRINTS, dsn],
        env=env, capture_output=True, text=True, check=True, cwd=tree,
    )  # fmt: skip
    first, again = map(float, done.stdout.split())
    return first, again


def layout(server_dsn: str, tenants: int, rounds: int) -> None:
    """A fresh session's read of every counter: one table per schema vs one control table."""
    import psycopg
    from psycopg import sql

    name = f"pbx_bench_layout_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(server_dsn)
    info["dbname"] = name
    dsn = psycopg.conninfo.make_conninfo(**info)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE counters (schema_name text PRIMARY KEY, n bigint)")
            for i in range(tenants):
                conn.execute(
                    sql.SQL(
                        "CREATE SCHEMA {s}; CREATE TABLE {s}.counter (k boolean PRIMARY KEY,"
                        " n bigint); INSERT INTO {s}.counter VALUES (true, 0);"
                        " INSERT INTO counters VALUES ({name}, 0)"
                    ).format(s=sql.Identifier(f"t{i}"), name=sql.Literal(f"t{i}"))
                )
        per_schema = [
            " UNION ALL ".join(f"SELECT 't{i}', n FROM t{i}.counter" for i in range(start, end))
            for start, end in ((s, min(s + 100, tenants)) for s in range(0, tenants, 100))
        ]
        samples: dict[str, list[float]] = {"per schema": [], "control table": []}
        for _ in range(rounds):
            for label, queries in (
                ("per schema", per_schema),
                ("control table", ["SELECT schema_name, n FROM counters"]),
            ):
                started = time.perf_counter()
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for query in queries:
                        conn.execute(query.encode()).fetchall()
                samples[label].append(time.perf_counter() - started)
        for label, found in samples.items():
            runs = ", ".join(f"{s:.3f}" for s in found)
            print(f"{label}: median {statistics.median(found):.3f} s ({runs})")
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants-dir", type=Path)
    parser.add_argument("--base-tree", type=Path)
    parser.add_argument("--base-dsn")
    parser.add_argument("--new-tree", type=Path, default=HERE)
    parser.add_argument("--new-dsn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fingerprints", action="store_true", help="the fingerprint read only")
    parser.add_argument("--layout", action="store_true", help="counter layout experiment")
    parser.add_argument("--server-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=1000, help="for --layout")
    args = parser.parse_args()
    if args.layout:
        layout(args.server_dsn, args.tenants, max(args.rounds, 5))
        return
    if None in (args.tenants_dir, args.base_tree, args.base_dsn, args.new_dsn):
        parser.error("--tenants-dir, --base-tree, --base-dsn and --new-dsn are needed")
    runs = {"base": (args.base_tree, args.base_dsn), "new": (args.new_tree, args.new_dsn)}
    if args.fingerprints:
        for n in range(args.rounds):
            for label in ("base", "new") if n % 2 == 0 else ("new", "base"):
                load = os.getloadavg()[0]
                first, again = fingerprints_once(*runs[label])
                print(f"round {n + 1} {label}: fingerprints, fresh session {first:.2f} s,"
                      f" again {again:.2f} s, load {load:.1f}")  # fmt: skip
        return
    samples: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
    for n in range(args.rounds):
        for label in ("base", "new") if n % 2 == 0 else ("new", "base"):
            tree, dsn = runs[label]
            load = os.getloadavg()[0]
            wall, cpu = plan_command(dsn, args.tenants_dir, tree=tree)
            samples[label].append((wall, cpu))
            print(f"round {n + 1} {label}: wall {wall:.2f} s, cpu {cpu:.2f} s, load {load:.1f}")
    for label, found in samples.items():
        wall = statistics.median(s[0] for s in found)
        cpu = statistics.median(s[1] for s in found)
        print(f"{label} pbx plan (whole command): wall median {wall:.2f} s, cpu median {cpu:.2f} s")
    ratio = statistics.median(s[0] for s in samples["new"]) / statistics.median(
        s[0] for s in samples["base"]
    )
    print(f"new/base wall ratio {ratio:.2f}")


if __name__ == "__main__":
    main()

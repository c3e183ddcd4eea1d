"""Benchmark: the control plane's own passes at scale, wall and CPU time.

Measures, on an applied database and its spec directory (created, filled from YAML and
cold-applied when ``--dsn`` is not given):
* ``pbx plan`` with nothing to do: the whole command in a child process (load the specs,
  read the database, plan), wall and CPU seconds, after the passes below (they record the
  tenants in sync that it skips); ``--read-all`` also times it parsing and reading all;
* a daemon's full pass that changes nothing (``Reconciler.run_pass(full=True)`` after a
  warm-up pass), wall and CPU seconds of this process (the server's share is not in it);
* one extension added to one file, the incremental pass (without the snapshot rebuild).

The code measured is whatever ``reconciler`` the interpreter imports: put another checkout
first on ``PYTHONPATH`` to measure the previous release with the same script, and alternate
the two, round by round (the machine's figures move with its load):

    for i in 1 2 3; do
      PYTHONPATH=../base python bench/bench_passes.py --dsn DSN --tenants-dir DIR --label base
      PYTHONPATH=. python bench/bench_passes.py --dsn DSN --tenants-dir DIR --label new
    done
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.append(str(Path(__file__).resolve().parent))  # after PYTHONPATH: it picks the code
sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench_validate import tenant_yaml

from reconciler.reconcile import PassGuards, Reconciler
from reconciler.store import PostgresStore

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plan_command(
    dsn: str, tenants_dir: Path, *extra: str, tree: Path | None = None
) -> tuple[float, float]:
    """Wall and CPU seconds of ``pbx plan --no-live`` in a child process (of ``tree``'s
    code, first on its ``PYTHONPATH``, when given)."""
    env = dict(os.environ, PBX_DATABASE_URL=dsn, PBX_TENANTS=str(tenants_dir))
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    cpu, started = _cpu_children(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--no-live", "--detailed-exitcode", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tree,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pbx plan did not find nothing to do: {done.returncode} {done.stderr}")
    return wall, _cpu_children() - cpu


def timed(action: object) -> tuple[float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started, time.process_time() - cpu


def passes(dsn: str, tenants_dir: Path, rounds: int) -> dict[str, list[tuple[float, float]]]:
    store = PostgresStore(dsn)
    reconciler = Reconciler(tenants_dir, store, PassGuards(hold_shrinking=True))
    out: dict[str, list[tuple[float, float]]] = {"full": [], "incremental": []}
    outcome = reconciler.run_pass(full=True)
    assert outcome.planned.plan.empty, "the database must be applied first"
    reconciler.run_pass(full=True)  # warm
    target = tenants_dir / "t00000.yaml"
    original = target.read_text()
    try:
        for n in range(rounds):
            out["full"].append(timed(lambda: reconciler.run_pass(full=True)))
            target.write_text(
                original.replace(
                    "extensions:\n", f'extensions:\n  - {{number: "{5000 + n}", name: "N"}}\n', 1
                )
            )
            out["incremental"].append(timed(lambda: reconciler.run_pass(full=False)))
    finally:
        target.write_text(original)
        reconciler.run_pass(full=False)
        store.close()
    return out


def prepare(args: argparse.Namespace, root: Path) -> tuple[str, Path, str | None]:
    """A scratch database and spec directory, cold-applied; returns (dsn, dir, db name)."""
    tenants_dir = root / "tenants.d"
    tenants_dir.mkdir()
    for i in range(args.tenants):
        (tenants_dir / f"t{i:05d}.yaml").write_text(tenant_yaml(i, args.extensions))
    name = f"pbx_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(args.server_dsn)
    info["dbname"] = name
    dsn = psycopg.conninfo.make_conninfo(**info)
    store = PostgresStore(dsn)
    started = time.perf_counter()
    assert Reconciler(tenants_dir, store).run_pass(full=True).ok
    print(f"cold_apply_s={time.perf_counter() - started:.1f}")
    store.close()
    return dsn, tenants_dir, name


def report(label: str, name: str, samples: list[tuple[float, float]]) -> None:
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    print(f"{label} {name}: wall median {wall:.3f} s, cpu median {cpu:.3f} s, n={len(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", help="an applied database (with --tenants-dir)")
    parser.add_argument("--tenants-dir", type=Path)
    parser.add_argument("--server-dsn", default=SERVER)
    parser.add_argument("--label", default="this")
    parser.add_argument("--no-plan-command", action="store_true", help="measure the passes only")
    parser.add_argument(
        "--read-all", action="store_true", help="also `pbx plan --read-all` (no tenant skipped)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-passes-"))
    scratch = None
    try:
        if args.dsn:
            dsn, tenants_dir = args.dsn, args.tenants_dir
        else:
            dsn, tenants_dir, scratch = prepare(args, root)
        # first: a daemon's full passes record the tenants they find in sync (settled),
        # which is what `pbx plan` skips (a release before settled tenants ignores it)
        measured = passes(dsn, tenants_dir, args.rounds)
        report(args.label, "full pass, nothing to do", measured["full"])
        report(args.label, "incremental pass, one extension", measured["incremental"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.label} peak_rss_mb={peak:.0f}")
        if not args.no_plan_command:
            plans = [plan_command(dsn, tenants_dir) for _ in range(args.rounds)]
            report(args.label, "pbx plan (whole command)", plans)
        if args.read_all:
            plans = [plan_command(dsn, tenants_dir, "--read-all") for _ in range(args.rounds)]
            report(args.label, "pbx plan --read-all (whole command)", plans)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if scratch is not None:
            with psycopg.connect(args.server_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(scratch)
                    )
                )


if __name__ == "__main__":
    main()

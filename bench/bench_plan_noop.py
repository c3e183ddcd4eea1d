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
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plan_once(tree: Path, dsn: str, tenants_dir: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``pbx plan`` of ``tree``'s code, which must find
    nothing to do."""
    env = dict(os.environ, PYTHONPATH=str(tree), PBX_DATABASE_URL=dsn, PBX_TENANTS=str(tenants_dir))
    cpu, started = _cpu_children(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--no-live", "--detailed-exitcode"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tree,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{tree}: pbx plan did not find nothing to do: {done.stderr[-2000:]}")
    return wall, _cpu_children() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants-dir", type=Path, required=True)
    parser.add_argument("--base-tree", type=Path, required=True)
    parser.add_argument("--base-dsn", required=True)
    parser.add_argument("--new-tree", type=Path, default=HERE)
    parser.add_argument("--new-dsn", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = {"base": (args.base_tree, args.base_dsn), "new": (args.new_tree, args.new_dsn)}
    samples: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
    for n in range(args.rounds):
        for label in ("base", "new") if n % 2 == 0 else ("new", "base"):
            tree, dsn = runs[label]
            load = os.getloadavg()[0]
            wall, cpu = plan_once(tree, dsn, args.tenants_dir)
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

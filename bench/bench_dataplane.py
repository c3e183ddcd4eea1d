"""Lookup cost: the in-memory snapshot vs the mapped generation (what a worker reads).

Synthetic served view (tenants x users built directly as served records), directory
lookups through ``xmlcurl.answer`` (the template render included; no cache), interleaved
rounds. Usage: python bench/bench_dataplane.py [tenants] [users] [lookups]"""

from __future__ import annotations

import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

from reconciler.core.identity import DatabaseIdentity
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.snapshot import DirectoryUser, ServedTenant, Snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import answer

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


if __name__ == "__main__":
    main()

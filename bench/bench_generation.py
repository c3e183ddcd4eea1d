"""Benchmark: writing a generation in process, full and after one tenant changed.

    python bench/bench_generation.py STATE.pkl      # a pickled (state, a1_hashes)

``STATE.pkl``: ``(State, {(tenant, extension): a1})`` (e.g. 1,000 tenants x 100 extensions
from ``bench_validate.tenant_yaml`` through ``tenant_state_from_spec``). Times the first
(full) write, then rounds of one tenant's digest rotated (what an edit costs the writer),
and the process's peak RSS. With ``PYTHONPATH`` at an older tree that has no
``generation_writer``, times ``build_snapshot`` + ``write_generation`` instead (the way
the daemon rebuilt before).
"""

from __future__ import annotations

import pickle
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reconciler.core.identity import DatabaseIdentity

ID = DatabaseIdentity("1", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")
ROUNDS = 5


def main() -> None:
    with open(sys.argv[1], "rb") as file:
        state, sip = pickle.load(file)
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-generation-"))
    path = root / "xmlcurl.generation"
    try:
        from reconciler.serve import generation_writer
    except ImportError:  # the previous release
        writer = None
    else:
        writer = generation_writer.GenerationWriter(path)
    tenant = sorted(state)[0]
    number = sorted(state[tenant].extensions)[0]

    def write(hashes: dict[tuple[str, str], str]) -> float:
        start = time.perf_counter()
        if writer is not None:
            writer.write(state, hashes, {}, generation="g", identity=ID, dsn_fingerprint="fp",
                         allow_empty=False)  # fmt: skip
        else:
            from reconciler.serve.generation import write_generation
            from reconciler.serve.snapshot import build_snapshot

            snapshot = build_snapshot(state, hashes, freeze=True)
            write_generation(snapshot, path, identity=ID, dsn_fingerprint="fp")
        return time.perf_counter() - start

    full = write(sip)
    edits = [write({**sip, (tenant, number): f"{n:x}" * 32}) for n in range(1, ROUNDS + 1)]
    size = sum(p.stat().st_size for p in root.iterdir())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kind = "tenant by tenant" if writer is not None else "build_snapshot + write_generation"
    print(f"{kind}: first write {full:.3f} s; one tenant changed: median "
          f"{statistics.median(edits):.3f} s, max {max(edits):.3f} s; files {size / 1e6:.1f} MB; "
          f"peak RSS {rss:.0f} MB (state loaded: see below)")  # fmt: skip
    for file in root.iterdir():
        file.unlink()
    root.rmdir()


if __name__ == "__main__":
    main()

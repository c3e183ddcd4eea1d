"""Benchmark: validate N tenant files of M extensions each (cold, then warm with one edit).

python bench/bench_validate.py --tenants 1000 --extensions 100
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from specs_schema.load import SpecLoader, load_specs


def tenant_yaml(index: int, extensions: int) -> str:
    tid = f"t{index:05d}"
    lines = [
        "# yaml-language-server: $schema=../specs_schema/tenant.schema.json",
        f"id: {tid}",
        f"domain: {tid}.example.net",
        f"name: Tenant {index}",
        "users:",
    ]
    for e in range(extensions):
        lines.append(
            f'  - {{email: u{e}@{tid}.example.net, name: "User {e}", extensions: ["{1000 + e}"]}}'
        )
    lines.append("extensions:")
    for e in range(extensions):
        lines.append(f'  - {{number: "{1000 + e}", name: "User {e} & desk <{e}>"}}')
    lines.append("agents:")
    for a in range(10):
        lines.append(f'  - {{name: agent{a}, extension: "{1000 + a}"}}')
    lines.append("queues:")
    for q in range(5):
        lines.append(f'  - name: q{q}\n    number: "{7000 + q}"\n    tiers:')
        for a in range(10):
            lines.append(f"      - {{agent: agent{a}, level: {1 + a % 3}, position: {a}}}")
    lines.append("inbound_numbers:")
    lines.append(f'  - {{number: "+1415{index:07d}", destination: {{queue: q0}}}}')
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pbx-bench-validate-"))
    try:
        for i in range(args.tenants):
            (root / f"t{i:05d}.yaml").write_text(tenant_yaml(i, args.extensions))
        start = time.perf_counter()
        result = load_specs([root])
        cold = time.perf_counter() - start
        assert result.ok, result.errors[:3]
        loader = SpecLoader()
        loader.load([root])
        edited = root / "t00000.yaml"
        edited.write_text(edited.read_text().replace("name: Tenant 0", "name: Tenant zero"))
        start = time.perf_counter()
        loader.load([root])
        warm = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"validate_cold_s={cold:.2f} tenants={args.tenants} extensions_per_tenant={args.extensions}"
        )
        print(f"validate_one_edit_s={warm:.3f}")
        print(f"peak_rss_mb={rss:.0f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Turn the outputs of bench/run.sh into the README's benchmark table (markdown).

python bench/summarize.py bench/results 1000 100
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path


def grab(text: str, pattern: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1) if found else "n/a"


def read(directory: Path, name: str) -> str:
    path = directory / f"{name}.txt"
    return path.read_text() if path.exists() else ""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )


def main() -> None:
    directory = Path(sys.argv[1])
    tenants, extensions = sys.argv[2], sys.argv[3]
    validate = read(directory, "validate")
    store = read(directory, "store")
    s2s = read(directory, "save_to_served")
    cc = read(directory, "callcenter")
    portal = read(directory, "portal")
    rows = [
        (
            "validate all spec files (cold)",
            grab(validate, r"validate_cold_s=([\d.]+)") + " s",
            "a few s",
        ),
        ("re-validate after one edit", grab(validate, r"validate_one_edit_s=([\d.]+)") + " s", ""),
        (
            "cold apply (store, 2 workers)",
            grab(store, r"cold apply\s+([\d.]+) s") + " s",
            "<= 60 s",
        ),
        (
            "no-op plan (read_state + plan)",
            grab(store, r"no-op total\s+([\d.]+) s") + " s",
            "<= 3 s",
        ),
        ("store peak RSS", grab(store, r"peak RSS\s+([\d.]+) MB") + " MB", "<= 500 MB"),
        ("daemon cold start to served", grab(s2s, r"daemon_cold_apply_s=([\d.]+)") + " s", ""),
        (
            "save-to-served, one extension (median / max)",
            grab(s2s, r"median=([\d.]+)") + " / " + grab(s2s, r"max=([\d.]+)") + " s",
            "<= 1 s",
        ),
        ("daemon peak RSS", grab(s2s, r"peak_rss_mb=(\d+)") + " MB", ""),
        (
            "callcenter push, 1,000 agents + 1,000 tiers",
            grab(cc, r"push:\s+([\d.]+) s") + " s",
            "<= 10 s",
        ),
        ("callcenter no-op drift check", grab(cc, r"no-op check:\s+([\d.]+) s") + " s", "<= 1 s"),
        ("callcenter wipe + resync", grab(cc, r"wipe\+resync:\s+([\d.]+) s") + " s", ""),
        (
            "switch down 10 s: accepting again -> resynced",
            grab(cc, r"accepting -> resynced:\s+([\d.]+) s") + " s",
            "<= 2 s",
        ),
        (
            "portal reads, every page and API call of every role (p50 / p99)",
            grab(portal, r"all reads: p50 ([\d.]+) ms")
            + " / "
            + grab(portal, r"all reads: p50 [\d.]+ ms, p99 ([\d.]+) ms")
            + " ms",
            "p99 <= 20 ms",
        ),
        (
            "portal, slowest read (p99)",
            grab(portal, r"worst p99 ([\d.]+ ms \([^)]*\))"),
            "<= 20 ms",
        ),
    ]
    xml = directory / "xmlcurl.json"
    if xml.exists():
        data = json.loads(xml.read_text())
        scenarios = data["scenarios"]
        for mode in ("close", "keepalive"):
            low = min(
                (n for n in scenarios if n.startswith(f"aiohttp_{mode}_c")),
                key=lambda n: int(n.rsplit("_c", 1)[1]),
            )
            high = max(
                (n for n in scenarios if n.startswith(f"aiohttp_{mode}_c")),
                key=lambda n: int(n.rsplit("_c", 1)[1]),
            )
            ours_low, ours_high = scenarios[low], scenarios[high]
            nginx_high = scenarios["nginx_" + high.removeprefix("aiohttp_")]
            rows.append(
                (
                    f"xml_curl sip_auth, {mode} ({high.rsplit('_c', 1)[1]} conns) req/s; nginx ratio",
                    f"{ours_high['rps']:.0f} req/s; {ours_high['rps'] / nginx_high['rps']:.2f}x nginx",
                    ">= 5,000",
                )
            )
            rows.append(
                (
                    f"xml_curl sip_auth, {mode} (1 conn) p50 / p99",
                    f"{ours_low['p50_ms']:.2f} / {ours_low['p99_ms']:.2f} ms",
                    "p99 <= 2 ms",
                )
            )
    else:
        rows.append(("xml_curl sip_auth", "not run (needs wrk and nginx)", ""))
    print(
        f"Scale: {tenants} tenants x {extensions} extensions (5 queues, 10 agents each). Machine: {machine()}."
    )
    print()
    print("| measurement | result | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()

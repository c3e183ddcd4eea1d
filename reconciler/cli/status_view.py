"""Render a daemon's ``/status`` JSON as tables for a terminal (``pbx status``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return out


def _short(value: Any, width: int = 12) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_status(payload: dict[str, Any]) -> str:
    lines: list[str] = []
    snapshot = payload.get("snapshot") or {}
    lines.append(
        f"role: {payload.get('role', '?')}   ready: {payload.get('ready')}   "
        f"database: {'up' if payload.get('database_up') else 'down'}   "
        f"snapshot: {snapshot.get('generation', '-')} ({snapshot.get('users', 0)} users)"
    )
    last = payload.get("last_pass") or {}
    if last:
        lines.append(
            f"last pass: {last.get('finished_at', '-')} trigger={last.get('trigger', '-')} "
            f"result={last.get('result', '-')} duration={last.get('seconds', '-')}s"
        )
    platform = payload.get("platform") or {}
    if platform:
        error = f" error={platform['error']}" if platform.get("error") else ""
        lines.append(f"platform: {platform.get('result', '-')} at {platform.get('at', '-')}{error}")
    lines.append("")
    tenants = payload.get("tenants") or {}
    rows = []
    for tenant_id in sorted(tenants):
        t = tenants[tenant_id]
        rows.append(
            [
                tenant_id,
                _short(t.get("domain"), 28),
                _short(t.get("status")),
                _short(t.get("spec_digest"), 10),
                _short(t.get("last_applied_revision"), 10),
                _short(t.get("last_attempted_revision"), 10),
                _short(t.get("last_reconcile"), 20),
                _short(t.get("last_error"), 48),
            ]
        )
    lines += _table(
        ["TENANT", "DOMAIN", "STATUS", "DIGEST", "APPLIED", "ATTEMPTED", "RECONCILED", "ERROR"],
        rows,
    )
    lines.append("")
    nodes = payload.get("nodes") or []
    node_rows = [
        [
            n.get("node", "?"),
            "yes" if n.get("connected") else "no",
            _short(n.get("last_sync"), 20),
            str(n.get("drift_repaired", 0)),
            _short(", ".join(n.get("unmanaged") or []), 30),
            _short("; ".join(n.get("errors") or []), 48),
        ]
        for n in nodes
    ]
    lines += _table(["NODE", "CONNECTED", "LAST SYNC", "REPAIRED", "UNMANAGED", "ERROR"], node_rows)
    return "\n".join(lines) + "\n"

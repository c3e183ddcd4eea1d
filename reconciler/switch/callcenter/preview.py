"""What a reconcile would send to each switch, without sending it (``pbx plan``).

Each node is read over a short-lived connection; an unreachable node says so instead of
failing the plan. The result is plain data (JSON output) with a text rendering.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from reconciler.core.model import State
from reconciler.core.served import managed_domains
from reconciler.switch.callcenter.desired import desired_live
from reconciler.switch.callcenter.engine import CallcenterEngines
from reconciler.switch.node_spec import NodeSpec


async def preview_nodes(
    nodes: Sequence[NodeSpec],
    state: State,
    *,
    retired_domains: Collection[str] = (),
    connect_timeout: float = 2.0,
) -> list[dict[str, Any]]:
    """Per node: reachable or not, the changes with their exact commands, unmanaged names.
    ``retired_domains``: domains tenants held before (their leftovers are ours to remove)."""
    engines = CallcenterEngines(nodes)
    domains = managed_domains(state) | frozenset(retired_domains)
    reports = await engines.plan_only(desired_live(state), domains, connect_timeout=connect_timeout)
    out: list[dict[str, Any]] = []
    for report in reports:
        entry: dict[str, Any] = {"node": report.node, "connected": report.connected}
        if report.errors:
            entry["error"] = "; ".join(report.errors)
        changes = report.plan.changes if report.plan is not None else ()
        entry["changes"] = [
            {"symbol": c.action.value, **c.to_dict(), "key": c.name} for c in changes
        ]
        entry["unmanaged"] = list(report.unmanaged)
        entry["empty"] = not changes
        out.append(entry)
    return out


def has_changes(previews: Sequence[dict[str, Any]]) -> bool:
    return any(not p.get("empty", True) for p in previews)


def render_preview(preview: dict[str, Any]) -> str:
    node = preview.get("node", "?")
    if preview.get("error"):
        return f"\nnode {node}: not reachable ({preview['error']}); live state not compared\n"
    lines = [f"\nnode {node}: mod_callcenter"]
    for change in preview.get("changes", []):
        commands = "; ".join(change["commands"])
        lines.append(f"  {change['symbol']} {change['kind']} {change['key']}: {commands}")
    if preview.get("unmanaged"):
        lines.append(f"  (unmanaged, left alone: {', '.join(preview['unmanaged'])})")
    if len(lines) == 1:
        lines.append("  no changes")
    return "\n".join(lines) + "\n"

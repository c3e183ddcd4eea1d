"""Plans as people and programs read them: text for ``pbx plan``, JSON for
``--output json``, and the dicts stored in the apply history. All three read the same
``Plan`` value and share one rule for what is sensitive.

The sensitivity rule: secrets are not records (see ``reconciler.core.model``), so no field
of a change is ever secret; what a change *implies* may be. Creating an extension generates
its SIP credentials on apply, which every rendering says without showing anything
(``SENSITIVE_NOTE``).

Platform changes (``_platform.yaml``) render first, under ``platform``, as they apply; in
JSON every change says its ``scope`` (``tenant`` or ``platform``) and a tenant change also
its ``tenant``, as before scopes existed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from reconciler.core.model import Gateway, Kind, Record, Tenant
from reconciler.core.plan import SUMMARY_WORDS, Action, Change, Plan, Scope, summary_counts

SENSITIVE_NOTE = "(sensitive: generated on apply)"


def generates_secret(change: Change) -> bool:
    """The one sensitivity rule: this change makes the store generate a secret."""
    return change.kind is Kind.EXTENSION and change.action is Action.CREATE


# --- text --------------------------------------------------------------------------------


def summary_line(p: Plan) -> str:
    counts = summary_counts(p.counts())
    return "Plan: " + ", ".join(f"{counts[w]} to {w}" for w in SUMMARY_WORDS.values()) + "."


def render_text(p: Plan, *, tenants: Mapping[str, Tenant] | None = None) -> str:
    """Readable diff: one resource per line, changed fields ``old -> new``, summary last."""
    if p.empty:
        return "No changes. The database matches the specs.\n"
    lines: list[str] = []
    if p.platform:
        lines.append("platform (_platform.yaml)")
        lines.extend("  " + _change_line(change) for change in p.platform)
    by_tenant: dict[str, list[Change]] = {}
    for change in p.changes:
        by_tenant.setdefault(change.tenant, []).append(change)
    for tenant_id, changes in by_tenant.items():
        tenant = tenants.get(tenant_id) if tenants else None
        lines.append(f"tenant {tenant_id}" + (f" ({tenant.domain})" if tenant else ""))
        lines.extend("  " + _change_line(change) for change in changes)
    lines.append("")
    lines.append(summary_line(p))
    return "\n".join(lines) + "\n"


def _change_line(change: Change) -> str:
    label = f"{change.action.value} {change.kind.value} {change.key}"
    if change.action is Action.UPDATE:
        diffs = ", ".join(
            f"{k}: {_show(o)} -> {_show(n)}" if k != CREDENTIALS else _credentials_change(o, n)
            for k, (o, n) in change.fields.items()
        )
        text = f"{label}: {diffs}"
    elif change.action is Action.CREATE:
        assert change.after is not None
        text = f"{label} ({_summary(change.after)})"
        if generates_secret(change):
            text += " credentials=(sensitive, generated)"
    else:
        text = label
    if change.reason:
        text += f"  # {change.reason}"
    return text


_SUMMARY_FIELDS = {
    Kind.TENANT: ("domain", "name", "status"),
    Kind.EXTENSION: ("name", "enabled"),
    Kind.USER: ("name", "role", "extensions"),
    Kind.AGENT: ("type", "contact"),
    Kind.QUEUE: ("number", "strategy"),
    Kind.TIER: ("level", "position"),
    Kind.INBOUND_NUMBER: ("destination_kind", "destination"),
    Kind.OUTBOUND: (
        "country",
        "caller_id_number",
        "max_concurrent",
        "calls_per_minute",
        "international",
    ),
    Kind.OUTBOUND_ROUTE: ("gateways",),
    Kind.PLATFORM_ADMIN: ("name",),
    Kind.GATEWAY: ("proxy", "register", "transport", "credentials"),
}


CREDENTIALS = "credentials"
"""A gateway's credentials marker: shown as what it means, never as the digest."""


def shown_credentials(marker: str) -> str:
    """``none``, ``missing`` or ``set`` (a digest is never shown, even to its owner)."""
    return marker if marker in ("none", "missing") else "set"


def _credentials_change(old: str, new: str) -> str:
    if shown_credentials(old) == shown_credentials(new) == "set":
        return "credentials changed"
    return f"credentials: {shown_credentials(old)} -> {shown_credentials(new)}"


def _summary(record: Record) -> str:
    if isinstance(record, Gateway) and not record.managed:
        return "managed outside: a name only"
    values = record_dict(record) or {}
    return " ".join(
        f"{f}={_show(values[f])}" if f != CREDENTIALS else f"{f}={values[f]}"
        for f in _SUMMARY_FIELDS[record.kind]
    )


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(none)"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# --- JSON and history ---------------------------------------------------------------------


def change_dict(change: Change) -> dict[str, Any]:
    """One change as ``pbx plan --output json`` and the history show it. Built without
    ``dataclasses.asdict``'s deep copies: a cold apply records ~270k changes."""
    scope = change.scope
    out: dict[str, Any] = {"scope": scope.value}
    if scope is Scope.TENANT:
        out["tenant"] = change.tenant
    out |= {
        "kind": change.kind.value,
        "key": change.key,
        "action": change.action.verb,
        "before": record_dict(change.before),
        "after": record_dict(change.after),
    }
    if change.action is Action.UPDATE:
        out["changed"] = {
            k: {"old": _plain(o), "new": _plain(n)}
            if k != CREDENTIALS
            else {"old": shown_credentials(o), "new": shown_credentials(n)}
            for k, (o, n) in change.fields.items()
        }
    if generates_secret(change):
        out["credentials"] = SENSITIVE_NOTE
    if change.reason:
        out["reason"] = change.reason
    return out


def changes_dicts(changes: Iterable[Change]) -> list[dict[str, Any]]:
    return [change_dict(c) for c in changes]


def to_json(p: Plan) -> dict[str, Any]:
    return {
        "format_version": 1,
        "changes": changes_dicts(p.all_changes),
        "summary": summary_counts(p.counts()),
    }


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def record_dict(record: Record | None) -> dict[str, Any] | None:
    """A record's fields as JSON-ready values (tuples become lists)."""
    if record is None:
        return None
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(f.name for f in fields(record))  # type: ignore[arg-type]
    values = {name: _plain(getattr(record, name)) for name in names}
    if record.kind is Kind.GATEWAY:
        values[CREDENTIALS] = shown_credentials(values[CREDENTIALS])
    return values


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- the history's stored changes, as people read them (the portal's Activity) -------------

_SENSITIVE_NAMES = ("password", "secret", "pin", "token", "a1_hash", "credential")


def stored_change_line(change: Mapping[str, Any]) -> str:
    """One stored change (``change_dict``'s shape, read back from the history) as a line:
    ``update queue support: strategy: "a" -> "b"``. Fields are never secrets (see the
    sensitivity rule above); a field whose name looks like one is masked all the same, in
    case an older row or a future kind holds one."""
    label = f"{change.get('action', '?')} {change.get('kind', '?')} {change.get('key', '?')}"
    changed = change.get("changed")
    if isinstance(changed, Mapping) and changed:
        diffs = ", ".join(
            f"{name}: {_masked(name, d.get('old'))} -> {_masked(name, d.get('new'))}"
            for name, d in changed.items()
            if isinstance(d, Mapping)
        )
        label = f"{label}: {diffs}"
    if change.get("credentials"):
        label += " credentials=(sensitive, generated)"
    if change.get("reason"):
        label += f"  # {change['reason']}"
    return label


def _masked(name: str, value: Any) -> str:
    if any(word in name.lower() for word in _SENSITIVE_NAMES):
        return "(sensitive)"
    return _show(value)

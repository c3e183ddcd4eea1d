"""The planner: ``plan(desired, actual) -> Plan``, a value of typed changes; and its renderings.

Pure: no I/O, deterministic order. Within a tenant, creates and updates run parents before
children (tenant, extension, user, agent, queue, tier, inbound number), then deletes run
children before parents, so every foreign key holds at every step.

A tenant present in the database but absent from the specs is not deleted: it becomes
``orphaned`` (kept, not served) until ``pbx prune``. Tenants whose spec file is invalid are
passed in ``frozen`` and never appear in a plan: an invalid file must not touch applied state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from reconciler.core.model import (
    KIND_ORDER,
    Kind,
    Record,
    State,
    Tenant,
    TenantLifecycle,
    TenantState,
)


class Action(Enum):
    """What a change does; the value is the symbol the diff shows."""

    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"

    @property
    def verb(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Change:
    """One resource change.

    ``before`` is the record as stored (None for CREATE); ``after`` the record as desired
    (None for DELETE). For UPDATE both are full records; ``fields`` lists what differs.
    ``reason`` is for humans only; nothing branches on it.
    """

    kind: Kind
    tenant: str
    action: Action
    before: Record | None
    after: Record | None
    reason: str = ""

    @property
    def key(self) -> str:
        record = self.after if self.after is not None else self.before
        assert record is not None
        return record.key

    @property
    def fields(self) -> dict[str, tuple[Any, Any]]:
        if self.before is None or self.after is None:
            return {}
        return self.before.changed_fields(self.after)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenant": self.tenant,
            "kind": self.kind.value,
            "key": self.key,
            "action": self.action.verb,
            "before": _jsonable(self.before.as_dict()) if self.before else None,
            "after": _jsonable(self.after.as_dict()) if self.after else None,
        }
        if self.action is Action.UPDATE:
            out["changed"] = {
                k: {"old": _jsonable(o), "new": _jsonable(n)} for k, (o, n) in self.fields.items()
            }
        if self.kind is Kind.EXTENSION and self.action is Action.CREATE:
            out["credentials"] = "(sensitive: generated on apply)"
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    def tenants(self) -> list[str]:
        """Tenants with changes, in plan order."""
        return list(dict.fromkeys(c.tenant for c in self.changes))

    def for_tenant(self, tenant_id: str) -> Plan:
        return Plan(tuple(c for c in self.changes if c.tenant == tenant_id))

    def counts(self) -> dict[Action, int]:
        counts = dict.fromkeys(Action, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts


def plan(desired: State, actual: State, *, frozen: Iterable[str] = ()) -> Plan:
    """Changes that turn ``actual`` into ``desired``.

    ``frozen``: tenant ids whose specs failed validation; left exactly as they are.
    """
    skip = set(frozen)
    changes: list[Change] = []
    for tenant_id in sorted(set(desired) | set(actual)):
        if tenant_id in skip:
            continue
        want = desired.get(tenant_id)
        have = actual.get(tenant_id)
        if want is None:
            assert have is not None
            changes += _orphan(have)
        else:
            changes += _diff_tenant(want, have)
    return Plan(tuple(changes))


def _orphan(have: TenantState) -> list[Change]:
    if have.tenant.status == TenantLifecycle.ORPHANED:
        return []
    after = replace(have.tenant, status=TenantLifecycle.ORPHANED.value)
    return [
        Change(
            Kind.TENANT,
            have.tenant.id,
            Action.UPDATE,
            have.tenant,
            after,
            reason="spec file removed: tenant kept but no longer served; `pbx prune` archives it",
        )
    ]


def _diff_tenant(want: TenantState, have: TenantState | None) -> list[Change]:
    tenant_id = want.tenant.id
    upserts: list[Change] = []
    deletes: list[Change] = []
    for kind in KIND_ORDER:
        wanted = want.records(kind)
        present: Mapping[str, Record] = have.records(kind) if have is not None else {}
        for key in sorted(wanted):
            after = wanted[key]
            before = present.get(key)
            if before is None:
                upserts.append(Change(kind, tenant_id, Action.CREATE, None, after))
            elif before != after:
                upserts.append(Change(kind, tenant_id, Action.UPDATE, before, after))
        for key in sorted(set(present) - set(wanted)):
            deletes.append(Change(kind, tenant_id, Action.DELETE, present[key], None))
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    deletes.sort(key=lambda c: -order[c.kind])
    return upserts + deletes


# --- rendering -------------------------------------------------------------------------


def summary_line(p: Plan) -> str:
    counts = p.counts()
    return (
        f"Plan: {counts[Action.CREATE]} to add, {counts[Action.UPDATE]} to change, "
        f"{counts[Action.DELETE]} to destroy."
    )


def render_text(p: Plan, *, tenants: Mapping[str, Tenant] | None = None) -> str:
    """Readable diff: one resource per line, changed fields ``old -> new``, summary last."""
    if p.empty:
        return "No changes. The database matches the specs.\n"
    lines: list[str] = []
    for tenant_id in p.tenants():
        tenant = tenants.get(tenant_id) if tenants else None
        header = f"tenant {tenant_id}" + (f" ({tenant.domain})" if tenant else "")
        lines.append(header)
        for change in p.for_tenant(tenant_id).changes:
            lines.append("  " + _change_line(change))
    lines.append("")
    lines.append(summary_line(p))
    return "\n".join(lines) + "\n"


def _change_line(change: Change) -> str:
    symbol = change.action.value
    label = f"{symbol} {change.kind.value} {change.key}"
    if change.action is Action.UPDATE:
        diffs = ", ".join(f"{k}: {_show(o)} -> {_show(n)}" for k, (o, n) in change.fields.items())
        text = f"{label}: {diffs}"
    elif change.action is Action.CREATE:
        assert change.after is not None
        text = f"{label} ({_summary(change.after)})"
        if change.kind is Kind.EXTENSION:
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
}


def _summary(record: Record) -> str:
    values = record.as_dict()
    return " ".join(f"{f}={_show(values[f])}" for f in _SUMMARY_FIELDS[record.kind])


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


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def to_json(p: Plan) -> dict[str, Any]:
    counts = p.counts()
    return {
        "format_version": 1,
        "changes": [c.to_dict() for c in p.changes],
        "summary": {
            "add": counts[Action.CREATE],
            "change": counts[Action.UPDATE],
            "destroy": counts[Action.DELETE],
        },
    }

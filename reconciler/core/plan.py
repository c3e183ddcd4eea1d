"""The planner: ``plan(desired, actual) -> Plan``, a value of typed changes.

Pure: no I/O, deterministic order. Rendering (text, JSON, history rows) is
``reconciler.core.plan_text``. Within a tenant, creates and updates run parents before
children (tenant, extension, user, agent, queue, tier, inbound number), then deletes run
children before parents, so every foreign key holds at every step.

A tenant present in the database but absent from the specs is not deleted: it becomes
``orphaned`` (kept, not served) until ``pbx prune``. Tenants whose spec file is invalid are
passed in ``frozen`` and never appear in a plan: an invalid file must not touch applied state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from reconciler.core.model import (
    COLLECTION_OF,
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

    def renames(self) -> dict[str, str]:
        """``{new id: old id}`` of the tenants this plan renames."""
        return {
            c.tenant: c.before.id
            for c in self.changes
            if isinstance(c.before, Tenant) and c.before.id != c.tenant
        }


def plan(desired: State, actual: State, *, frozen: Iterable[str] = ()) -> Plan:
    """Changes that turn ``actual`` into ``desired``.

    ``frozen``: tenant ids whose specs failed validation; left exactly as they are.

    A tenant id renamed in git (a new id whose domain a stored tenant of a vanished id holds)
    is a rename, not an orphan plus a new tenant: its domain stays served and its SIP
    credentials are kept. The first change of a rename is the tenant UPDATE whose ``before``
    carries the old id.
    """
    skip = set(frozen)
    renamed = _renames(desired, actual, skip)
    changes: list[Change] = []
    for tenant_id in sorted(set(desired) | set(actual)):
        if tenant_id in skip or tenant_id in renamed.values():
            continue
        want = desired.get(tenant_id)
        have = actual.get(tenant_id)
        if want is None:
            assert have is not None
            changes += _orphan(have)
        elif tenant_id in renamed:
            changes += _rename(want, actual[renamed[tenant_id]])
        else:
            changes += _diff_tenant(want, have)
    return Plan(tuple(changes))


def _renames(desired: State, actual: State, skip: set[str]) -> dict[str, str]:
    """``{new id: old id}``: one vanished stored tenant holding each new tenant's domain."""
    vanished = {
        have.tenant.domain.lower(): tenant_id
        for tenant_id, have in actual.items()
        if tenant_id not in desired and tenant_id not in skip
    }
    return {
        tenant_id: vanished[want.tenant.domain.lower()]
        for tenant_id, want in desired.items()
        if tenant_id not in actual
        and tenant_id not in skip
        and want.tenant.domain.lower() in vanished
    }


def _rename(want: TenantState, have: TenantState) -> list[Change]:
    moved = replace(have.tenant, id=want.tenant.id)
    first = Change(
        Kind.TENANT,
        want.tenant.id,
        Action.UPDATE,
        have.tenant,
        moved,
        reason=f"tenant id renamed from {have.tenant.id}: data and credentials move with it",
    )
    return [first, *_diff_tenant(want, replace(have, tenant=moved))]


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


def apply_changes(actual: State, changes: Plan) -> dict[str, TenantState]:
    """The state ``changes`` leads to from ``actual``, computed without any store: what
    ``pbx plan`` previews for the switches, and what the in-memory test store holds.
    ``apply_changes(A, plan(D, A))`` holds ``D`` for every planned tenant."""
    state: dict[str, TenantState] = dict(actual)
    by_tenant: dict[str, list[Change]] = {}
    for change in changes.changes:
        by_tenant.setdefault(change.tenant, []).append(change)
    for tenant_id, tenant_changes in by_tenant.items():
        collections: dict[Kind, dict[str, Any]] = {}
        first = tenant_changes[0].before
        if isinstance(first, Tenant) and first.id != tenant_id:  # a rename moves the tenant
            state[tenant_id] = state.pop(first.id)
        current = state.get(tenant_id)
        tenant = current.tenant if current is not None else None
        for change in tenant_changes:
            if change.kind is Kind.TENANT:
                tenant = change.after  # type: ignore[assignment]
                continue
            records = collections.get(change.kind)
            if records is None:
                base = current.records(change.kind) if current is not None else {}
                records = collections[change.kind] = dict(base)
            if change.after is None:
                records.pop(change.key, None)
            else:
                records[change.key] = change.after
        assert tenant is not None, f"changes of {tenant_id} hold no tenant record"
        fresh = TenantState(tenant=tenant) if current is None else replace(current, tenant=tenant)
        fields: dict[str, Any] = {COLLECTION_OF[k]: v for k, v in collections.items()}
        state[tenant_id] = replace(fresh, **fields)
    return state

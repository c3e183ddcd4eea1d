"""The planner: ``plan(desired, actual) -> Plan``, a value of typed changes.

Pure: no I/O, deterministic order. Rendering (text, JSON, history rows) is
``reconciler.core.plan_text``. Within a tenant, creates and updates run parents before
children (tenant, extension, user, agent, queue, tier, inbound number), then deletes run
children before parents, so every foreign key holds at every step.

A tenant present in the database but absent from the specs is not deleted: it becomes
``orphaned`` (kept, not served) until ``pbx prune``. Tenants whose spec file is invalid are
passed in ``frozen`` and never appear in a plan: an invalid file must not touch applied state.

Every change has a scope: a tenant, or the platform (objects of no tenant, declared in
``_platform.yaml``: super admins now, carrier gateways next). A plan holds the two apart
(``changes`` and ``platform``) because they apply apart: each tenant in its transaction,
the platform in its own, first (see ``reconciler.reconcile``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Any

from reconciler.core.model import (
    COLLECTION_OF,
    KIND_ORDER,
    PLATFORM,
    PLATFORM_COLLECTION_OF,
    PLATFORM_KINDS,
    Kind,
    PlatformState,
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


SUMMARY_WORDS: Mapping[Action, str] = {
    Action.CREATE: "add",
    Action.UPDATE: "change",
    Action.DELETE: "destroy",
}


def summary_counts(counts: Mapping[Action, int]) -> dict[str, int]:
    """``{"add": n, "change": n, "destroy": n}``: the one summary every plan shows (the
    store's plan, a switch's live plan; text and JSON)."""
    return {word: counts.get(action, 0) for action, word in SUMMARY_WORDS.items()}


class Scope(StrEnum):
    """Where a change applies: in one tenant's transaction, or in the platform's."""

    TENANT = "tenant"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Change:
    """One resource change.

    ``tenant``: the scope's id, a tenant id or ``PLATFORM`` (see ``scope``). ``before`` is the record as stored (None for CREATE); ``after`` the record as desired
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
    def scope(self) -> Scope:
        return Scope.PLATFORM if self.tenant == PLATFORM else Scope.TENANT

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
    """``changes``: the tenants'; ``platform``: the platform's. Everything that works per
    tenant (apply groups, guards, renames) reads ``changes`` only; what shows or counts a
    plan reads ``all_changes``."""

    changes: tuple[Change, ...] = ()
    platform: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes and not self.platform

    @property
    def all_changes(self) -> tuple[Change, ...]:
        """Every change in apply order: the platform's first."""
        return self.platform + self.changes

    def tenants(self) -> list[str]:
        """Tenants with changes, in plan order."""
        return list(dict.fromkeys(c.tenant for c in self.changes))

    def only_tenants(self, keep: Callable[[str], bool]) -> Plan:
        """The platform's changes and those of the tenants ``keep`` accepts."""
        return replace(self, changes=tuple(c for c in self.changes if keep(c.tenant)))

    def for_tenant(self, tenant_id: str) -> Plan:
        return Plan(tuple(c for c in self.changes if c.tenant == tenant_id))

    def counts(self) -> dict[Action, int]:
        counts = dict.fromkeys(Action, 0)
        for change in self.all_changes:
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
    return _diff(want.tenant.id, KIND_ORDER, want.records, have.records if have else None)


def plan_platform(desired: PlatformState | None, actual: PlatformState) -> tuple[Change, ...]:
    """Changes that turn the platform's ``actual`` records into ``desired``. None: the
    platform file is absent or invalid; the platform is then left exactly as it is (like a
    frozen tenant: an unreadable file must never read as "no super admins")."""
    if desired is None:
        return ()
    return tuple(_diff(PLATFORM, PLATFORM_KINDS, desired.records, actual.records))


def _diff(
    scope: str,
    kinds: tuple[Kind, ...],
    wanted_of: Callable[[Kind], Mapping[str, Record]],
    present_of: Callable[[Kind], Mapping[str, Record]] | None,
) -> list[Change]:
    """One scope's changes: creates and updates parents first, then deletes children first,
    so every foreign key holds at every step."""
    upserts: list[Change] = []
    deletes: list[Change] = []
    for kind in kinds:
        wanted = wanted_of(kind)
        present: Mapping[str, Record] = present_of(kind) if present_of is not None else {}
        if wanted == present:  # in sync, the common case of a full pass: one comparison
            continue
        for key in sorted(wanted):
            after = wanted[key]
            before = present.get(key)
            if before is None:
                upserts.append(Change(kind, scope, Action.CREATE, None, after))
            elif before != after:
                upserts.append(Change(kind, scope, Action.UPDATE, before, after))
        for key in sorted(set(present) - set(wanted)):
            deletes.append(Change(kind, scope, Action.DELETE, present[key], None))
    order = {kind: i for i, kind in enumerate(kinds)}
    deletes.sort(key=lambda c: -order[c.kind])
    return upserts + deletes


def apply_platform_changes(actual: PlatformState, changes: Iterable[Change]) -> PlatformState:
    """The platform state ``changes`` lead to from ``actual`` (the platform's
    ``apply_changes``): ``apply_platform_changes(A, plan_platform(D, A)) == D``."""
    collections: dict[Kind, dict[str, Any]] = {}
    for change in changes:
        records = collections.get(change.kind)
        if records is None:
            records = collections[change.kind] = dict(actual.records(change.kind))
        if change.after is None:
            records.pop(change.key, None)
        else:
            records[change.key] = change.after
    fields = {
        PLATFORM_COLLECTION_OF[kind]: dict(sorted(records.items()))
        for kind, records in collections.items()
    }
    return replace(actual, **fields)


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

"""An in-memory ``Store``: the reconcile pipeline tested without PostgreSQL.

It keeps the rules of the real store that the pipeline relies on: one tenant at a time,
re-planned under "its lock" (empty -> ``unchanged``, different -> ``StalePlan``), a domain
and a DID belong to one tenant (else that tenant rolls back), credentials generated for new
extensions, re-hashed on a domain change, and spec status kept as given. Failures can be
injected per tenant (``fail``) or for the whole store (``down``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from reconciler.core.model import State, TenantState
from reconciler.core.plan import Change, Plan, apply_changes, plan
from reconciler.core.revision import GitRevision
from reconciler.store import (
    ApplyReport,
    RegistryEntry,
    SpecStatus,
    StalePlan,
    StoreUnavailable,
    TenantApplyError,
)


@dataclass
class MemoryStore:
    state: dict[str, TenantState] = field(default_factory=dict)
    passwords: dict[tuple[str, str], str] = field(default_factory=dict)
    registry: dict[str, RegistryEntry] = field(default_factory=dict)
    spec_status: dict[str, SpecStatus] = field(default_factory=dict)
    admins: dict[str, str] = field(default_factory=dict)
    attempts: list[tuple[tuple[str, ...], GitRevision | None]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.down:
            raise StoreUnavailable("database unavailable: injected outage")

    def reset(self) -> None:
        self.calls.append("reset")

    def migrate(self) -> None:
        self._check("migrate")

    def read_state(self, tenants: Collection[str] | None = None) -> dict[str, TenantState]:
        self._check("read_state")
        wanted = (
            self.state
            if tenants is None
            else {t: self.state[t] for t in tenants if t in self.state}
        )
        return dict(sorted(wanted.items()))

    def read_registry(self) -> dict[str, RegistryEntry]:
        self._check("read_registry")
        return dict(self.registry)

    def read_a1_hashes(self, tenants: Collection[str] | None = None) -> dict[tuple[str, str], str]:
        self._check("read_a1_hashes")
        out = {}
        for (tenant_id, number), password in self.passwords.items():
            if tenants is None or tenant_id in tenants:
                domain = self.state[tenant_id].tenant.domain
                out[(tenant_id, number)] = _a1(number, domain, password)
        return out

    def read_spec_status(self) -> dict[str, SpecStatus]:
        self._check("read_spec_status")
        return dict(self.spec_status)

    def record_attempt(self, tenant_ids: Collection[str], revision: GitRevision | None) -> None:
        self._check("record_attempt")
        self.attempts.append((tuple(sorted(tenant_ids)), revision))

    def record_spec_status(self, invalid: Mapping[str, tuple[str | None, Sequence[str]]]) -> None:
        self._check("record_spec_status")
        now = datetime.now(UTC)
        self.spec_status = {
            t: SpecStatus(
                t, f, tuple(errors), self.spec_status[t].since if t in self.spec_status else now
            )
            for t, (f, errors) in invalid.items()
        }

    def sync_admins(self, admins: Mapping[str, str]) -> bool:
        self._check("sync_admins")
        wanted = {email.lower(): name for email, name in admins.items()}
        changed = wanted != self.admins
        self.admins = wanted
        return changed

    def apply(
        self,
        plan_: Plan,
        *,
        desired: State,
        revision: GitRevision | None,
        digests: Mapping[str, str],
        frozen: Collection[str],
    ) -> ApplyReport:
        self._check("apply")
        by_tenant: dict[str, list[Change]] = {}
        for change in plan_.changes:
            by_tenant.setdefault(change.tenant, []).append(change)
        applied, unchanged, failed = [], [], {}
        for tenant_id, changes in by_tenant.items():
            want = desired.get(tenant_id)
            have = self.state.get(tenant_id)
            expected = plan({tenant_id: want} if want else {}, {tenant_id: have} if have else {})
            if not expected.changes:
                unchanged.append(tenant_id)
                continue
            try:
                if expected.changes != tuple(changes):
                    raise StalePlan(tenant_id, "the database changed since this plan was made")
                self._write(tenant_id, Plan(tuple(changes)))
            except TenantApplyError as exc:
                failed[tenant_id] = exc
                continue
            applied.append(tenant_id)
            self._mark(tenant_id, revision, digests.get(tenant_id))
        skip = set(frozen) | set(failed) | set(applied)
        for tenant_id in desired:
            if tenant_id not in skip and tenant_id in self.state:
                self._mark(tenant_id, revision, digests.get(tenant_id))
        return ApplyReport(tuple(applied), tuple(unchanged), failed)

    def _write(self, tenant_id: str, changes: Plan) -> None:
        if tenant_id in self.fail:
            raise TenantApplyError(tenant_id, "injected failure")
        after = apply_changes(self.state, changes)[tenant_id]
        for other_id, other in self.state.items():
            if other_id == tenant_id:
                continue
            if other.tenant.domain == after.tenant.domain:
                raise TenantApplyError(tenant_id, f"domain {after.tenant.domain} is taken")
            taken = set(other.inbound_numbers) & set(after.inbound_numbers)
            if taken:
                raise TenantApplyError(tenant_id, f"inbound numbers {sorted(taken)} are taken")
        for number in after.extensions:
            self.passwords.setdefault((tenant_id, number), secrets.token_urlsafe(24))
        for key in [
            k for k in self.passwords if k[0] == tenant_id and k[1] not in after.extensions
        ]:
            del self.passwords[key]
        self.state[tenant_id] = after

    def _mark(self, tenant_id: str, revision: GitRevision | None, digest: str | None) -> None:
        tenant = self.state[tenant_id].tenant
        entry = self.registry.get(tenant_id) or RegistryEntry(
            tenant_id, f"tenant_{tenant_id}", tenant.domain, tenant.status, *([None] * 9)
        )
        now = datetime.now(UTC)
        commit = revision.commit if revision else None
        dirty = revision.dirty if revision else None
        self.registry[tenant_id] = replace(
            entry,
            domain=tenant.domain,
            status=tenant.status,
            spec_digest=digest or entry.spec_digest,
            applied_revision=commit,
            applied_dirty=dirty,
            applied_at=now,
            attempted_revision=commit,
            attempted_dirty=dirty,
            attempted_at=now,
            last_result="applied",
            last_error=None,
        )


def _a1(user: str, domain: str, password: str) -> str:
    return hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()

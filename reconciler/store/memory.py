"""An in-memory ``Store``: the reconcile pipeline run without PostgreSQL.

It ships beside the protocol (as an HTTP client ships its mock transport) so anything that
takes a ``Store`` can be exercised without a database; the same contract suite
(``tests/store/test_contract.py``) runs against it and ``PostgresStore``.

It keeps the rules of the real store that the pipeline relies on: one tenant at a time,
re-planned under "its lock" (empty -> ``unchanged``, different -> ``StalePlan``), a domain
and a DID belong to one tenant (else that tenant rolls back), credentials generated for new
extensions, re-hashed on a domain change, and spec status kept as given. Failures can be
injected per tenant (``fail``), for the platform (``fail_platform``) or for the whole store
(``down``).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from reconciler.core.model import PLATFORM, Gateway, PlatformState, State, TenantState
from reconciler.core.plan import (
    Change,
    Plan,
    apply_changes,
    apply_platform_changes,
    plan,
    plan_platform,
)
from reconciler.core.revision import GitRevision
from reconciler.core.settled import Settled
from reconciler.store import (
    ApplyReport,
    PlatformApplyError,
    PlatformReport,
    RegistryEntry,
    SpecStatus,
    StalePlan,
    StoreUnavailable,
    TenantApplyError,
)
from reconciler.store.claims import claim_groups, renamed_from
from reconciler.store.extension_secrets import a1_hash
from reconciler.store.voicemail_pins import new_pin


@dataclass
class MemoryStore:
    """A ``Store`` held in dicts; the fields are public so tests can arrange and inspect."""

    state: dict[str, TenantState] = field(default_factory=dict)
    passwords: dict[tuple[str, str], str] = field(default_factory=dict)
    retired_passwords: dict[tuple[str, str], str] = field(default_factory=dict)
    pins: dict[tuple[str, str], str] = field(default_factory=dict)
    """Voicemail PINs, keyed like ``passwords`` (a deleted extension's goes with it)."""
    """Deleted extensions' passwords (no expiry here: the PostgreSQL store's grace is tested
    on PostgreSQL)."""
    registry: dict[str, RegistryEntry] = field(default_factory=dict)
    spec_status: dict[str, SpecStatus] = field(default_factory=dict)
    settled: dict[str, Settled] = field(default_factory=dict)
    admins: dict[str, str] = field(default_factory=dict)
    gateways: dict[str, Gateway] = field(default_factory=dict)
    attempts: list[tuple[tuple[str, ...], GitRevision | None]] = field(default_factory=list)
    retired: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    fail_platform: bool = False
    history: list[tuple[str, str, tuple[Change, ...]]] = field(default_factory=list)
    """``(scope id, result, changes)`` per apply attempt, like ``pbx.apply_history``."""
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

    def read_fingerprints(self, tenants: Collection[str] | None = None) -> dict[str, object]:
        """The records, passwords and PINs themselves: equal exactly when they are."""
        self._check("read_fingerprints")
        return {
            tenant_id: (
                state,
                sorted((k, v) for k, v in self.passwords.items() if k[0] == tenant_id),
                sorted((k, v) for k, v in self.pins.items() if k[0] == tenant_id),
            )
            for tenant_id, state in self.state.items()
            if tenants is None or tenant_id in tenants
        }

    def read_registry(self) -> dict[str, RegistryEntry]:
        self._check("read_registry")
        return dict(self.registry)

    def read_a1_hashes(self, tenants: Collection[str] | None = None) -> dict[tuple[str, str], str]:
        self._check("read_a1_hashes")
        out = {}
        for (tenant_id, number), password in self.passwords.items():
            if tenants is None or tenant_id in tenants:
                domain = self.state[tenant_id].tenant.domain
                out[(tenant_id, number)] = a1_hash(number, domain, password)
        return out

    def read_voicemail_hashes(
        self, tenants: Collection[str] | None = None
    ) -> dict[tuple[str, str], str]:
        self._check("read_voicemail_hashes")
        return {
            (tenant_id, number): a1_hash(number, self.state[tenant_id].tenant.domain, pin)
            for (tenant_id, number), pin in self.pins.items()
            if tenants is None or tenant_id in tenants
        }

    def read_platform_admins(self) -> dict[str, str]:
        self._check("read_platform_admins")
        return dict(self.admins)

    def read_platform(self) -> PlatformState:
        self._check("read_platform")
        return PlatformState.of_admins(self.admins).with_gateways(self.gateways.values())

    def read_retired_domains(self) -> frozenset[str]:
        self._check("read_retired_domains")
        return frozenset(self.retired)

    def read_spec_status(self) -> dict[str, SpecStatus]:
        self._check("read_spec_status")
        return dict(self.spec_status)

    def read_settled(self) -> dict[str, Settled]:
        self._check("read_settled")
        return dict(self.settled)

    def record_settled(
        self, settled: Mapping[str, Settled], unsettled: Collection[str] = ()
    ) -> None:
        self._check("record_settled")
        for tenant_id in unsettled:
            self.settled.pop(tenant_id, None)
        self.settled.update({t: s for t, s in settled.items() if t in self.state})

    def record_attempt(self, tenant_ids: Collection[str], revision: GitRevision | None) -> None:
        self._check("record_attempt")
        self.attempts.append((tuple(sorted(tenant_ids)), revision))
        now = datetime.now(UTC)
        for tenant_id in set(tenant_ids) & set(self.registry):
            self.registry[tenant_id] = replace(
                self.registry[tenant_id],
                attempted_revision=revision.commit if revision else None,
                attempted_dirty=revision.dirty if revision else None,
                attempted_at=now,
            )

    def record_spec_status(
        self,
        invalid: Mapping[str, tuple[str | None, Sequence[str]]],
        revision: GitRevision | None = None,
    ) -> None:
        self._check("record_spec_status")
        now = datetime.now(UTC)
        self.spec_status = {
            t: SpecStatus(
                t, f, tuple(errors), self.spec_status[t].since if t in self.spec_status else now
            )
            for t, (f, errors) in invalid.items()
        }

    def apply_platform(
        self,
        changes: Sequence[Change],
        *,
        desired: PlatformState | None,
        revision: GitRevision | None,
    ) -> PlatformReport:
        """The platform in a "transaction" of its own: re-planned, written, or rolled back
        alone (``fail_platform``), a history row either way."""
        self._check("apply_platform")
        if not changes:
            return PlatformReport()
        actual = PlatformState.of_admins(self.admins).with_gateways(self.gateways.values())
        expected = plan_platform(desired, actual)
        if not expected:
            return PlatformReport("unchanged")
        error = None
        if expected != tuple(changes):
            error = PlatformApplyError("the database changed since this plan was made")
        elif self.fail_platform:
            error = PlatformApplyError("injected failure")
        if error is not None:
            self.history.append((PLATFORM, "failed", tuple(changes)))
            return PlatformReport("failed", error)
        after = apply_platform_changes(actual, changes)
        self.admins = {email: admin.name for email, admin in after.admins.items()}
        self.gateways = dict(after.gateways)
        self.history.append((PLATFORM, "applied", tuple(changes)))
        return PlatformReport("applied")

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
        by_tenant: dict[str, tuple[Change, ...]] = {}
        for change in plan_.changes:
            by_tenant[change.tenant] = (*by_tenant.get(change.tenant, ()), change)
        applied: list[str] = []
        unchanged: list[str] = []
        failed: dict[str, TenantApplyError] = {}
        for group in claim_groups(plan_):
            saved = (dict(self.state), dict(self.passwords))
            try:
                done = [t for t in group if self._write(t, by_tenant[t], desired)]
                self._verify(done)
            except TenantApplyError as exc:  # the whole group rolls back
                self.state, self.passwords = saved
                failed.update({t: exc for t in group})
                self.history += [(t, "failed", by_tenant[t]) for t in group]
                continue
            self.history += [(t, "applied", by_tenant[t]) for t in done]
            applied += done
            unchanged += [t for t in group if t not in done]
            for tenant_id in done:
                self._mark(tenant_id, revision, digests.get(tenant_id))
        skip = set(frozen) | set(failed) | set(applied)
        for tenant_id in desired:
            if tenant_id not in skip and tenant_id in self.state:
                self._mark(tenant_id, revision, digests.get(tenant_id))
        return ApplyReport(tuple(applied), tuple(unchanged), failed)

    def _write(self, tenant_id: str, changes: tuple[Change, ...], desired: State) -> bool:
        old_id = renamed_from(changes)
        ids = [tenant_id] if old_id is None else [tenant_id, old_id]
        have = {t: self.state[t] for t in ids if t in self.state}
        want = desired.get(tenant_id)
        expected = plan({tenant_id: want} if want else {}, have)
        if not expected.changes:
            return False
        if expected.changes != changes:
            raise StalePlan(tenant_id, "the database changed since this plan was made")
        if tenant_id in self.fail:
            raise TenantApplyError(tenant_id, "injected failure")
        before = self.state.get(old_id or tenant_id)
        self.state = apply_changes(self.state, Plan(changes))
        if before is not None and before.tenant.domain != self.state[tenant_id].tenant.domain:
            self.retired.add(before.tenant.domain)
        if old_id is not None:
            self.registry.pop(old_id, None)
            for owner, number in [k for k in self.passwords if k[0] == old_id]:
                self.passwords[(tenant_id, number)] = self.passwords.pop((owner, number))
            for owner, number in [k for k in self.pins if k[0] == old_id]:
                self.pins[(tenant_id, number)] = self.pins.pop((owner, number))
        after = self.state[tenant_id]
        for key in [
            k for k in self.passwords if k[0] == tenant_id and k[1] not in after.extensions
        ]:
            self.retired_passwords[key] = self.passwords.pop(key)
        for key in [k for k in self.pins if k[0] == tenant_id and k[1] not in after.extensions]:
            del self.pins[key]
        for number in after.extensions:
            self.pins.setdefault((tenant_id, number), new_pin())
            key = (tenant_id, number)
            if key not in self.passwords:
                returned = self.retired_passwords.pop(key, None)
                self.passwords[key] = returned or secrets.token_urlsafe(24)
        return True

    def _verify(self, tenant_ids: list[str]) -> None:
        for tenant_id in tenant_ids:
            mine = self.state[tenant_id]
            for other_id, other in self.state.items():
                if other_id == tenant_id:
                    continue
                if other.tenant.domain == mine.tenant.domain:
                    raise TenantApplyError(tenant_id, f"domain {mine.tenant.domain} is taken")
                taken = set(other.inbound_numbers) & set(mine.inbound_numbers)
                if taken:
                    raise TenantApplyError(tenant_id, f"inbound numbers {sorted(taken)} are taken")

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

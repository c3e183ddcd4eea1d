"""One reconcile pass against PostgreSQL, and the applied state it leaves in memory.

The fixed pipeline: load specs (with revision) -> read actual -> plan -> apply (one
transaction per tenant) -> re-read what was applied -> hand the applied state on (snapshot,
live switches). Synchronous on purpose: the daemon runs it in a worker thread so the event
loop keeps answering FreeSWITCH; the CLI runs it directly.

Incremental: a pass triggered by a file change plans only tenants whose spec digest differs
from what the registry says was applied (plus new and removed ones); a full pass (periodic,
SIGHUP, start-up) re-reads and re-plans every tenant, which also repairs drift in the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from reconciler.core.logs import event
from reconciler.core.model import State, TenantLifecycle, TenantState, tenant_state_from_spec
from reconciler.core.plan import Plan, plan
from reconciler.store import (
    ApplyReport,
    GitRevision,
    RegistryEntry,
    apply_plan,
    git_revision,
    migrate,
    open_pool,
    read_a1_hashes,
    read_registry,
    read_state,
    sync_platform_admins,
)
from specs_schema.load import SpecError, SpecLoader, SpecSet

log = logging.getLogger(__name__)


class SpecsUnavailable(RuntimeError):
    """The spec directory cannot be read at all; the pass changes nothing."""


@dataclass(frozen=True)
class PassOutcome:
    """What one pass found and did (for logs, /status, metrics and the CLI)."""

    full: bool
    revision: GitRevision | None
    plan: Plan
    report: ApplyReport
    spec_errors: tuple[SpecError, ...]
    invalid: Mapping[str, tuple[SpecError, ...]]
    planned_tenants: frozenset[str]
    seconds: float
    state_changed: bool = False

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.spec_errors


@dataclass
class AppliedState:
    """The applied state as last read from the database: what the snapshot and the live
    switches are built from (never the raw YAML)."""

    state: dict[str, TenantState] = field(default_factory=dict)
    a1_hashes: dict[tuple[str, str], str] = field(default_factory=dict)
    registry: dict[str, RegistryEntry] = field(default_factory=dict)

    def replace_tenants(self, conn: psycopg.Connection, tenant_ids: frozenset[str] | None) -> bool:
        """Re-read some tenants (None: all) from the database; True when anything differs
        from what was held (so unchanged re-reads cost no snapshot rebuild)."""
        if tenant_ids is None:
            state, hashes = read_state(conn), read_a1_hashes(conn)
            changed = state != self.state or hashes != self.a1_hashes
            self.state, self.a1_hashes = state, hashes
            self.registry = read_registry(conn)
            return changed
        if not tenant_ids:
            return False
        fresh = read_state(conn, tenants=tenant_ids)
        hashes = read_a1_hashes(conn, tenants=tenant_ids)
        before_state = {t: self.state[t] for t in tenant_ids if t in self.state}
        before_hashes = {k: v for k, v in self.a1_hashes.items() if k[0] in tenant_ids}
        changed = fresh != before_state or hashes != before_hashes
        for tenant_id in tenant_ids:
            self.state.pop(tenant_id, None)
        self.state.update(fresh)
        if changed:
            self.a1_hashes = {k: v for k, v in self.a1_hashes.items() if k[0] not in tenant_ids}
            self.a1_hashes.update(hashes)
        self.registry = read_registry(conn)
        return changed


class Reconciler:
    """Owns the spec loader cache and the in-memory applied state between passes."""

    def __init__(
        self,
        tenants_dir: Path,
        *,
        host: str | None = None,
        dsn: str | None = None,
        parallel_threshold: int = 20,
    ) -> None:
        self.tenants_dir = tenants_dir
        self.host = host
        # many tenants to apply (a cold start): a 2-connection pool applies two at a time
        self.dsn = dsn
        self.parallel_threshold = parallel_threshold
        # backend pids of the connections this reconciler applied through: their NOTIFYs are
        # our own and need no refresh (replaced each pass; pids are not reused that fast)
        self.own_backend_pids: frozenset[int] = frozenset()
        self.loader = SpecLoader()
        self.applied = AppliedState()
        self._desired_cache: dict[str, TenantState] = {}  # by spec digest
        self.last_specs: SpecSet | None = None

    def load_specs(self) -> SpecSet:
        specs = self.loader.load([self.tenants_dir])
        self.last_specs = specs
        return specs

    def desired_state(self, specs: SpecSet) -> State:
        """Specs as records; conversions are cached by digest (a pass after one edit
        converts one tenant, not a thousand)."""
        desired: dict[str, TenantState] = {}
        cache: dict[str, TenantState] = {}
        for tenant_id, loaded in specs.tenants.items():
            state = self._desired_cache.get(loaded.digest)
            if state is None:
                state = tenant_state_from_spec(loaded.spec)
            cache[loaded.digest] = state
            desired[tenant_id] = state
        self._desired_cache = cache
        return desired

    def bootstrap(self, conn: psycopg.Connection) -> bool:
        """Migrate and read the whole applied state (start-up, reconnect, full passes);
        True when it differs from what was held."""
        migrate(conn)
        return self.applied.replace_tenants(conn, None)

    def refresh(self, conn: psycopg.Connection, tenant_ids: frozenset[str] | None) -> bool:
        """Follow an apply made elsewhere (another daemon, `pbx apply`, a rotation)."""
        return self.applied.replace_tenants(conn, tenant_ids)

    def run_pass(self, conn: psycopg.Connection, *, full: bool) -> PassOutcome:
        started = time.perf_counter()
        if not self.tenants_dir.is_dir():
            # never read as "every tenant was removed from git": that would orphan them all
            raise SpecsUnavailable(f"tenants directory {self.tenants_dir} does not exist")
        specs = self.load_specs()
        revision = git_revision(self.tenants_dir)
        desired = self.desired_state(specs)
        invalid = frozenset(specs.invalid)
        state_changed = False
        if full:
            state_changed = self.bootstrap(conn)
            candidates = frozenset(desired) | frozenset(self.applied.state)
        else:
            candidates = self._changed(specs, desired)
        candidates = candidates - invalid
        if full:
            actual = {t: self.applied.state[t] for t in candidates if t in self.applied.state}
        else:
            actual = read_state(conn, tenants=candidates) if candidates else {}
        wanted = {t: desired[t] for t in candidates if t in desired}
        changes = plan(wanted, actual, frozen=invalid)
        digests = {t: specs.tenants[t].digest for t in wanted}
        apply_args = {
            "desired": wanted,
            "revision": revision,
            "host": self.host,
            "digests": digests,
            "frozen": invalid,
        }
        pids = {conn.info.backend_pid}
        if self.dsn is not None and len(changes.tenants()) >= self.parallel_threshold:
            with open_pool(
                self.dsn,
                min_size=2,
                max_size=2,
                configure=lambda c: pids.add(c.info.backend_pid),
            ) as pool:
                self.own_backend_pids = frozenset(pids)
                report = apply_plan(pool, changes, workers=2, **apply_args)  # type: ignore[arg-type]
        else:
            self.own_backend_pids = frozenset(pids)
            report = apply_plan(conn, changes, **apply_args)  # type: ignore[arg-type]
        if specs.platform is not None:
            sync_platform_admins(conn, {a.email: a.name for a in specs.platform.super_admins})
        touched = frozenset(changes.tenants()) | frozenset(report.applied)
        state_changed = self.applied.replace_tenants(conn, touched) or state_changed
        outcome = PassOutcome(
            full=full,
            revision=revision,
            plan=changes,
            report=report,
            spec_errors=specs.errors,
            invalid=specs.invalid,
            planned_tenants=candidates,
            seconds=time.perf_counter() - started,
            state_changed=state_changed,
        )
        self._log(outcome)
        return outcome

    def _changed(self, specs: SpecSet, desired: State) -> frozenset[str]:
        registry = self.applied.registry
        changed = {
            tenant_id
            for tenant_id, loaded in specs.tenants.items()
            if (entry := registry.get(tenant_id)) is None
            or entry.spec_digest != loaded.digest
            or tenant_id not in self.applied.state
        }
        removed = {
            tenant_id
            for tenant_id, state in self.applied.state.items()
            if tenant_id not in desired and state.tenant.status != TenantLifecycle.ORPHANED
        }
        return frozenset(changed | removed)

    def _log(self, outcome: PassOutcome) -> None:
        for change in outcome.plan.changes:
            if change.tenant in outcome.report.failed:
                continue
            fields = {
                "tenant": change.tenant,
                "kind": change.kind.value,
                "key": change.key,
                "action": change.action.verb,
            }
            if change.fields:
                fields["changed"] = ",".join(sorted(change.fields))
            event(log, "change applied", logging.INFO, **fields)
        for tenant_id, failure in outcome.report.failed.items():
            event(
                log, "tenant apply rolled back", logging.ERROR, tenant=tenant_id, error=str(failure)
            )
        for spec_error in outcome.spec_errors:
            event(log, "spec error", logging.WARNING, error=str(spec_error))

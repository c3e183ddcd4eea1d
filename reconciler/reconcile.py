"""THE reconcile pass, shared by ``pbx plan``, ``pbx apply`` and the daemon.

A fixed pipeline: load specs (with the git revision) -> read the stored state -> plan (the
tenants' and the platform's changes) -> record the attempt -> apply the platform (one
transaction of its own) -> apply the tenants (one transaction each) -> record the spec
status (in ``finally``, whatever happened) -> re-read what was applied. The first three
steps make a ``PlannedPass`` (a value: ``pbx plan`` prints it); ``apply_pass`` carries it
out. Synchronous on purpose: the daemon runs it in a worker thread so the event loop keeps
answering FreeSWITCH; the CLI runs it directly.

The platform goes first because it holds what tenants point at (super admins today; carrier
gateways that agent contacts dial next): parents before children, as within a tenant. Its
failure is isolated both ways: it is recorded (history, ``PassOutcome.platform``) and the
tenants still apply; a failing tenant never touches the platform. A ``--tenant`` pass plans
no platform change.

Incremental: a pass triggered by a file change plans only tenants whose spec digest differs
from what the registry says was applied (plus new and removed ones); a full pass (periodic,
SIGHUP, start-up, ``pbx apply``) considers every tenant, which also repairs drift in the
database. A daemon's full pass is cheap when little changed: every file is read and hashed
again, but parses and desired states are reused by content; the store is asked one
fingerprint per tenant (``reconciler.store.fingerprints``) and only tenants whose
fingerprint moved are read again; a tenant found in sync last time with the very same
records on both sides is not diffed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.core.desired import platform_state_from_spec
from reconciler.core.desired import tenant_state_from_spec as desired_records
from reconciler.core.errors import SpecsUnavailable
from reconciler.core.gcpause import gc_paused
from reconciler.core.guards import Sighting, hold_mass_orphaning, hold_shrinking, without
from reconciler.core.logs import event
from reconciler.core.model import (
    PLATFORM,
    PlatformState,
    State,
    Tenant,
    TenantLifecycle,
    TenantState,
)
from reconciler.core.news import Newsroom
from reconciler.core.plan import Plan, apply_changes, plan, plan_platform
from reconciler.core.revision import GitRevision
from reconciler.core.served import managed_domains
from reconciler.core.settled import Settled, fingerprint_digest
from reconciler.sources.code_version import code_digest
from reconciler.sources.revision import git_revision
from reconciler.sources.secrets import MISSING_CREDENTIALS, SecretsSource
from reconciler.store import (
    ApplyReport,
    PlatformReport,
    RegistryEntry,
    SpecStatus,
    Store,
    StoreError,
    UnknownTenant,
)
from specs_schema.load import SpecError, SpecLoader, SpecSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedPass:
    """Everything a pass decided before touching anything.

    ``desired``/``actual``: records of the planned tenants only. ``invalid``: tenants whose
    file fails validation (frozen: never in ``plan``) with their errors. ``platform``: the
    platform records ``_platform.yaml`` declares, None when that file is absent or invalid
    (then the platform is left as it is), or when this pass plans one tenant only."""

    full: bool
    plan: Plan
    desired: State
    actual: State
    revision: GitRevision | None
    digests: Mapping[str, str]
    invalid: Mapping[str, tuple[SpecError, ...]]
    spec_errors: tuple[SpecError, ...]
    platform: PlatformState | None
    candidates: frozenset[str]
    held: Mapping[str, str] = field(default_factory=dict)
    retired_domains: frozenset[str] = frozenset()
    unstable: frozenset[str] = frozenset()  # files caught changing while read: retry soon
    settled: frozenset[str] = frozenset()
    """Tenants left out as settled (``plan_pass(settled=True)``): in sync, not read."""

    def tenant_records(self) -> dict[str, Tenant]:
        records = {t: s.tenant for t, s in self.actual.items()}
        records.update({t: s.tenant for t, s in self.desired.items()})
        return records

    def post_apply_state(self) -> State:
        """What the store will hold for the planned tenants once the plan is applied."""
        return apply_changes(self.actual, self.plan)

    def spec_status(self) -> dict[str, tuple[str | None, tuple[str, ...]]]:
        """``{tenant: (file, errors)}`` for the durable invalid-spec status."""
        return {
            tenant_id: (errors[0].file if errors else None, tuple(str(e) for e in errors))
            for tenant_id, errors in self.invalid.items()
        }


@dataclass(frozen=True)
class PassOutcome:
    """What a pass did (for logs, /status, metrics and the CLI)."""

    planned: PlannedPass
    report: ApplyReport
    platform: PlatformReport
    seconds: float
    state_changed: bool = False

    @property
    def ok(self) -> bool:
        return self.report.ok and self.platform.ok and not self.planned.spec_errors

    def applied_changes(self) -> Plan:
        """Changes this pass committed: not those of scopes another writer had already
        brought to the spec (``unchanged``), nor of scopes rolled back."""
        applied = set(self.report.applied)
        committed = self.planned.plan.only_tenants(applied.__contains__)
        return committed if self.platform.result == "applied" else replace(committed, platform=())


@dataclass
class AppliedState:
    """The applied state as last read from the store: what the snapshot and the live
    switches are built from (never the raw YAML)."""

    state: dict[str, TenantState] = field(default_factory=dict)
    a1_hashes: dict[tuple[str, str], str] = field(default_factory=dict)
    voicemail_hashes: dict[tuple[str, str], str] = field(default_factory=dict)
    registry: dict[str, RegistryEntry] = field(default_factory=dict)
    spec_status: dict[str, SpecStatus] = field(default_factory=dict)
    retired_domains: frozenset[str] = frozenset()
    platform_admins: dict[str, str] = field(default_factory=dict)
    platform: PlatformState = field(default_factory=PlatformState)
    """The applied platform scope (super admins and carrier gateways)."""
    gateway_problems: dict[str, str] = field(default_factory=dict)
    """Carried gateways whose password this host lacks, and why (set by each pass)."""
    fingerprints: dict[str, object] = field(default_factory=dict)
    """What the store said of each tenant held (``Store.read_fingerprints``) before it was
    read; a tenant re-read without one has none, and is read again by the next full read."""
    serving: bool = True
    """A daemon's: it feeds the snapshot (a1 hashes) and is read again every full pass
    (fingerprints: only what changed). A one-shot command (``pbx plan``, ``pbx apply``)
    reads the records once and needs neither."""
    _a1_index: _KeysByTenant = field(
        default_factory=lambda: _KeysByTenant(), repr=False, compare=False
    )
    _pin_index: _KeysByTenant = field(
        default_factory=lambda: _KeysByTenant(), repr=False, compare=False
    )

    def managed_domains(self) -> frozenset[str]:
        """Domains whose ``name@domain`` objects on a switch are ours: every stored tenant's,
        and those tenants held before (created by us, so ours to remove)."""
        return managed_domains(self.state) | self.retired_domains

    def replace_tenants(self, store: Store, tenant_ids: frozenset[str] | None) -> bool:
        """Re-read some tenants (None: all) and the control tables; True when the tenants'
        records or hashes differ from what was held (unchanged re-reads cost no snapshot
        rebuild). A changed ``state`` is a new mapping: readers holding the old one (the
        portal, by identity) never see it change under them."""
        if tenant_ids is None:
            changed = self._reread_changed(store)
        else:
            changed = self._reread(store, tenant_ids) if tenant_ids else False
            for tenant_id in tenant_ids:  # read without one: the next full read reads it
                self.fingerprints.pop(tenant_id, None)
        self.registry = store.read_registry()
        self.spec_status = store.read_spec_status()
        self.retired_domains = store.read_retired_domains()
        self.platform_admins = store.read_platform_admins()
        platform = store.read_platform()
        changed = changed or platform.gateways != self.platform.gateways
        self.platform = platform
        return changed

    def _reread_changed(self, store: Store) -> bool:
        """Every registered tenant, reading again only those whose fingerprint differs from
        the one read with what is held (a full pass over an unchanged database reads one
        small value per tenant, and keeps every record object: unchanged is ``is``)."""
        if not self.serving:
            self.fingerprints = {}
            return self._reread(store, None)
        # Before the state: a write in between shows next time. At a start too (nothing
        # held, everything read): one query over the change counters, so the first full
        # pass already vouches for what it read and the second reads nothing again.
        prints = store.read_fingerprints()
        if not self.state:
            changed = self._reread(store, None)
        else:
            stale = frozenset(
                t for t, p in prints.items() if t not in self.state or self.fingerprints.get(t) != p
            )
            gone = frozenset(self.state) - frozenset(prints)
            changed = self._reread(store, stale | gone)
        self.fingerprints = {t: p for t, p in prints.items() if t in self.state}
        return changed

    def _reread(self, store: Store, tenant_ids: frozenset[str] | None) -> bool:
        """Read ``tenant_ids`` (None: every registered tenant) again; True when different."""
        if tenant_ids is None:
            state = store.read_state()
            hashes = store.read_a1_hashes() if self.serving else {}
            pins = store.read_voicemail_hashes() if self.serving else {}
            changed = (state, hashes, pins) != (self.state, self.a1_hashes, self.voicemail_hashes)
            self.state, self.a1_hashes, self.voicemail_hashes = state, hashes, pins
            return changed
        if not tenant_ids:
            return False
        fresh = store.read_state(tenant_ids)
        hashes = store.read_a1_hashes(tenant_ids) if self.serving else {}
        pins = store.read_voicemail_hashes(tenant_ids) if self.serving else {}
        before = {t: self.state[t] for t in tenant_ids if t in self.state}
        a1, pins_held = self._a1_index.of(self.a1_hashes), self._pin_index.of(self.voicemail_hashes)
        if (fresh, hashes, pins) == (before, a1.only(tenant_ids), pins_held.only(tenant_ids)):
            return False
        state = {t: s for t, s in self.state.items() if t not in tenant_ids}
        state.update(fresh)
        self.state = dict(sorted(state.items()))  # the order a full read gives
        self.a1_hashes = a1.replaced(tenant_ids, hashes)
        self.voicemail_hashes = pins_held.replaced(tenant_ids, pins)
        return True


@dataclass
class _KeysByTenant:
    """Which keys of a ``{(tenant, name): digest}`` mapping are each tenant's, so a re-read
    of one tenant touches its own keys, not all 100,000 (a comprehension over the whole
    mapping, four per re-read, was a fifth of a one-tenant pass at 1,000 tenants)."""

    digests: dict[tuple[str, str], str] | None = None
    keys: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def of(self, digests: dict[tuple[str, str], str]) -> _KeysByTenant:
        """This index, rebuilt when ``digests`` is not the mapping it was made for."""
        if self.digests is not digests:
            self.digests, self.keys = digests, {}
            for key in digests:
                self.keys.setdefault(key[0], []).append(key)
        return self

    def only(self, tenants: frozenset[str]) -> dict[tuple[str, str], str]:
        assert self.digests is not None
        return {k: self.digests[k] for t in tenants for k in self.keys.get(t, ())}

    def replaced(
        self, tenants: frozenset[str], fresh: dict[tuple[str, str], str]
    ) -> dict[tuple[str, str], str]:
        """A new mapping (readers of the old one never see it change): ``tenants``' keys
        replaced by ``fresh``; the index follows it."""
        assert self.digests is not None
        out = dict(self.digests)
        for tenant in tenants:
            for key in self.keys.pop(tenant, ()):
                del out[key]
        for key in fresh:
            self.keys.setdefault(key[0], []).append(key)
        out.update(fresh)
        self.digests = out
        return out


@dataclass(frozen=True)
class PassGuards:
    """See ``reconciler.core.guards``. ``hold_shrinking`` is for unattended passes (the
    daemon); a person running ``pbx apply`` has read the plan. ``stable_seconds``: how long
    a shrinking tenant's file must stay unchanged before its shrink is applied."""

    max_orphan_share: float = 0.5
    allow_mass_orphan: bool = False
    hold_shrinking: bool = False
    stable_seconds: float = 2.0


class Reconciler:
    """Owns what outlives a pass: the spec loader's cache, desired records cached by spec
    digest, the applied state mirror, and what the guards held last time."""

    def __init__(
        self,
        tenants_dir: Path,
        store: Store,
        guards: PassGuards | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        one_shot: bool = False,
    ) -> None:
        """``one_shot``: one pass and done (``pbx plan``, ``pbx apply``): nothing is served
        from the applied state nor kept for a next pass (``AppliedState.serving``)."""
        self.tenants_dir = tenants_dir
        self.store = store
        self.guards = guards or PassGuards()
        self.clock = clock
        self._shrinking: Mapping[str, Sighting] = {}
        self.shrink_wait: float | None = None
        """Seconds until a held shrinking tenant may be confirmed (None: none is held): the
        daemon passes again then, not at its next interval."""
        self._spec_news = Newsroom()
        self._failure_news = Newsroom()
        self.loader = SpecLoader(relative_to=tenants_dir, salt=code_digest())
        self.secrets = SecretsSource()
        self.applied = AppliedState(serving=not one_shot)
        self._desired_cache: dict[str, TenantState] = {}
        self._in_sync: dict[str, tuple[TenantState, TenantState]] = {}
        """Tenants the last full pass found in sync: ``{id: (desired, actual)}`` as held."""
        self.last_specs: SpecSet | None = None
        self._desired: State = {}
        self._recorded: dict[str, Settled] | None = None
        """What the store holds of settled tenants (read once, then kept up to date)."""

    @property
    def shrink_pending(self) -> bool:
        """A shrinking tenant was held: the next pass decides it."""
        return bool(self._shrinking)

    def bootstrap(self) -> bool:
        """Migrate and read the whole applied state; True when it differs from what was held."""
        self.store.migrate()
        return self.applied.replace_tenants(self.store, None)

    def refresh(self, tenant_ids: frozenset[str] | None) -> bool:
        """Follow an apply made elsewhere (another daemon, `pbx apply`, a rotation)."""
        return self.applied.replace_tenants(self.store, tenant_ids)

    def run_pass(self, *, full: bool) -> PassOutcome:
        return self.apply_pass(self.plan_pass(full=full))

    def plan_pass(
        self, *, full: bool, only: str | None = None, settled: bool = False
    ) -> PlannedPass:
        """Load, read, plan. ``only``: plan that one tenant (``--tenant``). ``settled`` (a
        full pass of every tenant, ``pbx plan``): tenants settled since the last full pass
        (``reconciler.core.settled``) are neither parsed nor read nor diffed: the plan is
        the one a full pass makes, without their empty share of it. Such a ``PlannedPass``
        is for showing, not for ``apply_pass``."""
        skip = self._settled_files() if settled and full and only is None else None
        specs = self._load_specs(reread=full, settled=skip)
        revision = git_revision(self.tenants_dir)
        desired = self._desired_state(specs)
        invalid = frozenset(specs.invalid)
        if only is not None:
            actual = self.store.read_state([only])
            if only not in desired and only not in actual and only not in invalid:
                raise UnknownTenant(only)
            candidates = frozenset({only})
            served = self._served(self.applied.state)
        elif skip is not None:
            rest = frozenset(self.store.read_registry()) - specs.settled
            actual = self.store.read_state(rest) if rest else {}
            candidates = frozenset(desired) | frozenset(actual)
            served = len(specs.settled) + self._served(actual)  # a settled tenant is served
        elif full:
            self.bootstrap()
            candidates = frozenset(desired) | frozenset(self.applied.state)
            actual = self.applied.state
            served = self._served(actual)
        else:
            candidates = self._changed(specs, desired)
            actual = self.store.read_state(candidates - invalid) if candidates - invalid else {}
            served = self._served(self.applied.state)
        candidates -= invalid
        wanted = {t: desired[t] for t in candidates if t in desired}
        actual = {t: actual[t] for t in candidates if t in actual}
        digests = {t: specs.tenants[t].digest for t in wanted}
        fingerprints = {t: specs.tenants[t].fingerprint for t in wanted}
        planned = self._plan(wanted, actual, invalid, memo=full and only is None)
        population = max(served, len(actual) + len(specs.settled))
        changes, held = self._guard(planned, actual, fingerprints, population)
        wanted = {t: s for t, s in wanted.items() if t not in held}
        platform = None
        if only is None and specs.platform is not None:
            applied = self.store.read_platform()
            platform = self._desired_platform(specs, applied)
            changes = replace(changes, platform=plan_platform(platform, applied))
        return PlannedPass(
            full=full or only is not None,
            plan=changes,
            desired=wanted,
            actual=actual,
            revision=revision,
            digests={t: d for t, d in digests.items() if t not in held},
            invalid=specs.invalid,
            spec_errors=specs.errors,
            platform=platform,
            candidates=candidates,
            held=held,
            retired_domains=self.store.read_retired_domains(),
            unstable=frozenset(specs.unstable),
            settled=specs.settled,
        )

    def _plan(self, wanted: State, actual: State, frozen: frozenset[str], *, memo: bool) -> Plan:
        """``plan(wanted, actual)``. ``memo`` (a full pass: both sides hold every tenant):
        a tenant the last full pass found in sync, with the very same record objects on
        both sides now (desired cached by spec digest, actual kept while its fingerprint
        holds), is not diffed again: its diff is a pure function of the two."""
        if not memo:
            return plan(wanted, actual, frozen=frozen)
        same = {
            t for t, (w, a) in self._in_sync.items() if wanted.get(t) is w and actual.get(t) is a
        }
        changes = plan(
            {t: s for t, s in wanted.items() if t not in same},
            {t: s for t, s in actual.items() if t not in same},
            frozen=frozen,
        )
        touched = set(changes.tenants())
        self._in_sync = {
            t: (state, actual[t]) for t, state in wanted.items() if t in actual and t not in touched
        }
        return changes

    @staticmethod
    def _served(state: State) -> int:
        return sum(1 for s in state.values() if s.tenant.status != TenantLifecycle.ORPHANED)

    def _guard(
        self, changes: Plan, actual: State, fingerprints: Mapping[str, str], population: int
    ) -> tuple[Plan, dict[str, str]]:
        """``population``: how many tenants the mass-orphan share is of."""
        g = self.guards
        held = hold_mass_orphaning(
            changes, population, max_share=g.max_orphan_share, allowed=g.allow_mass_orphan
        )
        if g.hold_shrinking:
            shrinking = hold_shrinking(
                changes,
                actual,
                fingerprints,
                self._shrinking,
                now=self.clock(),
                stable_seconds=g.stable_seconds,
            )
            self._shrinking, self.shrink_wait = shrinking.shrinking, shrinking.wait
            held.update(shrinking.reasons)
        for tenant_id, reason in held.items():
            event(log, "tenant held back", logging.WARNING, tenant=tenant_id, reason=reason)
        return without(changes, held), held

    def apply_pass(self, planned: PlannedPass) -> PassOutcome:
        """Carry out ``planned``; the spec status is recorded whatever happens."""
        started = time.perf_counter()
        report = ApplyReport()
        platform = PlatformReport()
        failure: BaseException | None = None
        try:
            self.store.record_attempt(planned.plan.tenants(), planned.revision)
            platform = self.store.apply_platform(
                planned.plan.platform, desired=planned.platform, revision=planned.revision
            )
            report = self.store.apply(
                planned.plan,
                desired=planned.desired,
                revision=planned.revision,
                digests=planned.digests,
                frozen=frozenset(planned.invalid),
            )
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                self.store.record_spec_status(planned.spec_status(), planned.revision)
            except StoreError:
                if failure is None:
                    raise
        renamed_away = frozenset(planned.plan.renames().values())
        touched = frozenset(planned.plan.tenants()) | frozenset(report.applied) | renamed_away
        state_changed = self.applied.replace_tenants(self.store, touched)
        if self.applied.serving:
            self._settle_quietly(lambda: self.record_settled(planned))
        outcome = PassOutcome(
            planned, report, platform, time.perf_counter() - started, state_changed
        )
        _log(outcome, self._spec_news, self._failure_news)
        return outcome

    def _load_specs(
        self, *, reread: bool, settled: Mapping[str, Mapping[str, object]] | None = None
    ) -> SpecSet:
        """``reread``: read every file's content again (full passes), not trusting size and
        modification time (an edit can keep both). ``settled``: files not to parse."""
        self._check_tenants_dir()
        with gc_paused():
            specs = self.loader.load([self.tenants_dir], reread=reread, settled=settled)
        self.last_specs = specs
        return specs

    def _check_tenants_dir(self) -> None:
        if not self.tenants_dir.is_dir():
            # never read as "every tenant was removed from git": that would orphan them all
            raise SpecsUnavailable(f"tenants directory {self.tenants_dir} does not exist")

    def _settled_files(self) -> dict[str, Mapping[str, object]]:
        """``{file: cross-tenant view}`` of the tenants settled now: their file's inputs
        digest and their stored fingerprint both as recorded when last found in sync."""
        self._check_tenants_dir()
        self.store.migrate()
        recorded = self.store.read_settled()
        scanned = self.loader.scan([self.tenants_dir])
        maybe = {
            name: stem
            for name, (stem, inputs) in scanned.items()
            if (seen := recorded.get(stem)) is not None and seen.inputs == inputs
        }
        prints = self.store.read_fingerprints(frozenset(maybe.values())) if maybe else {}
        return {
            name: recorded[stem].view
            for name, stem in maybe.items()
            if stem in prints and fingerprint_digest(prints[stem]) == recorded[stem].fingerprint
        }

    def record_settled(self, planned: PlannedPass) -> int:
        """After a daemon's full pass: record the tenants it found in sync whose stored
        fingerprint it holds (read before their records), so ``pbx plan`` need not parse
        them. Returns how many rows were written (only those that changed)."""
        specs = self.last_specs
        if not planned.full or specs is None or specs.settled:
            return 0
        found: dict[str, Settled] = {}
        for tenant_id, (_, actual) in self._in_sync.items():
            loaded = specs.tenants.get(tenant_id)
            fingerprint = self.applied.fingerprints.get(tenant_id)
            if (
                loaded is None
                or not loaded.inputs
                or loaded.view is None
                or fingerprint is None
                or self.applied.state.get(tenant_id) is not actual
            ):
                continue
            found[tenant_id] = Settled(loaded.inputs, fingerprint_digest(fingerprint), loaded.view)
        return self._record(found)

    def settle_after_apply(self, planned: PlannedPass) -> int:
        """After a one-shot full pass (``pbx apply``), which holds no fingerprints: read
        them, then the records they vouch for, and record the tenants in sync."""
        specs = self.last_specs
        if not planned.full or specs is None or specs.settled:
            return 0
        wanted = {
            t: self._desired[t]
            for t, loaded in specs.tenants.items()
            if t in self._desired and loaded.inputs and t not in planned.held
        }
        if not wanted:
            return 0
        prints = self.store.read_fingerprints(frozenset(wanted))
        actual = self.store.read_state(frozenset(prints))
        changed = set(plan(wanted, actual).tenants())
        found = {
            t: Settled(specs.tenants[t].inputs, fingerprint_digest(prints[t]), view)
            for t in wanted
            if t in prints
            and t in actual
            and t not in changed
            and (view := specs.tenants[t].view) is not None
        }
        return self._record(found)

    @staticmethod
    def _settle_quietly(record: Callable[[], int]) -> None:
        """Recording settled tenants only spares later plans a parse: its failure is
        logged, never the pass's."""
        try:
            record()
        except StoreError as exc:
            event(log, "settled tenants not recorded", logging.WARNING, error=str(exc))

    def settle_quietly_after_apply(self, planned: PlannedPass) -> None:
        self._settle_quietly(lambda: self.settle_after_apply(planned))

    def _record(self, found: Mapping[str, Settled]) -> int:
        if self._recorded is None:
            self._recorded = self.store.read_settled()
        fresh = {t: s for t, s in found.items() if self._recorded.get(t) != s}
        if fresh:
            self.store.record_settled(fresh)
            self._recorded.update(fresh)
        return len(fresh)

    def _desired_platform(self, specs: SpecSet, applied: PlatformState) -> PlatformState:
        """The platform ``_platform.yaml`` declares (its caller skips an absent or invalid
        one: the platform then stays as it is). Each carried gateway's credentials marker
        comes from this host's secrets; a host without a gateway's password (``pbx plan`` in
        CI, say) keeps the applied marker, so it never plans the password away; the gateway
        is reported (its error, no other's) and a new one is planned as ``missing``."""
        assert specs.platform is not None
        carried = [g for g in specs.platform.gateways if g.proxy is not None]
        secrets = self.secrets.current(g.name for g in carried)
        markers = {g.name: secrets.credentials_marker(g.name, g.username) for g in carried}
        for name, marker in markers.items():
            known = applied.gateways.get(name)
            if marker == MISSING_CREDENTIALS and known is not None and known.managed:
                markers[name] = known.credentials
        problems = {
            g.name: secrets.missing_reason(g.name)
            for g in carried
            if secrets.credentials_marker(g.name, g.username) == MISSING_CREDENTIALS
        }
        for name, problem in problems.items():
            if self.applied.gateway_problems.get(name) != problem:  # once, not every pass
                event(log, "gateway has no password", logging.WARNING, gateway=name, reason=problem)
        self.applied.gateway_problems = problems
        return platform_state_from_spec(specs.platform, markers)

    def _desired_state(self, specs: SpecSet) -> State:
        """Specs as records; conversions are cached by digest (a pass after one edit
        converts one tenant, not a thousand)."""
        desired: dict[str, TenantState] = {}
        cache: dict[str, TenantState] = {}
        with gc_paused():  # a cold conversion allocates 100k+ records that all stay alive
            for tenant_id, loaded in specs.tenants.items():
                state = self._desired_cache.get(loaded.digest) or desired_records(loaded.spec)
                cache[loaded.digest] = desired[tenant_id] = state
        self._desired_cache = cache
        self._desired = desired
        return desired

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
        returned = {  # a file put back: the tenant is served again at once, not at a full pass
            tenant_id
            for tenant_id, state in self.applied.state.items()
            if tenant_id in desired and state.tenant.status == TenantLifecycle.ORPHANED
        }
        return frozenset(changed | removed | returned)


def _log(outcome: PassOutcome, spec_news: Newsroom, failure_news: Newsroom) -> None:
    """One line per committed change (nothing for tenants another writer had applied); a
    spec error or a failing scope when it appears, changes or clears, not every pass."""
    for change in outcome.applied_changes().all_changes:
        scope = {"tenant": change.tenant} if change.tenant != PLATFORM else {"scope": PLATFORM}
        fields = {
            **scope,
            "kind": change.kind.value,
            "key": change.key,
            "action": change.action.verb,
        }
        if change.fields:
            fields["changed"] = ",".join(sorted(change.fields))
        event(log, "change applied", logging.INFO, **fields)
    _log_failures(outcome, failure_news)
    errors = {str(e): str(e) for e in outcome.planned.spec_errors}
    new_errors, fixed = spec_news.update(errors)
    for text in new_errors:
        event(log, "spec error", logging.WARNING, error=text)
    if fixed:
        event(log, "spec errors fixed", count=len(fixed))


def _log_failures(outcome: PassOutcome, failure_news: Newsroom) -> None:
    """A failing scope (a tenant, the platform) when it fails, changes error or applies
    again; the newsroom is keyed by scope id (``PLATFORM`` for the platform)."""
    failing = dict(failure_news.said)  # a tenant leaves this list only by applying
    for tenant_id in outcome.report.applied:
        if failing.pop(tenant_id, None) is not None:
            event(log, "tenant applies again", tenant=tenant_id)
    failing.update({t: str(f) for t, f in outcome.report.failed.items()})
    if outcome.platform.error is not None:
        failing[PLATFORM] = str(outcome.platform.error)
    elif outcome.platform.result != "none" and failing.pop(PLATFORM, None) is not None:
        event(log, "platform applies again")
    for scope, error in failure_news.update(failing)[0].items():
        if scope == PLATFORM:
            event(log, "platform apply rolled back", logging.ERROR, error=error)
        else:
            event(log, "tenant apply rolled back", logging.ERROR, tenant=scope, error=error)

"""The store as the reconcile pass sees it: one small interface, two implementations
(``PostgresStore``, and ``MemoryStore`` in ``memory`` for running the pipeline without a
database; ``tests/store/test_contract.py`` holds both to the same behaviour).

Every method is synchronous: the daemon calls them from a worker thread, the CLI directly.
Failures are ``StoreError``s (``StoreUnavailable`` when the database is gone).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from reconciler.core.model import PlatformState, State, TenantState
from reconciler.core.plan import Change, Plan
from reconciler.core.revision import GitRevision
from reconciler.core.settled import Settled
from reconciler.store.admins import PlatformReport
from reconciler.store.apply import ApplyReport
from reconciler.store.read import RegistryEntry
from reconciler.store.spec_status import SpecStatus


class Store(Protocol):
    def reset(self) -> None:
        """Drop any connection after a failure; the next call reconnects."""
        ...

    def migrate(self) -> None:
        """Bring every schema to the current version (idempotent, cheap when current)."""
        ...

    def read_state(self, tenants: Collection[str] | None = None) -> dict[str, TenantState]:
        """Registered tenants (all, or only ``tenants``) as the planner's records."""
        ...

    def read_fingerprints(self, tenants: Collection[str] | None = None) -> dict[str, object]:
        """``{tenant id: fingerprint}`` of registered tenants: a value equal between two
        calls only when nothing ``read_state`` or ``read_a1_hashes`` return for that tenant
        changed meanwhile (see ``reconciler.store.fingerprints``). Read it before the state."""
        ...

    def read_registry(self) -> dict[str, RegistryEntry]: ...

    def read_a1_hashes(
        self, tenants: Collection[str] | None = None
    ) -> dict[tuple[str, str], str]: ...

    def read_voicemail_hashes(
        self, tenants: Collection[str] | None = None
    ) -> dict[tuple[str, str], str]:
        """Each box's PIN digest (``vm-a1-hash``), keyed like ``read_a1_hashes``."""
        ...

    def read_spec_status(self) -> dict[str, SpecStatus]: ...

    def read_settled(self) -> dict[str, Settled]:
        """What full passes recorded of tenants they found in sync (``core.settled``)."""
        ...

    def record_settled(
        self, settled: Mapping[str, Settled], unsettled: Collection[str] = ()
    ) -> None:
        """Record ``settled`` for registered tenants; forget ``unsettled``."""
        ...

    def read_platform_admins(self) -> dict[str, str]:
        """``{email: name}`` of the applied super admins."""
        ...

    def read_platform(self) -> PlatformState:
        """The applied platform scope: super admins and carrier gateways."""
        ...

    def read_retired_domains(self) -> frozenset[str]:
        """Domains tenants held before (see ``reconciler.store.domains``)."""
        ...

    def record_attempt(self, tenant_ids: Collection[str], revision: GitRevision | None) -> None:
        """Mark a revision as attempted on registered tenants, before applying it."""
        ...

    def apply(
        self,
        plan: Plan,
        *,
        desired: State,
        revision: GitRevision | None,
        digests: Mapping[str, str],
        frozen: Collection[str],
    ) -> ApplyReport:
        """One transaction per tenant; see ``reconciler.store.apply``."""
        ...

    def record_spec_status(
        self,
        invalid: Mapping[str, tuple[str | None, Sequence[str]]],
        revision: GitRevision | None = None,
    ) -> None:
        """The durable invalid-spec status; a tenant turning invalid or valid again is
        recorded in the apply history with ``revision``."""
        ...

    def apply_platform(
        self,
        changes: Sequence[Change],
        *,
        desired: PlatformState | None,
        revision: GitRevision | None,
    ) -> PlatformReport:
        """The platform's changes in one transaction of their own (never a tenant's); a
        failure is recorded and reported, not raised. See ``reconciler.store.admins``."""
        ...

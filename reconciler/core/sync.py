"""A tenant's sync state at a glance: the one rule ``/status``, ``pbx status`` and the
portal all show (worst first, the order overviews sort by), and the typed record it is
computed from (``TenantSync``): built once per pass by the daemon, handed to the portal as
is, and serialised only at the edge (``to_dict`` for ``/status``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from reconciler.core.model import TenantLifecycle


class SyncStatus(StrEnum):
    INVALID = "invalid"  # its spec has errors: frozen at the last applied state
    HELD = "held"  # a guard kept it out of the last pass (mass orphaning, a shrinking file)
    OUT_OF_SYNC = "out of sync"  # git differs from what is applied, or the last apply failed
    ORPHANED = "orphaned"  # its file left git: kept, not served, prunable
    SUSPENDED = "suspended"  # declared suspended: kept, not served
    SYNCED = "synced"


def sync_status(
    *,
    lifecycle: str,
    spec_digest: str | None,
    applied_digest: str | None,
    last_error: str | None,
    has_spec_errors: bool,
    held: bool,
) -> SyncStatus:
    """``spec_digest``: of the file in git now (None when gone); ``applied_digest``: of
    what the store holds."""
    if has_spec_errors:
        return SyncStatus.INVALID
    if held:
        return SyncStatus.HELD
    if lifecycle == TenantLifecycle.ORPHANED:
        return SyncStatus.ORPHANED
    if last_error or (spec_digest and spec_digest != applied_digest):
        return SyncStatus.OUT_OF_SYNC
    if lifecycle == TenantLifecycle.SUSPENDED:
        return SyncStatus.SUSPENDED
    return SyncStatus.SYNCED


@dataclass(frozen=True, slots=True)
class TenantSync:
    """What the daemon knows about one tenant's reconciliation.

    ``lifecycle``: the stored status (active / suspended / orphaned). ``spec_digest``: of the
    file in git now (None when the file is gone); ``applied_digest``: of what was applied.
    ``spec_errors``: ``file:line:col: field: message`` strings of the current spec.
    """

    tenant_id: str
    lifecycle: str
    spec_digest: str | None = None
    applied_digest: str | None = None
    applied_revision: str | None = None
    attempted_revision: str | None = None
    last_error: str | None = None
    last_reconcile: datetime | None = None
    spec_file: str | None = None
    spec_errors: tuple[str, ...] = ()
    held: str | None = None  # why a guard kept it out of the last pass
    domain: str = ""
    invalid_since: datetime | None = None

    @property
    def sync(self) -> SyncStatus:
        return sync_status(
            lifecycle=self.lifecycle,
            spec_digest=self.spec_digest,
            applied_digest=self.applied_digest,
            last_error=self.last_error,
            has_spec_errors=bool(self.spec_errors),
            held=bool(self.held),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``/status`` row (``pbx status`` reads it); keys as they always were."""
        return {
            "domain": self.domain,
            "status": self.lifecycle,
            "spec_file": self.spec_file,
            "spec_digest": self.spec_digest,
            "applied_digest": self.applied_digest,
            "last_applied_revision": self.applied_revision,
            "last_attempted_revision": self.attempted_revision,
            "last_error": self.last_error,
            "last_reconcile": _iso(self.last_reconcile),
            "spec_errors": list(self.spec_errors),
            "invalid_since": self.invalid_since.isoformat() if self.invalid_since else None,
            "held": self.held,
            "sync": self.sync.value,
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None

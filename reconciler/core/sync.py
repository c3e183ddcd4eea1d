"""A tenant's sync state at a glance: the one rule ``/status``, ``pbx status`` and the
portal all show (worst first, the order overviews sort by)."""

from __future__ import annotations

from enum import StrEnum

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

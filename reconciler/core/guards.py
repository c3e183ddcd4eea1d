"""Plans too big to trust from one read: decided here, purely, before anything is applied.

Two mistakes look like valid specs for one pass: an empty or half-checked-out ``tenants.d``
(every tenant "removed from git"), and a file caught mid-write (most of a tenant "deleted").
Acting on either deletes nothing for good (orphans are kept, data is restorable) but takes
phones and queues offline and regenerates passwords. So:

* mass orphaning: orphaning at least 2 tenants and more than ``max_share`` of the tenants
  currently served is held back unless the operator says so (``--allow-mass-orphan``);
* shrinking: a tenant about to lose more than half of its objects (at least 4) is held until
  its file has been stable for a window (default 2 s): the same size, mtime and content
  (``LoadedTenant.fingerprint``) seen in reads at least that far apart. A writer pausing
  mid-file (scp, ``cat > f``, an editor flushing in pieces) changes the file again within
  the window and restarts it. Ordinary edits are never delayed: only a large shrink waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.model import COLLECTION_OF, Kind, State, TenantLifecycle, TenantState
from reconciler.core.plan import Action, Plan

SHRINK_MIN_DELETES = 4


@dataclass(frozen=True)
class Sighting:
    """A held tenant's file as first seen unchanged: its fingerprint, and since when (clock
    seconds)."""

    fingerprint: str
    since: float


@dataclass(frozen=True)
class Held:
    """Tenants kept out of this pass, with the reason shown to people."""

    reasons: Mapping[str, str]
    shrinking: Mapping[str, Sighting]  # held shrinking tenants, for the next pass
    wait: float | None = None  # seconds until the first of them may be confirmed


def _orphans(changes: Plan) -> list[str]:
    return [
        c.tenant
        for c in changes.changes
        if c.kind is Kind.TENANT
        and c.action is Action.UPDATE
        and getattr(c.after, "status", None) == TenantLifecycle.ORPHANED
    ]


def hold_mass_orphaning(
    changes: Plan, served_count: int, *, max_share: float, allowed: bool
) -> dict[str, str]:
    orphans = _orphans(changes)
    if allowed or len(orphans) < 2 or len(orphans) <= max_share * served_count:
        return {}
    reason = (
        f"not orphaned: {len(orphans)} of {served_count} tenants would leave git in one pass "
        f"(more than {max_share:.0%}); if that is intended run `pbx apply --allow-mass-orphan`"
    )
    return dict.fromkeys(orphans, reason)


def hold_shrinking(
    changes: Plan,
    actual: State,
    fingerprints: Mapping[str, str],
    seen: Mapping[str, Sighting],
    *,
    now: float,
    stable_seconds: float,
) -> Held:
    """``seen``: what was held before. A shrinking tenant is let through once its file's
    fingerprint was seen unchanged for ``stable_seconds`` (the file was complete: someone
    really removed those objects); until then it is held, and ``wait`` says when to look
    again."""
    deletes: dict[str, int] = {}
    for change in changes.changes:
        if change.action is Action.DELETE:
            deletes[change.tenant] = deletes.get(change.tenant, 0) + 1
    reasons: dict[str, str] = {}
    shrinking: dict[str, Sighting] = {}
    for tenant_id, count in deletes.items():
        have = actual.get(tenant_id)
        size = _size(have) if have is not None else 0
        if count < SHRINK_MIN_DELETES or count * 2 <= size:
            continue
        fingerprint = fingerprints.get(tenant_id, "")
        before = seen.get(tenant_id)
        same = before is not None and before.fingerprint == fingerprint
        since = before.since if before is not None and same else now
        if same and now - since >= stable_seconds:
            continue
        shrinking[tenant_id] = Sighting(fingerprint, since)
        reasons[tenant_id] = (
            f"held until its file is unchanged for {stable_seconds:g} s: the spec would remove "
            f"{count} of {size} objects (a file caught mid-write looks like that)"
        )
    waits = [s.since + stable_seconds - now for s in shrinking.values()]
    return Held(reasons, shrinking, max(0.0, min(waits)) if waits else None)


def _size(state: TenantState) -> int:
    return sum(len(state.records(kind)) for kind in COLLECTION_OF)


def without(changes: Plan, tenants: Mapping[str, str]) -> Plan:
    return changes.only_tenants(lambda tenant_id: tenant_id not in tenants)

"""Which tenants FreeSWITCH gets: the one rule shared by the served snapshot (xml_curl) and
the live side (mod_callcenter), so a queue is never pushed that callcenter.conf refuses.

A tenant is served when it is active, its domain is not the reserved ``public`` context and
no other active tenant claims the same domain (case-insensitively, as DNS compares). Two
claimants of one domain are both withheld: serving either would hand one tenant's phones
the other's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.model import PUBLIC_CONTEXT, Queue, State, TenantState, fs_name
from specs_schema import shapes


@dataclass(frozen=True)
class ServedTenants:
    """``by_domain``: lowercase domain -> the one tenant served under it, sorted by domain.
    ``problems``: why an active tenant is withheld (for logs and /status)."""

    by_domain: Mapping[str, TenantState]
    problems: tuple[str, ...] = ()


def served_tenants(state: State) -> ServedTenants:
    claimants: dict[str, list[TenantState]] = {}
    for tenant_id in sorted(state):
        tenant_state = state[tenant_id]
        if tenant_state.tenant.served:
            claimants.setdefault(tenant_state.tenant.domain.lower(), []).append(tenant_state)
    served: dict[str, TenantState] = {}
    problems: list[str] = []
    for domain in sorted(claimants):
        claims = claimants[domain]
        if len(claims) > 1:
            ids = ", ".join(ts.tenant.id for ts in claims)
            problems.append(f"domain {domain} is claimed by tenants {ids}: none of them served")
        elif domain == PUBLIC_CONTEXT:
            problems.append(f"tenant {claims[0].tenant.id}: domain {domain} is reserved")
        else:
            served[domain] = claims[0]
    return ServedTenants(MappingProxyType(served), tuple(problems))


def managed_domains(state: State) -> frozenset[str]:
    """Domains of every tenant the store knows, served or not: a suspended or orphaned
    tenant's objects on a switch are ours to remove, never "unmanaged"."""
    return frozenset(ts.tenant.domain.lower() for ts in state.values())


def served_queue_params(
    queue: Queue, tenant_id: str, domain: str, roots: AudioRoots = DEFAULT_ROOTS
) -> dict[str, str]:
    """A queue's params as FreeSWITCH gets them (callcenter.conf's dash names), the one rule
    for what is served and what a switch's listing is compared with: sounds resolved into
    the tenant's own storage, the record template into its own recordings with only our
    fixed ``${...}`` expansions (``specs_schema.shapes``). ``ValueError`` when a stored value
    is outside its shape (validation refuses it first; a queue failing here is not served)."""
    params = queue.callcenter_params()
    for key in ("moh-sound", "announce-sound"):
        if key in params:
            params[key] = shapes.sound_path(params[key], tenant_id, roots.sounds)
    if "record-template" in params:
        params["record-template"] = shapes.record_template_path(
            params["record-template"], tenant_id, fs_name(queue.name, domain), roots.recordings
        )
    return params

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

from reconciler.core.model import PUBLIC_CONTEXT, State, TenantState


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

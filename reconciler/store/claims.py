"""Claims that span tenants: a domain and an inbound number belong to one tenant at a time.

Applying tenant by tenant, two tenants swapping a DID (or a domain) in one commit would each
find the other still holding it, every pass, forever. So tenants whose changes release and
take the same claim are applied together, in one transaction, with the uniqueness
constraints deferred to its commit; a tenant id renamed in git takes its old id with it.
``verify_claims`` then names the tenant and the claim when a conflict remains (clearer than
a constraint violation at commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

from reconciler.core.model import InboundNumber, Kind, Tenant
from reconciler.core.plan import Change, Plan
from reconciler.store.errors import TenantApplyError


def _claims(record: object) -> set[str]:
    if isinstance(record, Tenant):
        return {f"domain:{record.domain.lower()}"}
    if isinstance(record, InboundNumber):
        return {f"did:{record.number}"}
    return set()


def claim_groups(changes: Plan) -> list[tuple[str, ...]]:
    """The plan's tenants, grouped so that a tenant taking a claim another planned tenant
    releases (or an id rename's two ids) share a transaction. Groups keep plan order."""
    parent: dict[str, str] = {}

    def find(tenant_id: str) -> str:
        while parent.setdefault(tenant_id, tenant_id) != tenant_id:
            tenant_id = parent[tenant_id]
        return tenant_id

    released: dict[str, str] = {}
    taken: dict[str, list[str]] = {}
    for change in changes.changes:
        find(change.tenant)
        if change.kind not in (Kind.TENANT, Kind.INBOUND_NUMBER):
            continue
        before, after = _claims(change.before), _claims(change.after)
        for claim in before - after:
            released[claim] = change.tenant
        for claim in after - before:
            taken.setdefault(claim, []).append(change.tenant)
    for claim, takers in taken.items():
        if claim in released:
            for taker in takers:
                parent[find(taker)] = find(released[claim])
    groups: dict[str, list[str]] = {}
    for tenant_id in parent:
        groups.setdefault(find(tenant_id), []).append(tenant_id)
    return [tuple(members) for members in groups.values()]


def verify_claims(conn: psycopg.Connection, tenant_ids: Sequence[str]) -> None:
    """Raise ``TenantApplyError`` for the first of ``tenant_ids`` whose domain or inbound
    number another tenant also holds (inside the applying transaction, before commit)."""
    if not tenant_ids:
        return
    domains = conn.execute(
        """
        SELECT t.id, t.domain, o.id FROM pbx.tenants t
        JOIN pbx.tenants o ON o.domain = t.domain AND o.id <> t.id
        WHERE t.id = ANY(%s) ORDER BY t.id LIMIT 1
        """,
        (list(tenant_ids),),
    ).fetchone()
    if domains:
        tenant_id, domain, owner = domains
        raise TenantApplyError(tenant_id, f"domain '{domain}' is already used by tenant {owner}")
    dids = conn.execute(
        """
        SELECT d.tenant_id, d.number, o.tenant_id FROM pbx.did_index d
        JOIN pbx.did_index o ON o.number = d.number AND o.tenant_id <> d.tenant_id
        WHERE d.tenant_id = ANY(%s) ORDER BY d.tenant_id, d.number
        """,
        (list(tenant_ids),),
    ).fetchall()
    if dids:
        tenant_id = dids[0][0]
        claims = ", ".join(f"{n} (tenant {owner})" for t, n, owner in dids if t == tenant_id)
        raise TenantApplyError(
            tenant_id, f"inbound number already claimed by another tenant: {claims}"
        )


def renamed_from(changes: Iterable[Change]) -> str | None:
    """The old id when these changes of one tenant start with a rename."""
    for change in changes:
        before = change.before
        if isinstance(before, Tenant) and before.id != change.tenant:
            return before.id
        return None
    return None

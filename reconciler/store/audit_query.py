"""Reading the audit trail (``pbx.portal_audit``) the way Activity does: within one scope
(a tenant, or everything for super admins), narrowed by filters, a page at a time.

The scope and the filters are separate on purpose: ``scope`` is decided by the caller's
rights and never by what they typed, so no filter can widen what a tenant admin reads. A
tenant's rows are its own and those naming it among several tenants (``tenant_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from reconciler.store.accounts import AuditEntry, audit_entry
from reconciler.store.errors import translated


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the reader asked for; every field optional. ``since`` inclusive, ``until``
    exclusive; ``actor`` and ``action`` match exactly (``actor`` case-insensitively);
    ``tenant`` narrows a super admin's view to one tenant's rows."""

    tenant: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@translated
def read_audit_page(
    conn: psycopg.Connection,
    *,
    scope: str | None,
    wanted: AuditFilter = AuditFilter(),
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    """Most recent first: rows of ``scope`` (a tenant id; None is every row, for super
    admins only) that match ``wanted``, ``limit`` of them after skipping ``offset``."""
    rows = conn.execute(
        """
        SELECT id, at, actor, tenant_id, action, target, result, client_addr, detail,
               tenant_ids
        FROM pbx.portal_audit
        WHERE (%(scope)s::text IS NULL OR tenant_id = %(scope)s
               OR tenant_ids @> ARRAY[%(scope)s::text])
          AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s
               OR tenant_ids @> ARRAY[%(tenant)s::text])
          AND (%(actor)s::text IS NULL OR lower(actor) = lower(%(actor)s))
          AND (%(action)s::text IS NULL OR action = %(action)s)
          AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
        ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s
        """,
        _params(scope, wanted) | {"limit": limit, "offset": offset},
    ).fetchall()
    return [audit_entry(row) for row in rows]


def _params(scope: str | None, wanted: AuditFilter) -> dict[str, Any]:
    return {
        "scope": scope,
        "tenant": wanted.tenant,
        "actor": wanted.actor,
        "action": wanted.action,
        "since": wanted.since,
        "until": wanted.until,
    }

"""Fingerprints of the tenants' stored state: a full pass re-reads only what changed.

Reading 1,000 tenant schemas as records costs seconds of Python; asking the server for one
small value per tenant costs a fraction of that. A tenant's fingerprint is its registry row
and, for each of its tables the state is read from, the row count and the sum of a 64-bit
hash of every row version's ``(xmin, ctid)``. Any committed write changes it, whoever made
it (this daemon, another one, ``pbx apply``, a rotation, a hand-made edit in ``psql``): an
inserted or updated row is a new row version (a new ``xmin``, the writing transaction's, at
a new ``ctid``), a deleted one leaves the count or the sum. Reads, ``VACUUM`` and freezing
leave both alone; a table rewrite (``VACUUM FULL``, ``CLUSTER``) changes them, which only
costs one re-read. Two different states share a fingerprint only by a 64-bit collision.

Read the fingerprints *before* the state they vouch for: a write in between then shows up
as a difference at the next comparison, never as a stale state kept for good.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import psycopg
from psycopg import sql

from reconciler.core.model import Tenant
from reconciler.store.errors import require_autocommit, translated
from reconciler.store.layout import tenant_schema
from reconciler.store.read import read_tenant_records
from reconciler.store.tables import SIP_CREDENTIALS, TABLES, USER_EXTENSIONS, VOICEMAIL_PINS

_CHUNK = 100
"""Schemas per query (one table at a time). The server's planning time grows faster than
the number of branches (1,000 branches with one aggregate over them took seconds to plan),
and a cached plan is planned again whenever autovacuum analyzes one of its tables."""

FINGERPRINTED_TABLES: tuple[str, ...] = (
    *(table.name for table in TABLES.values()),
    USER_EXTENSIONS,
    SIP_CREDENTIALS,
    VOICEMAIL_PINS,
)
"""Every table ``read_state``, ``read_a1_hashes`` and ``read_voicemail_hashes`` read (the
hashes are served too)."""

Fingerprint = tuple[Tenant, tuple[tuple[int, int, int], ...]]
"""A tenant's registry record, then ``(table index, rows, hash sum)`` of each of its
non-empty tables (index into ``FINGERPRINTED_TABLES``)."""


@translated
def read_fingerprints(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[str, Fingerprint]:
    """``{tenant id: fingerprint}`` of every registered tenant (or only ``tenants``)."""
    require_autocommit(conn)
    registry = read_tenant_records(conn, tenants)
    ids = tuple(registry)
    sums: dict[str, list[tuple[int, int, int]]] = {tenant_id: [] for tenant_id in ids}
    for index, table in enumerate(FINGERPRINTED_TABLES):
        for start in range(0, len(ids), _CHUNK):
            query = _sum_query(table, ids[start : start + _CHUNK])
            # prepared: a daemon asks the same question every full pass
            for tenant_id, rows, total in conn.execute(query, prepare=len(ids) > 1):
                if rows:
                    sums[tenant_id].append((index, int(rows), int(total)))
    return {tenant_id: (registry[tenant_id], tuple(sums[tenant_id])) for tenant_id in ids}


@lru_cache(maxsize=128)
def _sum_query(table: str, tenant_ids: tuple[str, ...]) -> bytes:
    """``SELECT '<id>', count(*), sum(hash of xmin and ctid) FROM tenant_<id>.<table> UNION
    ALL ...``: one row per tenant (an aggregate per branch plans in milliseconds; one
    aggregate over a large union took the planner seconds)."""
    branch = sql.SQL(
        "SELECT {}, count(*), coalesce(sum(hashtextextended(xmin::text || ':' || ctid::text, 0)),"
        " 0) FROM {}.{}"
    )
    return (
        sql.SQL(" UNION ALL ")
        .join(
            branch.format(
                sql.Literal(tenant_id),
                sql.Identifier(tenant_schema(tenant_id)),
                sql.Identifier(table),
            )
            for tenant_id in tenant_ids
        )
        .as_bytes(None)
    )

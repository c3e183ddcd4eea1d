"""Fingerprints of the tenants' stored state: a full pass re-reads only what changed.

A tenant's fingerprint is its registry row and a value that moves with every committed
write to the tables its state is read from, whoever made it (this daemon, another one,
``pbx apply``, a rotation, a hand-made edit in ``psql``):

* its **change counter** (``pbx.tenant_changes``, tenant migration 9): statement triggers set
  it to a fresh value of one sequence on every INSERT, UPDATE, DELETE and TRUNCATE, so a
  value is never given twice (a tenant pruned and created again starts past it). One query
  over one small table answers for every tenant: a fresh session (``pbx plan``) no longer
  opens ~11 relations per tenant, which cost PostgreSQL ~11 s at 1,000 tenants. A statement
  that matches no row still counts (a re-read, never a missed change); a write made with
  triggers off (``session_replication_role = replica``, a disabled or dropped trigger) is
  not counted: out of scope (``reconciler.store.migrations``).
* a schema without a counter (its migration not applied yet, its row deleted by hand): for
  each of its tables the row count and the sum of a 64-bit hash of every row version's
  ``(xmin, ctid)``. An inserted or updated row is a new row version (a new ``xmin``, the
  writing transaction's, at a new ``ctid``), a deleted one leaves the count or the sum.
  Reads, ``VACUUM`` and freezing leave both alone; a table rewrite (``VACUUM FULL``,
  ``CLUSTER``) changes them, which only costs one re-read. Two different states share such
  a fingerprint only by a 64-bit collision.

Read the fingerprints *before* the state they vouch for: a write in between then shows up
as a difference at the next comparison, never as a stale state kept for good (a counter
read while a write is uncommitted is the value before it, whatever value it then commits).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
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

_COUNTERS_EXIST = "SELECT to_regclass('pbx.tenant_changes') IS NOT NULL"

FINGERPRINTED_TABLES: tuple[str, ...] = (
    *(table.name for table in TABLES.values()),
    USER_EXTENSIONS,
    SIP_CREDENTIALS,
    VOICEMAIL_PINS,
)
"""Every table ``read_state``, ``read_a1_hashes`` and ``read_voicemail_hashes`` read (the
hashes are served too)."""

Fingerprint = tuple[Tenant, int | tuple[tuple[int, int, int], ...]]
"""A tenant's registry record, then its change counter, or without one ``(table index,
rows, hash sum)`` of each of its non-empty tables (index into ``FINGERPRINTED_TABLES``)."""


@translated
def read_fingerprints(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[str, Fingerprint]:
    """``{tenant id: fingerprint}`` of every registered tenant (or only ``tenants``)."""
    require_autocommit(conn)
    registry = read_tenant_records(conn, tenants)
    counters = read_change_counters(conn, registry)
    summed = _hash_sums(conn, tuple(t for t in registry if t not in counters))
    return {
        tenant_id: (record, counters[tenant_id] if tenant_id in counters else summed[tenant_id])
        for tenant_id, record in registry.items()
    }


def read_change_counters(conn: psycopg.Connection, tenants: Collection[str]) -> dict[str, int]:
    """``{tenant id: change counter}`` of those of ``tenants`` whose schema has one."""
    if not tenants or conn.execute(_COUNTERS_EXIST).fetchone() != (True,):
        return {}  # a database its control migration 12 has not reached yet
    rows = conn.execute(
        "SELECT t.id, c.last_change FROM pbx.tenants t"
        " JOIN pbx.tenant_changes c ON c.schema_name = t.schema_name WHERE t.id = ANY(%s)",
        (sorted(tenants),),
    )
    return dict(rows.fetchall())


def _hash_sums(
    conn: psycopg.Connection, ids: tuple[str, ...]
) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """``(table index, rows, hash sum)`` of each non-empty table of each of ``ids``."""
    sums: dict[str, list[tuple[int, int, int]]] = {tenant_id: [] for tenant_id in ids}
    for index, table in enumerate(FINGERPRINTED_TABLES):
        for start in range(0, len(ids), _CHUNK):
            query = _sum_query(table, ids[start : start + _CHUNK])
            # prepared: a daemon asks the same question every full pass
            for tenant_id, rows, total in conn.execute(query, prepare=len(ids) > 1):
                if rows:
                    sums[tenant_id].append((index, int(rows), int(total)))
    return {tenant_id: tuple(found) for tenant_id, found in sums.items()}


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

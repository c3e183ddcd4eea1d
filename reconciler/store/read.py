"""Actual state out of PostgreSQL: the exact ``reconciler.core.model`` records, the a1-hashes the
served snapshot needs, and the registry (digest, revisions, status) for ``/status``.

Built for a thousand tenant schemas: each table is read with one ``UNION ALL`` query across
tenant schemas (in chunks), so a full read is a handful of round trips, not thousands.
Passwords are never read here; only ``credentials.show_credentials`` reads one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from reconciler.core.gcpause import gc_paused
from reconciler.core.model import COLLECTION_OF, Kind, Record, Tenant, TenantState, User
from reconciler.store.errors import require_autocommit, translated
from reconciler.store.layout import tenant_schema
from reconciler.store.tables import (
    SIP_CREDENTIALS,
    TABLES,
    TENANT_COLUMNS,
    USER_EXTENSIONS,
    VOICEMAIL_PINS,
    tenant_from_row,
)

_CHUNK = 250
"""Schemas per UNION ALL query: keeps one query's text and planning time small."""

_COLLECTIONS = COLLECTION_OF


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What the control schema knows about one tenant besides its spec."""

    tenant_id: str
    schema_name: str
    domain: str
    status: str
    spec_digest: str | None
    applied_revision: str | None
    applied_dirty: bool | None
    applied_at: datetime | None
    attempted_revision: str | None
    attempted_dirty: bool | None
    attempted_at: datetime | None
    last_result: str | None
    last_error: str | None


@translated
def control_schema_exists(conn: psycopg.Connection) -> bool:
    """False on a database the store has never migrated (nothing applied yet)."""
    row = conn.execute("SELECT to_regclass('pbx.tenants') IS NOT NULL").fetchone()
    return bool(row and row[0])


@translated
def read_state(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[str, TenantState]:
    """Every registered tenant (or only ``tenants``) as the planner's records.

    Each table is one statement per 250 schemas; tenants are not read in one snapshot (a
    thousand schemas' locks would not fit one transaction): plan against it, and apply
    re-checks each tenant under its lock.
    """
    require_autocommit(conn)
    registry = read_tenant_records(conn, tenants)
    ids = tuple(registry)
    if not ids:
        return {}
    collections: dict[str, dict[str, dict[str, Any]]] = {
        tenant_id: {name: {} for name in _COLLECTIONS.values()} for tenant_id in ids
    }
    links: dict[tuple[str, str], list[str]] = {}
    # One reader thread runs the queries back to back while this thread builds records: the
    # server plans the next query (on a fresh connection mostly loading catalog entries)
    # while the rows of the previous one become records. The connection is used by the
    # reader only until the last result is in.
    tables: list[tuple[str, tuple[str, ...]]] = [(USER_EXTENSIONS, ("user_email", "extension"))]
    tables += [(t.name, t.columns) for t in TABLES.values()]
    with gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="pbx-read") as reader:
        link_rows, *table_rows = [
            reader.submit(_union_rows, conn, ids, name, columns) for name, columns in tables
        ]
        pool: dict[str, str] = {}
        for tenant_id, email, extension in link_rows.result():
            links.setdefault((tenant_id, email), []).append(pool.setdefault(extension, extension))
        for (kind, table), rows in zip(TABLES.items(), table_rows, strict=True):
            name = _COLLECTIONS[kind]
            targets = {tenant_id: collections[tenant_id][name] for tenant_id in ids}
            for row in rows.result():
                values = _shared_row(pool, row)
                if kind is Kind.USER:
                    record: Record = User(
                        values[0], values[1], values[2],
                        tuple(sorted(links.get((row[0], row[1]), ()))),
                    )  # fmt: skip
                else:
                    record = table.from_row(values)
                targets[row[0]][record.key] = record
    return {
        tenant_id: TenantState(tenant=tenant, **collections[tenant_id])
        for tenant_id, tenant in registry.items()
    }


def _shared_row(pool: dict[str, str], row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row's values after its tenant id, each text value replaced by an equal one read
    before: the driver makes a new string per value, and a full read holds about 1.6
    million of them at 1,000 x 100, most repeating (an extension's number in its user
    link, agent and tiers; ``none``, ``internal``, roles, strategies; numbers and names
    that recur across tenants). Shared, the applied state holds each text once per read.
    """
    share = pool.setdefault
    return tuple(share(v, v) if type(v) is str else v for v in row[1:])


def read_tenant_records(
    conn: psycopg.Connection, tenants: Iterable[str] | None
) -> dict[str, Tenant]:
    if not control_schema_exists(conn):
        return {}
    columns = sql.SQL(", ").join(map(sql.Identifier, TENANT_COLUMNS))
    if tenants is None:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM pbx.tenants ORDER BY id").format(columns)
        ).fetchall()
    else:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM pbx.tenants WHERE id = ANY(%s) ORDER BY id").format(columns),
            (sorted(set(tenants)),),
        ).fetchall()
    return {row[0]: tenant_from_row(row) for row in rows}


@translated
def read_tenant_state(conn: psycopg.Connection, tenant_id: str) -> TenantState | None:
    """One tenant's records, or None when it is not registered."""
    return read_state(conn, tenants=[tenant_id]).get(tenant_id)


@translated
def read_a1_hashes(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[tuple[str, str], str]:
    """``{(tenant_id, extension number): a1_hash}`` for the directory FreeSWITCH is served."""
    return _digests(conn, tenants, SIP_CREDENTIALS, "a1_hash")


@translated
def read_voicemail_hashes(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[tuple[str, str], str]:
    """``{(tenant_id, extension number): vm_a1_hash}``: each box's PIN digest."""
    return _digests(conn, tenants, VOICEMAIL_PINS, "vm_a1_hash")


def _digests(
    conn: psycopg.Connection, tenants: Iterable[str] | None, table: str, column: str
) -> dict[tuple[str, str], str]:
    if not control_schema_exists(conn):
        return {}
    if tenants is None:
        rows = conn.execute("SELECT id FROM pbx.tenants ORDER BY id").fetchall()
    else:
        rows = conn.execute(
            "SELECT id FROM pbx.tenants WHERE id = ANY(%s) ORDER BY id", (sorted(set(tenants)),)
        ).fetchall()
    ids = [tenant_id for (tenant_id,) in rows]
    pool: dict[str, str] = {}  # keys' tenant ids and numbers held once (``_shared_row``)
    share = pool.setdefault
    return {
        (share(tenant_id, tenant_id), share(number, number)): a1_hash
        for tenant_id, number, a1_hash in _union_rows(conn, ids, table, ("extension", column))
    }


@translated
def read_registry(conn: psycopg.Connection) -> dict[str, RegistryEntry]:
    """Status, spec digest and last applied/attempted revisions of every registered tenant."""
    if not control_schema_exists(conn):
        return {}
    rows = conn.execute(
        """
        SELECT id, schema_name, domain, status, spec_digest,
               applied_revision, applied_dirty, applied_at,
               attempted_revision, attempted_dirty, attempted_at,
               last_result, last_error
        FROM pbx.tenants ORDER BY id
        """
    ).fetchall()
    return {row[0]: RegistryEntry(*row) for row in rows}


def _union_rows(
    conn: psycopg.Connection, tenant_ids: Sequence[str], table: str, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows of one table across tenant schemas, each prefixed with its tenant id."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(tenant_ids), _CHUNK):
        query = _union_query(table, tuple(columns), tuple(tenant_ids[start : start + _CHUNK]))
        # A daemon repeats the same full read every pass: prepared, it skips re-planning a
        # 250-way UNION. One-tenant reads (apply's re-check) are not worth a statement slot.
        rows += conn.execute(query, prepare=len(tenant_ids) > 1).fetchall()
    return rows


@lru_cache(maxsize=64)
def _union_query(table: str, columns: tuple[str, ...], tenant_ids: tuple[str, ...]) -> bytes:
    """``SELECT '<id>', <columns> FROM tenant_<id>.<table> UNION ALL ...``, composed by
    ``psycopg.sql`` once per tenant list (composing 8 x 1000 branches costs more than a
    warm read's planning). The identifiers are ASCII, so no connection encoding is needed."""
    branch = sql.SQL("SELECT {}, {} FROM {}.{}")
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    table_name = sql.Identifier(table)
    return (
        sql.SQL(" UNION ALL ")
        .join(
            branch.format(
                sql.Literal(tenant_id),
                column_list,
                sql.Identifier(tenant_schema(tenant_id)),
                table_name,
            )
            for tenant_id in tenant_ids
        )
        .as_bytes(None)
    )

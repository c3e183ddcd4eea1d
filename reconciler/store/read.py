"""Actual state out of PostgreSQL: the exact ``reconciler.model`` records, the a1-hashes the
served snapshot needs, and the registry (digest, revisions, status) for ``/status``.

Built for a thousand tenant schemas: each table is read with one ``UNION ALL`` query across
tenant schemas (in chunks), so a full read is a handful of round trips, not thousands.
Passwords are never read here; only ``credentials.show_credentials`` reads one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from reconciler.model import Kind, Record, Tenant, TenantState, User
from reconciler.store.layout import tenant_schema
from reconciler.store.tables import (
    SIP_CREDENTIALS,
    TABLES,
    TENANT_COLUMNS,
    USER_EXTENSIONS,
    tenant_from_row,
)

_CHUNK = 250
"""Schemas per UNION ALL query: keeps one query's text and planning time small."""

_COLLECTIONS: dict[Kind, str] = {
    Kind.EXTENSION: "extensions",
    Kind.USER: "users",
    Kind.AGENT: "agents",
    Kind.QUEUE: "queues",
    Kind.TIER: "tiers",
    Kind.INBOUND_NUMBER: "inbound_numbers",
}


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


def control_schema_exists(conn: psycopg.Connection) -> bool:
    """False on a database the store has never migrated (nothing applied yet)."""
    row = conn.execute("SELECT to_regclass('pbx.tenants') IS NOT NULL").fetchone()
    return bool(row and row[0])


def read_state(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[str, TenantState]:
    """Every registered tenant (or only ``tenants``) as the planner's records.

    Each table is one statement per 250 schemas; tenants are not read in one snapshot (a
    thousand schemas' locks would not fit one transaction): plan against it, and apply
    re-checks each tenant under its lock.
    """
    registry = _read_tenants(conn, tenants)
    ids = tuple(registry)
    if not ids:
        return {}
    link_rows = _union_rows(conn, ids, USER_EXTENSIONS, ("user_email", "extension"))
    table_rows = [_union_rows(conn, ids, t.name, t.columns) for t in TABLES.values()]
    links: dict[tuple[str, str], list[str]] = {}
    for tenant_id, email, extension in link_rows:
        links.setdefault((tenant_id, email), []).append(extension)
    collections: dict[str, dict[str, dict[str, Any]]] = {
        tenant_id: {name: {} for name in _COLLECTIONS.values()} for tenant_id in ids
    }
    for (kind, table), rows in zip(TABLES.items(), table_rows, strict=True):
        name = _COLLECTIONS[kind]
        targets = {tenant_id: collections[tenant_id][name] for tenant_id in ids}
        for row in rows:
            if kind is Kind.USER:
                record: Record = User(
                    row[1], row[2], row[3], tuple(sorted(links.get((row[0], row[1]), ())))
                )
            else:
                record = table.from_row(row[1:])
            targets[row[0]][record.key] = record
    return {
        tenant_id: TenantState(tenant=tenant, **collections[tenant_id])
        for tenant_id, tenant in registry.items()
    }


def _read_tenants(conn: psycopg.Connection, tenants: Iterable[str] | None) -> dict[str, Tenant]:
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


def read_tenant_state(conn: psycopg.Connection, tenant_id: str) -> TenantState | None:
    """One tenant's records, or None when it is not registered."""
    return read_state(conn, tenants=[tenant_id]).get(tenant_id)


def read_a1_hashes(
    conn: psycopg.Connection, *, tenants: Iterable[str] | None = None
) -> dict[tuple[str, str], str]:
    """``{(tenant_id, extension number): a1_hash}`` for the directory FreeSWITCH is served."""
    if not control_schema_exists(conn):
        return {}
    if tenants is None:
        rows = conn.execute("SELECT id FROM pbx.tenants ORDER BY id").fetchall()
    else:
        rows = conn.execute(
            "SELECT id FROM pbx.tenants WHERE id = ANY(%s) ORDER BY id", (sorted(set(tenants)),)
        ).fetchall()
    ids = [tenant_id for (tenant_id,) in rows]
    return {
        (tenant_id, number): a1_hash
        for tenant_id, number, a1_hash in _union_rows(
            conn, ids, SIP_CREDENTIALS, ("extension", "a1_hash")
        )
    }


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
    branch = sql.SQL("SELECT {}, {} FROM {}.{}")
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    table_name = sql.Identifier(table)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(tenant_ids), _CHUNK):
        query = sql.SQL(" UNION ALL ").join(
            branch.format(
                sql.Literal(tenant_id),
                column_list,
                sql.Identifier(tenant_schema(tenant_id)),
                table_name,
            )
            for tenant_id in tenant_ids[start : start + _CHUNK]
        )
        # A daemon repeats the same full read every pass: prepared, it skips re-planning a
        # 250-way UNION. One-tenant reads (apply's re-check) are not worth a statement slot.
        rows += conn.execute(query, prepare=len(tenant_ids) > 1).fetchall()
    return rows

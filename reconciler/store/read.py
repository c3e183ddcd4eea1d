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

from reconciler.model import Kind, Record, TenantState, User
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
    """Every registered tenant (or only ``tenants``) as the planner's records."""
    if not control_schema_exists(conn):
        return {}
    wanted = None if tenants is None else sorted(set(tenants))
    query = sql.SQL("SELECT {} FROM pbx.tenants").format(
        sql.SQL(", ").join(map(sql.Identifier, TENANT_COLUMNS))
    )
    if wanted is None:
        rows = conn.execute(query + sql.SQL(" ORDER BY id")).fetchall()
    else:
        rows = conn.execute(
            query + sql.SQL(" WHERE id = ANY(%s) ORDER BY id"), (wanted,)
        ).fetchall()
    registry = {row[0]: tenant_from_row(row) for row in rows}
    ids = list(registry)
    records: dict[str, dict[Kind, dict[str, Record]]] = {t: {} for t in ids}
    for kind, table in TABLES.items():
        for tenant_records in records.values():
            tenant_records[kind] = {}
        for row in _union_rows(conn, ids, table.name, table.columns):
            record = table.from_row(row[1:])
            records[row[0]][kind][record.key] = record
    links: dict[tuple[str, str], list[str]] = {}
    for tenant_id, email, extension in _union_rows(
        conn, ids, USER_EXTENSIONS, ("user_email", "extension")
    ):
        links.setdefault((tenant_id, email), []).append(extension)
    state: dict[str, TenantState] = {}
    for tenant_id, tenant in registry.items():
        by_kind = records[tenant_id]
        users = by_kind[Kind.USER]
        for email, user in list(users.items()):
            numbers = links.get((tenant_id, email))
            if numbers:
                assert isinstance(user, User)
                users[email] = User(user.email, user.name, user.role, tuple(sorted(numbers)))
        state[tenant_id] = TenantState(
            tenant=tenant, **{_COLLECTIONS[kind]: by_kind[kind] for kind in _COLLECTIONS}
        )
    return state


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
        rows += conn.execute(query).fetchall()
    return rows

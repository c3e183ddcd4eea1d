"""Archive an orphaned tenant: its schema is renamed (never dropped), the registry forgets it.

Only a tenant whose spec file left git (status ``orphaned``) can be pruned; suspended and
active tenants keep everything. In one transaction, under the tenant's lock: rename
``tenant_<id>`` to ``archive_<id>_<UTC timestamp>``, move its migration bookkeeping and
change counter to the archive name, delete its registry row (its DID index rows go with it, freeing those numbers)
and append a history row naming the archive.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from reconciler.core.model import TenantLifecycle
from reconciler.store.domains import retire_domain
from reconciler.store.errors import (
    StoreError,
    TenantNotOrphaned,
    UnknownTenant,
    describe_db_error,
    unavailable,
)
from reconciler.store.history import record_history
from reconciler.store.layout import APPLIED_CHANNEL, archive_schema, tenant_schema
from reconciler.store.locks import lock_tenant
from reconciler.store.migrations import rename_schema
from reconciler.store.read import control_schema_exists


def prune_tenant(
    conn: psycopg.Connection,
    tenant_id: str,
    *,
    host: str | None = None,
    now: datetime | None = None,
) -> str:
    """Archive an orphaned tenant; returns the archive schema's name."""
    try:
        with conn.transaction():
            if not control_schema_exists(conn):
                raise UnknownTenant(tenant_id)
            lock_tenant(conn, tenant_id)
            row = conn.execute(
                "SELECT status, schema_name, domain FROM pbx.tenants WHERE id = %s FOR UPDATE",
                (tenant_id,),
            ).fetchone()
            if row is None:
                raise UnknownTenant(tenant_id)
            status, schema, domain = row
            if status != TenantLifecycle.ORPHANED:
                raise TenantNotOrphaned(tenant_id, status)
            archive = archive_schema(tenant_id, now or datetime.now(UTC))
            assert schema == tenant_schema(tenant_id)
            dids = _archive(conn, tenant_id, schema, archive)
            conn.execute("DELETE FROM pbx.tenants WHERE id = %s", (tenant_id,))
            retire_domain(conn, domain, tenant_id)
            record_history(
                conn,
                tenant_id=tenant_id,
                action="prune",
                result="applied",
                revision=None,
                host=host or socket.gethostname(),
                changes=Jsonb(
                    [
                        {
                            "kind": "tenant",
                            "key": tenant_id,
                            "action": "prune",
                            "archived_schema": archive,
                            "released_inbound_numbers": dids,
                        }
                    ]
                ),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (APPLIED_CHANNEL, tenant_id))
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        raise StoreError(f"tenant {tenant_id}: prune failed: {describe_db_error(exc)}") from exc
    return archive


def _archive(conn: psycopg.Connection, tenant_id: str, schema: str, archive: str) -> list[str]:
    """Rename the schema (data kept, no longer registered); the DIDs it releases."""
    rename_schema(conn, schema, archive)
    return [
        number
        for (number,) in conn.execute(
            "SELECT number FROM pbx.did_index WHERE tenant_id = %s ORDER BY number", (tenant_id,)
        )
    ]

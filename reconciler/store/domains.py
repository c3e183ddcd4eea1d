"""Domains a tenant of this database once held: the reconciler created queues and agents
named ``...@<domain>`` on every switch, so they stay its to remove after the domain moves
on (a domain change, a prune). What it never created stays "unmanaged" and untouched."""

from __future__ import annotations

import psycopg

from reconciler.store.errors import translated
from reconciler.store.read import control_schema_exists


def retire_domain(conn: psycopg.Connection, domain: str, tenant_id: str) -> None:
    """Inside the caller's transaction (the domain change or the prune)."""
    conn.execute(
        """
        INSERT INTO pbx.retired_domains (domain, tenant_id) VALUES (lower(%s), %s)
        ON CONFLICT (domain) DO UPDATE SET tenant_id = excluded.tenant_id, retired_at = now()
        """,
        (domain, tenant_id),
    )


@translated
def read_retired_domains(conn: psycopg.Connection) -> frozenset[str]:
    if not control_schema_exists(conn):
        return frozenset()
    row = conn.execute("SELECT to_regclass('pbx.retired_domains') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return frozenset()
    return frozenset(d for (d,) in conn.execute("SELECT domain FROM pbx.retired_domains"))

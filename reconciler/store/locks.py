"""PostgreSQL advisory locks that serialize the store's writers across processes and hosts.

Design: one lock per tenant, transaction-scoped (``pg_advisory_xact_lock``), taken as the
first statement of every transaction that writes a tenant (apply, credential rotation, prune,
tenant-schema migration). Different tenants apply in parallel; two daemons applying the same
tenant run one after the other, and the second re-checks its plan under the lock (see
``apply``). Schema migrations additionally take one global lock, so concurrent daemons
migrating at start-up never race on ``CREATE SCHEMA``/``CREATE TABLE``. Transaction-scoped
locks are released by COMMIT/ROLLBACK, so a crashed client can never leave one behind.

The two-key form (class, hashtext(id)) used for tenants and the one-key form used for
migrations live in separate key spaces in PostgreSQL; a hash collision between two tenant ids
would only serialize them, never break anything.
"""

from __future__ import annotations

import psycopg

TENANT_LOCK_CLASS = 0x70627874  # "pbxt"
MIGRATION_LOCK_KEY = 0x7062785F6D696772  # "pbx_migr"


def lock_tenant(conn: psycopg.Connection, tenant_id: str) -> None:
    """Wait for this tenant's write lock; held until the current transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (TENANT_LOCK_CLASS, tenant_id))


def lock_migrations(conn: psycopg.Connection) -> None:
    """Wait for the global migration lock; held until the current transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))

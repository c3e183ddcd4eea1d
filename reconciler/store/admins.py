"""Platform admins (``tenants.d/_platform.yaml``: the GitOps super-admin bootstrap).

Git is the source of truth: ``sync_platform_admins`` makes the table equal to the file.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from reconciler.store.errors import translated
from reconciler.store.read import control_schema_exists


@translated
def sync_platform_admins(conn: psycopg.Connection, admins: Mapping[str, str]) -> bool:
    """Make ``pbx.platform_admins`` hold exactly ``{email: name}``; True when it changed."""
    wanted = dict(sorted({email.lower(): name for email, name in admins.items()}.items()))
    emails, names = list(wanted), list(wanted.values())
    with conn.transaction():
        deleted = conn.execute(
            "DELETE FROM pbx.platform_admins WHERE NOT (email = ANY(%s))", (emails,)
        ).rowcount
        upserted = conn.execute(
            """
            INSERT INTO pbx.platform_admins (email, name)
            SELECT * FROM unnest(%s::text[], %s::text[])
            ON CONFLICT (email) DO UPDATE SET name = excluded.name, updated_at = now()
            WHERE pbx.platform_admins.name IS DISTINCT FROM excluded.name
            """,
            (emails, names),
        ).rowcount
    return bool(deleted or upserted)


@translated
def read_platform_admins(conn: psycopg.Connection) -> dict[str, str]:
    if not control_schema_exists(conn):
        return {}
    rows = conn.execute("SELECT email, name FROM pbx.platform_admins ORDER BY email").fetchall()
    return dict(rows)

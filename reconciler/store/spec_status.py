"""Invalid-spec status, durable: which tenants' files fail validation, and why.

An invalid file freezes its tenant at its last applied state. Who sees that must not depend
on which process found it: followers, ``pbx status`` and a restarted daemon read it here.
The table holds exactly the tenants invalid at the last pass (valid ones have no row), with
the first time each became invalid (``since``), kept while its errors stay invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from reconciler.store.errors import translated
from reconciler.store.read import control_schema_exists


@dataclass(frozen=True, slots=True)
class SpecStatus:
    tenant_id: str
    spec_file: str | None
    errors: tuple[str, ...]  # ``file:line:col: field: message``
    since: datetime | None = None


@translated
def record_spec_status(
    conn: psycopg.Connection, invalid: Mapping[str, tuple[str | None, Sequence[str]]]
) -> None:
    """Make the table hold exactly ``invalid`` (``{tenant: (file, errors)}``)."""
    ids = sorted(invalid)
    with conn.transaction():
        conn.execute("DELETE FROM pbx.spec_status WHERE NOT (tenant_id = ANY(%s))", (ids,))
        if not ids:
            return
        conn.cursor().executemany(
            """
            INSERT INTO pbx.spec_status (tenant_id, spec_file, errors)
            VALUES (%s, %s, %s)
            ON CONFLICT (tenant_id) DO UPDATE
            SET spec_file = excluded.spec_file, errors = excluded.errors, updated_at = now()
            WHERE pbx.spec_status.errors IS DISTINCT FROM excluded.errors
               OR pbx.spec_status.spec_file IS DISTINCT FROM excluded.spec_file
            """,
            [(t, invalid[t][0], Jsonb(list(invalid[t][1]))) for t in ids],
        )


@translated
def read_spec_status(conn: psycopg.Connection) -> dict[str, SpecStatus]:
    if not control_schema_exists(conn) or not _has_table(conn):
        return {}
    rows = conn.execute(
        "SELECT tenant_id, spec_file, errors, since FROM pbx.spec_status ORDER BY tenant_id"
    ).fetchall()
    return {row[0]: SpecStatus(row[0], row[1], tuple(row[2]), row[3]) for row in rows}


def _has_table(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('pbx.spec_status') IS NOT NULL").fetchone()
    return bool(row and row[0])

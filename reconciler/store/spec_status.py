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

from reconciler.core.revision import GitRevision
from reconciler.store.errors import translated
from reconciler.store.history import record_history
from reconciler.store.read import control_schema_exists


@dataclass(frozen=True, slots=True)
class SpecStatus:
    tenant_id: str
    spec_file: str | None
    errors: tuple[str, ...]  # ``file:line:col: field: message``
    since: datetime | None = None


@translated
def record_spec_status(
    conn: psycopg.Connection,
    invalid: Mapping[str, tuple[str | None, Sequence[str]]],
    *,
    revision: GitRevision | None = None,
    host: str | None = None,
) -> None:
    """Make the table hold exactly ``invalid`` (``{tenant: (file, errors)}``). With a
    ``host``, each tenant turning invalid, or valid again (fixed, or its file removed), is
    also an apply history row (action ``validate``, the first error, the revision): in the
    same transaction, so whichever daemon records it, it is recorded once."""
    ids = sorted(invalid)
    with conn.transaction():
        healed = conn.execute(
            "DELETE FROM pbx.spec_status WHERE NOT (tenant_id = ANY(%s)) RETURNING tenant_id",
            (ids,),
        ).fetchall()
        broken = _upsert(conn, invalid, ids)
        if host is None:
            return
        for (tenant_id,) in sorted(healed):
            _history(conn, tenant_id, "valid", None, revision, host)
        for tenant_id in broken:
            errors = invalid[tenant_id][1]
            first = errors[0] if errors else (invalid[tenant_id][0] or "invalid")
            _history(conn, tenant_id, "invalid", first, revision, host)


def _upsert(
    conn: psycopg.Connection,
    invalid: Mapping[str, tuple[str | None, Sequence[str]]],
    ids: list[str],
) -> list[str]:
    """Insert or update the invalid tenants; returns those that were not invalid before."""
    broken: list[str] = []
    for t in ids:
        row = conn.execute(
            """
            INSERT INTO pbx.spec_status (tenant_id, spec_file, errors)
            VALUES (%s, %s, %s)
            ON CONFLICT (tenant_id) DO UPDATE
            SET spec_file = excluded.spec_file, errors = excluded.errors, updated_at = now()
            WHERE pbx.spec_status.errors IS DISTINCT FROM excluded.errors
               OR pbx.spec_status.spec_file IS DISTINCT FROM excluded.spec_file
            RETURNING xmax = 0
            """,
            (t, invalid[t][0], Jsonb(list(invalid[t][1]))),
        ).fetchone()
        if row is not None and row[0]:
            broken.append(t)
    return broken


def _history(
    conn: psycopg.Connection,
    tenant_id: str,
    result: str,
    error: str | None,
    revision: GitRevision | None,
    host: str,
) -> None:
    record_history(
        conn,
        tenant_id=tenant_id,
        action="validate",
        result=result,
        revision=revision,
        host=host,
        changes=Jsonb([]),
        error=error,
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

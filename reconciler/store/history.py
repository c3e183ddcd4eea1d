"""The apply history: one row per attempt on a scope (a tenant: apply, prune, rotate; the
platform: apply, ``tenant_id`` = ``PLATFORM``), never updated.

Rows outlive the tenant (prune keeps them) and hold the change list as JSON: records only,
never credentials (secrets are not records, see ``reconciler.core.model``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from reconciler.core.model import PLATFORM
from reconciler.core.plan import Change, Scope
from reconciler.core.plan_text import changes_dicts
from reconciler.core.revision import GitRevision
from reconciler.store.errors import translated
from reconciler.store.read import control_schema_exists


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    tenant_id: str
    at: datetime
    revision: str | None
    dirty: bool | None
    host: str
    action: str
    result: str
    changes: Any
    error: str | None

    @property
    def scope(self) -> Scope:
        """Platform rows are kept under ``PLATFORM``, an id no tenant can have."""
        return Scope.PLATFORM if self.tenant_id == PLATFORM else Scope.TENANT


def record_history(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    action: str,
    result: str,
    revision: GitRevision | None,
    host: str,
    changes: Jsonb,
    error: str | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO pbx.apply_history
            (tenant_id, revision, dirty, host, action, result, changes, error)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            tenant_id,
            revision.commit if revision else None,
            revision.dirty if revision else None,
            host,
            action,
            result,
            changes,
            error,
        ),
    )


@translated
def read_history(
    conn: psycopg.Connection, *, tenant_id: str | None = None, limit: int = 100
) -> list[HistoryEntry]:
    """Most recent first."""
    if not control_schema_exists(conn):
        return []
    rows = conn.execute(
        """
        SELECT id, tenant_id, at, revision, dirty, host, action, result, changes, error
        FROM pbx.apply_history
        WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {"tenant": tenant_id, "limit": limit},
    ).fetchall()
    return [HistoryEntry(*row) for row in rows]


def changes_json(changes: Iterable[Change]) -> Jsonb:
    """The change list as ``pbx plan --output json`` renders it."""
    return Jsonb(changes_dicts(changes))

"""The apply history: one row per attempt on a tenant (apply, prune, rotate), never updated.

Rows outlive the tenant (prune keeps them) and hold the change list as JSON: records only,
never credentials (secrets are not records, see ``reconciler.core.model``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from reconciler.core.model import Kind, Record
from reconciler.core.plan import Action, Change
from reconciler.store.errors import translated
from reconciler.store.read import control_schema_exists
from reconciler.store.revision import GitRevision


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
    """The change list as ``Change.to_dict`` renders it (``pbx plan --output json``), built
    without ``dataclasses.asdict``'s deep copies: a cold apply records ~270k changes."""
    return Jsonb([_change_dict(c) for c in changes])


def _change_dict(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tenant": change.tenant,
        "kind": change.kind.value,
        "key": change.key,
        "action": change.action.verb,
        "before": _record_dict(change.before),
        "after": _record_dict(change.after),
    }
    if change.action is Action.UPDATE:
        out["changed"] = {k: {"old": o, "new": n} for k, (o, n) in change.fields.items()}
    if change.kind is Kind.EXTENSION and change.action is Action.CREATE:
        out["credentials"] = "(sensitive: generated on apply)"
    if change.reason:
        out["reason"] = change.reason
    return out


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _record_dict(record: Record | None) -> dict[str, Any] | None:
    if record is None:
        return None
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(f.name for f in fields(record))  # type: ignore[arg-type]
    return {name: getattr(record, name) for name in names}

"""Each tenant's daily rollup of its a legs (``tenant_<id>.calls_daily``, tenant migration 7):
kept in step with ``calls`` inside the transactions that change it, read for totals.

Filing folds the legs the insert actually added (``RETURNING`` of ``ON CONFLICT DO NOTHING``)
into their day's groups in the same statement, so a repeated uuid never counts twice and a
rolled-back batch leaves no count behind. Groups are upserted in key order: two daemons
filing at once lock the same rows in the same order (no deadlock). Retention drops the days
before the cutoff and recounts the cutoff's own day from what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from psycopg import sql

from reconciler.core.call_rollup import RING_CAP, CallGroup, DaySplit
from reconciler.store.layout import tenant_schema
from reconciler.store.runner import Connection

# How a leg is grouped: the same expressions in tenant migration 7's backfill.
DAY = sql.SQL("(started_at AT TIME ZONE 'UTC')::date")
QUEUE = sql.SQL("coalesce(queue, '')")
RING = sql.SQL(
    "CASE WHEN outcome = 'answered' AND coalesce(queue, '') <> ''"
    " THEN greatest(least(ring_seconds, {}), 0) ELSE -1 END"
).format(sql.Literal(RING_CAP + 1))
GROUPED = sql.SQL("direction, outcome, {}, {}, count(*), coalesce(sum(talk_seconds), 0)").format(
    QUEUE, RING
)


def daily_table(tenant_id: str) -> sql.Composed:
    return sql.SQL("{}.calls_daily").format(sql.Identifier(tenant_schema(tenant_id)))


def fold_statement(
    tenant_id: str,
    legs: sql.Composable,
    where: sql.Composable = sql.SQL("true"),  # noqa: B008 -- immutable
) -> sql.Composed:
    """An ``INSERT`` into the rollup of the a legs of relation ``legs`` (a CTE of the legs
    just filed, or the calls table) that match ``where``, added to the groups counted."""
    return sql.SQL(
        "INSERT INTO {daily} AS d (day, direction, outcome, queue, ring, calls, talk_seconds)"
        " SELECT {day}, {grouped} FROM {legs} WHERE {where} AND leg = 'a'"
        " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
        " ON CONFLICT (day, direction, outcome, queue, ring) DO UPDATE"
        " SET calls = d.calls + excluded.calls,"
        " talk_seconds = d.talk_seconds + excluded.talk_seconds"
    ).format(daily=daily_table(tenant_id), day=DAY, grouped=GROUPED, legs=legs, where=where)


def forget_days_before(
    conn: Connection, tenant_id: str, cutoff: datetime, calls: sql.Composed
) -> None:
    """After retention deleted the legs before ``cutoff``: drop the days before its day and
    recount its own day (partly deleted) from the legs left in ``calls``."""
    day = cutoff.astimezone(UTC).date()
    daily = daily_table(tenant_id)
    conn.execute(sql.SQL("DELETE FROM {} WHERE day < %s").format(daily), (day,))
    start = datetime.combine(day, time(), tzinfo=UTC)
    if cutoff == start:
        return
    conn.execute(sql.SQL("DELETE FROM {} WHERE day = %s").format(daily), (day,))
    where = sql.SQL("started_at >= %s AND started_at < %s")
    conn.execute(fold_statement(tenant_id, calls, where), (start, start + timedelta(days=1)))


def rollup_groups(
    conn: Connection,
    tenant_id: str,
    split: DaySplit,
    filters: Sequence[tuple[str, str | None]],
) -> list[CallGroup]:
    """The rollup's groups of the whole days of ``split`` that match ``filters``
    (``(column, value)`` equalities on direction, outcome or queue)."""
    parts: list[sql.Composable] = [sql.SQL("true")]
    params: list[Any] = []
    if split.first_day is not None:
        parts.append(sql.SQL("day >= %s"))
        params.append(split.first_day)
    if split.end_day is not None:
        parts.append(sql.SQL("day < %s"))
        params.append(split.end_day)
    for column, value in filters:
        if value:
            parts.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    rows = conn.execute(
        sql.SQL(
            "SELECT direction, outcome, queue, ring, sum(calls), sum(talk_seconds) FROM {}"
            " WHERE {} GROUP BY 1, 2, 3, 4"
        ).format(daily_table(tenant_id), sql.SQL(" AND ").join(parts)),
        params,
    ).fetchall()
    return [CallGroup(d, o, q, r, int(c), int(t)) for d, o, q, r, c, t in rows]

"""Call history in each tenant's own schema (``tenant_<id>.calls``, tenant migration 4).

Every statement names one tenant's schema (``sql.Identifier``), so no query can cross
tenants: a record is filed where the daemon resolved it, and read only from the schema of
the tenant the portal scoped the request to. Inserts are idempotent by the switch's leg uuid
(``ON CONFLICT DO NOTHING``): a repeated post or a collected error file changes nothing.
Lists page by keyset (``started_at``, ``uuid``) on the partial index of a legs, so the first
page of a million calls reads a page, not the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, fields
from datetime import datetime
from typing import Any

from psycopg import errors, sql

from reconciler.core.call_query import (
    MAX_PAGE_SIZE,
    CallPage,
    CallQuery,
    CallTotals,
    QueueLevel,
    TenantVolume,
)
from reconciler.core.call_record import CallRecord, Direction, Leg, Outcome
from reconciler.store.layout import tenant_schema
from reconciler.store.runner import Connection

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))
_MISSED = (Outcome.NO_ANSWER.value, Outcome.BUSY.value, Outcome.ABANDONED.value)


def _table(tenant_id: str) -> sql.Composed:
    return sql.SQL("{}.calls").format(sql.Identifier(tenant_schema(tenant_id)))


def _row(record: CallRecord) -> tuple[Any, ...]:
    return tuple(
        v.value if isinstance(v, Leg | Direction | Outcome) else v for v in astuple(record)
    )


def _record(row: Sequence[Any]) -> CallRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values["leg"] = Leg(values["leg"])
    values["direction"] = Direction(values["direction"])
    values["outcome"] = Outcome(values["outcome"])
    return CallRecord(**values)


def _rows(conn: Connection, statement: sql.Composed, params: Sequence[Any]) -> list[Any]:
    """A read; a tenant whose schema is not migrated yet (no table) has no calls."""
    try:
        rows: list[Any] = conn.execute(statement, params).fetchall()
        return rows
    except errors.UndefinedTable:
        return []


def insert_calls(conn: Connection, tenant_id: str, records: Iterable[CallRecord]) -> int:
    """File ``records`` in the tenant's schema; returns how many were new."""
    return len(file_calls(conn, {tenant_id: list(records)}))


def file_calls(conn: Connection, by_tenant: Mapping[str, Sequence[CallRecord]]) -> set[str]:
    """File the records of several tenants in one transaction (one commit for a batch of
    posts); returns the uuids that were new (the others were filed before)."""
    new: set[str] = set()
    with conn.transaction(), conn.cursor() as cur:
        for tenant_id, records in sorted(by_tenant.items()):
            if not records:
                continue
            statement = sql.SQL(
                "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (uuid) DO NOTHING RETURNING uuid"
            ).format(
                _table(tenant_id),
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
            )
            cur.executemany(statement, [_row(r) for r in records], returning=True)
            while True:
                new.update(uuid for (uuid,) in cur.fetchall())
                if not cur.nextset():
                    break
    return new


def _where(query: CallQuery) -> tuple[sql.Composable, list[Any]]:
    """The filters of ``query`` over a legs, as one conjunction."""
    parts: list[sql.Composable] = [sql.SQL("leg = 'a'")]
    params: list[Any] = []

    def add(clause: sql.SQL, *values: Any) -> None:
        parts.append(clause)
        params.extend(values)

    if query.since is not None:
        add(sql.SQL("started_at >= %s"), query.since)
    if query.until is not None:
        add(sql.SQL("started_at < %s"), query.until)
    if query.direction:
        add(sql.SQL("direction = %s"), query.direction)
    if query.outcome:
        add(sql.SQL("outcome = %s"), query.outcome)
    if query.extension:
        add(sql.SQL("(from_extension = %s OR to_extension = %s)"), query.extension, query.extension)
    if query.queue:
        add(sql.SQL("queue = %s"), query.queue)
    if query.number:
        pattern = (
            "%" + query.number.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        )
        add(
            sql.SQL("(from_number LIKE %s OR to_number LIKE %s OR did LIKE %s)"),
            pattern,
            pattern,
            pattern,
        )
    if query.only_extensions is not None:
        own, agents = sorted(query.only_extensions), sorted(query.only_agents)
        add(
            sql.SQL("(from_extension = ANY(%s) OR to_extension = ANY(%s) OR agent = ANY(%s))"),
            own, own, agents,
        )  # fmt: skip
    return sql.SQL(" AND ").join(parts), params


def read_calls(conn: Connection, tenant_id: str, query: CallQuery) -> CallPage:
    """One page of calls (a legs), newest first."""
    where, params = _where(query)
    if query.after is not None:
        where = sql.SQL("{} AND (started_at, uuid) < (%s, %s)").format(where)
        params += [query.after[0], query.after[1]]
    limit = max(1, min(query.limit, MAX_PAGE_SIZE))
    statement = sql.SQL(
        "SELECT {} FROM {} WHERE {} ORDER BY started_at DESC, uuid DESC LIMIT %s"
    ).format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), _table(tenant_id), where)
    rows = _rows(conn, statement, [*params, limit + 1])
    calls = tuple(_record(r) for r in rows[:limit])
    more = len(rows) > limit
    return CallPage(calls, (calls[-1].started_at, calls[-1].uuid) if more else None)


def read_call(conn: Connection, tenant_id: str, call_uuid: str) -> tuple[CallRecord, ...]:
    """Every leg of one call (a first); empty when the tenant has no such call."""
    statement = sql.SQL("SELECT {} FROM {} WHERE call_uuid = %s ORDER BY leg, started_at").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), _table(tenant_id)
    )
    return tuple(_record(r) for r in _rows(conn, statement, (call_uuid,)))


def call_totals(
    conn: Connection, tenant_id: str, query: CallQuery, service_seconds: int
) -> CallTotals:
    """Calls, answered, missed and average talk of the filtered calls; per queue, how many
    were answered within ``service_seconds`` of joining it."""
    where, params = _where(query)
    table = _table(tenant_id)
    total = _rows(
        conn,
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'answered'),"
            " count(*) FILTER (WHERE outcome = ANY(%s)),"
            " coalesce(avg(talk_seconds) FILTER (WHERE outcome = 'answered'), 0)"
            " FROM {} WHERE {}"
        ).format(table, where),
        [list(_MISSED), *params],
    )
    queues = _rows(
        conn,
        sql.SQL(
            "SELECT queue, count(*), count(*) FILTER (WHERE outcome = 'answered'),"
            " count(*) FILTER (WHERE outcome = 'answered' AND ring_seconds <= %s)"
            " FROM {} WHERE {} AND queue IS NOT NULL GROUP BY queue ORDER BY queue"
        ).format(table, where),
        [service_seconds, *params],
    )
    calls, answered, missed, talk = total[0] if total else (0, 0, 0, 0)
    return CallTotals(
        calls=calls,
        answered=answered,
        missed=missed,
        average_talk_seconds=round(float(talk), 1),
        queues=tuple(QueueLevel(q, c, a, w) for q, c, a, w in queues),
    )


def delete_calls_before(conn: Connection, tenant_id: str, cutoff: datetime) -> int:
    """Retention: forget every leg that started before ``cutoff``; returns how many."""
    statement = sql.SQL("DELETE FROM {} WHERE started_at < %s").format(_table(tenant_id))
    return conn.execute(statement, (cutoff,)).rowcount


def call_volumes(
    conn: Connection, tenant_ids: Sequence[str], since: datetime
) -> list[TenantVolume]:
    """Per tenant since ``since``: calls, answered and talk seconds (never a number)."""
    volumes: list[TenantVolume] = []
    present = {
        name
        for (name,) in conn.execute(
            "SELECT table_schema FROM information_schema.tables"
            " WHERE table_name = 'calls' AND table_schema = ANY(%s)",
            ([tenant_schema(t) for t in tenant_ids],),
        ).fetchall()
    }
    for tenant_id in tenant_ids:
        if tenant_schema(tenant_id) not in present:  # not migrated yet: no call either
            volumes.append(TenantVolume(tenant_id, 0, 0, 0))
            continue
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE outcome = 'answered'),"
                " coalesce(sum(talk_seconds), 0) FROM {} WHERE leg = 'a' AND started_at >= %s"
            ).format(_table(tenant_id)),
            (since,),
        ).fetchone()
        calls, answered, talk = row if row else (0, 0, 0)
        volumes.append(TenantVolume(tenant_id, calls, answered, int(talk)))
    return volumes

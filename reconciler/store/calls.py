"""Call history in each tenant's own schema (``tenant_<id>.calls``, tenant migration 4).

Every statement names one tenant's schema (``sql.Identifier``), so no query can cross
tenants: a record is filed where the daemon resolved it, and read only from the schema of
the tenant the portal scoped the request to. Inserts are idempotent by the switch's leg uuid
(``ON CONFLICT DO NOTHING``): a repeated post or a collected error file changes nothing.
Lists page by keyset (``started_at``, ``uuid``) on the partial index of a legs, so the first
page of a million calls reads a page, not the table.

Totals and volumes read the daily rollup (``store.call_rollup``, kept in the filing and
retention transactions) for whole days and the raw table for the partial days at a range's
ends; filters the rollup cannot answer count the raw table (``core.call_rollup``). A number
search matches the numbers joined by newlines (no stored number holds one: control
characters are stripped), the expression tenant migration 7's trigram index covers when
``pg_trgm`` could be created; without it the same query scans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import astuple, fields, replace
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
from reconciler.core.call_rollup import (
    MISSED,
    CallGroup,
    average,
    rollup_answers,
    split_days,
    totals_of,
)
from reconciler.store.call_rollup import (
    GROUPED,
    fold_statement,
    forget_days_before,
    rollup_groups,
)
from reconciler.store.layout import tenant_schema
from reconciler.store.runner import Connection

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))
NUMBERS = sql.SQL("(from_number || E'\\n' || to_number || E'\\n' || coalesce(did, ''))")


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
    posts); returns the uuids that were new (the others were filed before).

    One statement a tenant: the batch travels as one JSON array read back into the table's
    own row type, the insert skips uuids filed before, and the legs it added are folded
    into the daily rollup in the same statement."""
    new: set[str] = set()
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    with conn.transaction(), conn.cursor() as cur:
        for tenant_id, records in sorted(by_tenant.items()):
            if not records:
                continue
            table = _table(tenant_id)
            statement = sql.SQL(
                "WITH new AS (INSERT INTO {table} ({columns})"
                " SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)"
                " ON CONFLICT (uuid) DO NOTHING"
                " RETURNING uuid, leg, started_at, direction, outcome, queue, ring_seconds,"
                " talk_seconds), folded AS ({fold}) SELECT uuid FROM new"
            ).format(
                table=table,
                columns=columns,
                fold=fold_statement(tenant_id, sql.Identifier("new")),
            )
            cur.execute(statement, (_json_rows(records),))
            new.update(uuid for (uuid,) in cur.fetchall())
    return new


def _json_rows(records: Sequence[CallRecord]) -> str:
    return json.dumps(
        [dict(zip(COLUMNS, _row(r), strict=True)) for r in records],
        default=lambda v: v.isoformat(),
        separators=(",", ":"),
    )


def _where(query: CallQuery) -> tuple[sql.Composable, list[Any]]:
    """The filters of ``query`` over a legs, as one conjunction."""
    parts: list[sql.Composable] = [sql.SQL("leg = 'a'")]
    params: list[Any] = []

    def add(condition: sql.Composable, *values: Any) -> None:
        parts.append(condition)
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
    if query.number and "\n" in query.number:  # no stored number holds one
        add(sql.SQL("false"))
    elif query.number:
        pattern = (
            "%" + query.number.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        )
        add(sql.SQL("{} LIKE %s").format(NUMBERS), pattern)
    if query.only_extensions is not None:
        own, agents = sorted(query.only_extensions), sorted(query.only_agents)
        add(
            sql.SQL("(from_extension = ANY(%s) OR to_extension = ANY(%s) OR agent = ANY(%s))"),
            own, own, agents,
        )  # fmt: skip
    return sql.SQL(" AND ").join(parts), params


def read_calls(conn: Connection, tenant_id: str, query: CallQuery) -> CallPage:
    """One page of calls (a legs), newest first.

    A number search is planned by hand: PostgreSQL guesses a ``LIKE '%…%'`` matches 0.8% of
    rows whatever it is, so it walks the newest-first index, fine for a number in many calls
    and seconds for one in a hundred of a million. The newest ``SEARCH_WINDOW`` calls are
    searched first; when they hold a page, that is the page, else the number is rare and
    every match is fetched through the trigram index (a CTE the planner cannot walk in
    order), then sorted."""
    limit = max(1, min(query.limit, MAX_PAGE_SIZE))
    if not query.number:
        rows = _page(conn, tenant_id, query, limit + 1)
    else:
        rows, exhausted = _recent_matches(conn, tenant_id, query, limit + 1)
        if len(rows) <= limit and not exhausted:
            rows = _page(conn, tenant_id, query, limit + 1, materialized=True)
    calls = tuple(_record(r) for r in rows[:limit])
    more = len(rows) > limit
    return CallPage(calls, (calls[-1].started_at, calls[-1].uuid) if more else None)


SEARCH_WINDOW = 5_000  # a number in 1% of the calls fills a page from these
_ORDER = sql.SQL("ORDER BY started_at DESC, uuid DESC")


def _keyset(query: CallQuery) -> tuple[sql.Composable, list[Any]]:
    where, params = _where(query)
    if query.after is not None:
        where = sql.SQL("{} AND (started_at, uuid) < (%s, %s)").format(where)
        params += [query.after[0], query.after[1]]
    return where, params


def _page(
    conn: Connection, tenant_id: str, query: CallQuery, rows: int, materialized: bool = False
) -> list[Any]:
    where, params = _keyset(query)
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    select = sql.SQL("SELECT {} FROM {} WHERE {}").format(columns, _table(tenant_id), where)
    if materialized:
        statement = sql.SQL("WITH m AS MATERIALIZED ({}) SELECT * FROM m {} LIMIT %s")
    else:
        statement = sql.SQL("{} {} LIMIT %s")
    return _rows(conn, statement.format(select, _ORDER), [*params, rows])


def _recent_matches(
    conn: Connection, tenant_id: str, query: CallQuery, rows: int
) -> tuple[list[Any], bool]:
    """The matches among the newest ``SEARCH_WINDOW`` a legs (past the keyset): a walk of
    the newest-first index that no filter lengthens; and whether those were all of them."""
    where, params = _where(query)
    recent, recent_params = _keyset(CallQuery(after=query.after))
    table = _table(tenant_id)
    statement = sql.SQL(
        "SELECT {columns} FROM (SELECT * FROM {table} WHERE {recent} {order} LIMIT %s) recent"
        " WHERE {where} {order} LIMIT %s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        table=table,
        recent=recent,
        where=where,
        order=_ORDER,
    )
    found = _rows(conn, statement, [*recent_params, SEARCH_WINDOW, *params, rows])
    if len(found) >= rows:
        return found, False
    window = _rows(
        conn,
        sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} {} LIMIT %s) w").format(
            table, recent, _ORDER
        ),
        [*recent_params, SEARCH_WINDOW],
    )
    return found, not window or window[0][0] < SEARCH_WINDOW


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
    were answered within ``service_seconds`` of joining it. Whole days from the rollup,
    the partial days at the range's ends from the raw table; equal to ``raw_call_totals``."""
    if not rollup_answers(query, service_seconds):
        return raw_call_totals(conn, tenant_id, query, service_seconds)
    split = split_days(query.since, query.until)
    groups: list[CallGroup] = []
    if split.days:
        filters = (("direction", query.direction), ("outcome", query.outcome),
                   ("queue", query.queue))  # fmt: skip
        groups += _tolerant(rollup_groups, conn, tenant_id, split, filters)
    for since, until in split.edges:
        groups += _raw_groups(conn, tenant_id, replace(query, since=since, until=until))
    return totals_of(groups, service_seconds)


def _tolerant(read: Callable[..., list[CallGroup]], *args: Any) -> list[CallGroup]:
    """A rollup read; a tenant whose schema is not migrated yet has no calls."""
    try:
        return read(*args)
    except errors.UndefinedTable:
        return []


def _raw_groups(conn: Connection, tenant_id: str, query: CallQuery) -> list[CallGroup]:
    """The filtered a legs grouped as the rollup groups them."""
    where, params = _where(query)
    statement = sql.SQL("SELECT {} FROM {} WHERE {} GROUP BY 1, 2, 3, 4").format(
        GROUPED, _table(tenant_id), where
    )
    return [CallGroup(d, o, q, r, c, int(t)) for d, o, q, r, c, t in _rows(conn, statement, params)]


def raw_call_totals(
    conn: Connection, tenant_id: str, query: CallQuery, service_seconds: int
) -> CallTotals:
    """``call_totals`` counted from the raw table only: what the rollup must agree with,
    and the answer for the filters it cannot serve."""
    where, params = _where(query)
    table = _table(tenant_id)
    total = _rows(
        conn,
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'answered'),"
            " count(*) FILTER (WHERE outcome = ANY(%s)),"
            " coalesce(sum(talk_seconds) FILTER (WHERE outcome = 'answered'), 0)"
            " FROM {} WHERE {}"
        ).format(table, where),
        [sorted(MISSED), *params],
    )
    queues = _rows(
        conn,
        sql.SQL(
            "SELECT queue, count(*), count(*) FILTER (WHERE outcome = 'answered'),"
            " count(*) FILTER (WHERE outcome = 'answered' AND ring_seconds <= %s)"
            " FROM {} WHERE {} AND queue <> '' GROUP BY queue ORDER BY queue COLLATE \"C\""
        ).format(table, where),
        [service_seconds, *params],
    )
    calls, answered, missed, talk = total[0] if total else (0, 0, 0, 0)
    return CallTotals(
        calls=calls,
        answered=answered,
        missed=missed,
        average_talk_seconds=average(int(talk), answered),
        queues=tuple(QueueLevel(q, c, a, w) for q, c, a, w in queues),
    )


def delete_calls_before(conn: Connection, tenant_id: str, cutoff: datetime) -> int:
    """Retention: forget every leg that started before ``cutoff``; returns how many. The
    rollup forgets the same days in the same transaction."""
    table = _table(tenant_id)
    with conn.transaction():
        statement = sql.SQL("DELETE FROM {} WHERE started_at < %s").format(table)
        deleted = conn.execute(statement, (cutoff,)).rowcount
        forget_days_before(conn, tenant_id, cutoff, table)
    return deleted


def call_volumes(
    conn: Connection, tenant_ids: Sequence[str], since: datetime
) -> list[TenantVolume]:
    """Per tenant since ``since``: calls, answered and talk seconds (never a number)."""
    volumes: list[TenantVolume] = []
    present = {
        name
        for (name,) in conn.execute(
            "SELECT table_schema FROM information_schema.tables"
            " WHERE table_name = 'calls_daily' AND table_schema = ANY(%s)",
            ([tenant_schema(t) for t in tenant_ids],),
        ).fetchall()
    }
    split = split_days(since, None)
    for tenant_id in tenant_ids:
        if tenant_schema(tenant_id) not in present:  # not migrated yet: no call either
            volumes.append(TenantVolume(tenant_id, 0, 0, 0))
            continue
        groups = rollup_groups(conn, tenant_id, split, ()) if split.days else []
        for edge_since, edge_until in split.edges:
            groups += _raw_groups(conn, tenant_id, CallQuery(since=edge_since, until=edge_until))
        totals = totals_of(groups, 0)
        talk = sum(g.talk_seconds for g in groups)
        volumes.append(TenantVolume(tenant_id, totals.calls, totals.answered, talk))
    return volumes

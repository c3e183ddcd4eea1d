"""Call history in PostgreSQL: filed once per leg, in the tenant's own schema only; pages,
filters, totals, retention and per-tenant volumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from reconciler.core.call_query import CallQuery
from reconciler.core.call_record import CallRecord, Outcome
from reconciler.core.cdr import read_cdr
from reconciler.store import connect
from reconciler.store.calls import (
    call_totals,
    call_volumes,
    delete_calls_before,
    insert_calls,
    read_call,
    read_calls,
)
from tests.store.test_support import converge, desired_of, make_spec

CAPTURED = Path(__file__).resolve().parents[1] / "fakes" / "cdr"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        converge(connection, desired_of([make_spec("acme"), make_spec("globex", did_prefix="212")]))
        yield connection


def captured(name: str) -> CallRecord:
    return read_cdr((CAPTURED / f"{name}.cdr.xml").read_text())


def call(n: int, **changes: object) -> CallRecord:
    """The captured answered a leg as the ``n``-th call of the morning."""
    base = captured("ext_answered_a")
    uuid = f"00000000-0000-0000-0000-{n:012d}"
    at = T0 + timedelta(minutes=n)
    fields = {
        "uuid": uuid,
        "call_uuid": uuid,
        "started_at": at,
        "ended_at": at + timedelta(seconds=30),
    }
    return replace(base, **{**fields, **changes})  # type: ignore[arg-type]


def test_a_record_is_filed_once_however_often_it_arrives(conn: psycopg.Connection) -> None:
    record = captured("ext_answered_a")
    assert insert_calls(conn, "acme", [record]) == 1
    assert insert_calls(conn, "acme", [record]) == 0
    assert insert_calls(conn, "acme", [record, captured("ext_answered_b")]) == 1
    assert read_call(conn, "acme", record.uuid) == (record, captured("ext_answered_b"))


def test_a_record_lands_in_its_tenants_schema_only(conn: psycopg.Connection) -> None:
    record = captured("ext_busy_a")
    insert_calls(conn, "acme", [record])
    assert read_call(conn, "globex", record.uuid) == ()
    assert read_calls(conn, "globex", CallQuery()).calls == ()
    (count,) = conn.execute("SELECT count(*) FROM tenant_globex.calls").fetchone() or (None,)
    assert count == 0


def test_pages_run_newest_first_without_gaps_or_repeats(conn: psycopg.Connection) -> None:
    insert_calls(conn, "acme", [call(n) for n in range(7)])
    seen: list[str] = []
    query = CallQuery(limit=3)
    while True:
        page = read_calls(conn, "acme", query)
        seen += [c.uuid for c in page.calls]
        if page.next_after is None:
            break
        query = replace(query, after=page.next_after)
    assert seen == [call(n).uuid for n in reversed(range(7))]


def test_b_legs_are_not_listed_as_calls(conn: psycopg.Connection) -> None:
    insert_calls(conn, "acme", [captured("ext_answered_a"), captured("ext_answered_b")])
    assert [c.uuid for c in read_calls(conn, "acme", CallQuery()).calls] == [
        captured("ext_answered_a").uuid
    ]


def test_filters(conn: psycopg.Connection) -> None:
    insert_calls(conn, "acme", [
        call(1), call(2, outcome=Outcome.BUSY, from_extension="1009"),
        call(3, from_number="+14155550199", from_extension=None), call(4, queue="support"),
    ])  # fmt: skip

    def uuids(**kw: object) -> list[int]:
        page = read_calls(conn, "acme", CallQuery(**kw))  # type: ignore[arg-type]
        return sorted(int(c.uuid[-3:]) for c in page.calls)

    assert uuids(outcome="busy") == [2]
    assert uuids(extension="1009") == [2]
    assert uuids(number="550199") == [3]
    assert uuids(number="%") == []  # a LIKE wildcard is searched for, not obeyed
    assert uuids(queue="support") == [4]
    assert uuids(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)) == [2, 3]


def test_a_member_sees_their_extensions_and_the_queue_calls_their_agent_answered(
    conn: psycopg.Connection,
) -> None:
    insert_calls(conn, "acme", [
        call(1, from_extension="1001", to_extension="1002"),
        call(2, from_extension="1003", to_extension="1001"),
        call(3, from_extension=None, to_extension=None, queue="support", agent="alice"),
        call(4, from_extension="1003", to_extension="1004"),
    ])  # fmt: skip
    mine = CallQuery(only_extensions=frozenset({"1001"}), only_agents=frozenset({"alice"}))
    assert sorted(int(c.uuid[-1]) for c in read_calls(conn, "acme", mine).calls) == [1, 2, 3]
    nobody = CallQuery(only_extensions=frozenset())
    assert read_calls(conn, "acme", nobody).calls == ()


def test_totals_and_service_level(conn: psycopg.Connection) -> None:
    insert_calls(conn, "acme", [
        call(1, talk_seconds=60),
        call(2, outcome=Outcome.BUSY, talk_seconds=0),
        call(3, queue="support", ring_seconds=10, talk_seconds=30),
        call(4, queue="support", ring_seconds=40, talk_seconds=90),
        call(5, queue="support", outcome=Outcome.ABANDONED, talk_seconds=0, answered_at=None),
    ])  # fmt: skip
    totals = call_totals(conn, "acme", CallQuery(), service_seconds=20)
    assert (totals.calls, totals.answered, totals.missed) == (5, 3, 2)
    assert totals.average_talk_seconds == 60.0
    (support,) = totals.queues
    assert (support.queue, support.calls, support.answered, support.answered_within) == (
        "support",
        3,
        2,
        1,
    )


def test_retention_deletes_what_started_before_the_cutoff(conn: psycopg.Connection) -> None:
    insert_calls(conn, "acme", [call(n) for n in range(4)])
    insert_calls(conn, "globex", [call(n) for n in range(4)])
    assert delete_calls_before(conn, "acme", T0 + timedelta(minutes=2)) == 2
    assert len(read_calls(conn, "acme", CallQuery()).calls) == 2
    assert len(read_calls(conn, "globex", CallQuery()).calls) == 4


def test_volumes_count_calls_per_tenant(conn: psycopg.Connection) -> None:
    insert_calls(
        conn, "acme", [call(1, talk_seconds=10), call(2, outcome=Outcome.BUSY, talk_seconds=0)]
    )
    volumes = call_volumes(conn, ["acme", "globex"], since=T0)
    assert [(v.tenant_id, v.calls, v.answered, v.talk_seconds) for v in volumes] == [
        ("acme", 2, 1, 10), ("globex", 0, 0, 0),
    ]  # fmt: skip

"""The daily rollup of the call history: totals from it are identical to the raw aggregate for
any calls, ranges and filters; a repeated uuid never counts twice; retention and migration 7's
backfill keep it in step; the number search (trigram index when pg_trgm exists) finds what a
substring match of the three numbers finds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.call_query import CallQuery
from reconciler.core.call_record import CallRecord, Direction, Leg, Outcome
from reconciler.core.call_rollup import rollup_answers, split_days
from reconciler.store import calls as calls_module
from reconciler.store import connect, migrate
from reconciler.store import migrations as migrations_module
from reconciler.store.calls import (
    call_totals,
    call_volumes,
    delete_calls_before,
    file_calls,
    raw_call_totals,
    read_calls,
)
from reconciler.store.migrations import create_tenant_schema
from tests.store.test_support import converge, desired_of, make_spec

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=6)
QUEUES = ("sales", "support", "Billing")
NUMBERS = ("+14155550042", "1001", "1002", "+442071234567", "5550", "100")


@pytest.fixture(scope="module")
def module_dsn(pg_server_dsn: str) -> Iterator[str]:
    from tests.conftest import fresh_database

    with fresh_database(pg_server_dsn) as dsn:
        with connect(dsn) as conn:
            migrate(conn)
            with conn.transaction():
                create_tenant_schema(conn, "acme")
        yield dsn


@pytest.fixture
def conn(module_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(module_dsn) as connection:
        connection.execute("TRUNCATE tenant_acme.calls, tenant_acme.calls_daily")
        yield connection


moments = st.integers(0, int(SPAN.total_seconds())).map(lambda s: T0 + timedelta(seconds=s))
# ranges often on midnights (the portal's dates) and often not (the API's keyset, volumes)
bounds = st.one_of(
    st.none(),
    moments,
    st.integers(0, SPAN.days).map(lambda d: T0 + timedelta(days=d)),
)


@st.composite
def legs(draw: st.DrawFn) -> CallRecord:
    n = draw(st.integers(0, 10**9))
    start = draw(moments)
    outcome = draw(st.sampled_from(list(Outcome)))
    queue = draw(st.sampled_from((None, *QUEUES)))
    uuid = f"00000000-0000-0000-0000-{n:012d}"
    return CallRecord(
        uuid=uuid,
        call_uuid=uuid,
        leg=draw(st.sampled_from(list(Leg))),
        domain="acme.example.com",
        direction=draw(st.sampled_from(list(Direction))),
        outcome=outcome,
        hangup_cause="NORMAL_CLEARING",
        from_number=draw(st.sampled_from(NUMBERS)),
        from_name="Caller",
        to_number=draw(st.sampled_from(NUMBERS)),
        did=draw(st.sampled_from((None, *NUMBERS))),
        from_extension=draw(st.sampled_from((None, "1001", "1002"))),
        to_extension=draw(st.sampled_from((None, "1001", "1003"))),
        queue=queue,
        agent=draw(st.sampled_from((None, "alice"))),
        bridge_uuid=None,
        started_at=start,
        answered_at=start if outcome is Outcome.ANSWERED else None,
        ended_at=start + timedelta(seconds=30),
        ring_seconds=draw(st.sampled_from((0, 5, 20, 21, 3600, 3601, 5000))),
        talk_seconds=draw(st.integers(0, 4000)),
        node="realswitch",
    )


queries = st.builds(
    CallQuery,
    since=bounds,
    until=bounds,
    direction=st.sampled_from((None, *(d.value for d in Direction))),
    outcome=st.sampled_from((None, *(o.value for o in Outcome))),
    queue=st.sampled_from((None, *QUEUES, "nosuch")),
    extension=st.sampled_from((None, None, None, "1001")),
    number=st.sampled_from((None, None, None, "555", "100")),
    only_extensions=st.sampled_from((None, None, None, frozenset({"1002"}))),
)

EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@EXAMPLES
@given(
    batches=st.lists(st.lists(legs(), max_size=12), min_size=1, max_size=4),
    cutoff=st.one_of(st.none(), moments),
    query=queries,
    service=st.sampled_from((1, 20, 21, 3600, 4000)),
)
def test_totals_from_the_rollup_are_the_raw_aggregate(
    conn: psycopg.Connection,
    batches: list[list[CallRecord]],
    cutoff: datetime | None,
    query: CallQuery,
    service: int,
) -> None:
    conn.execute("TRUNCATE tenant_acme.calls, tenant_acme.calls_daily")
    for batch in batches:  # later batches repeat earlier uuids: filed and counted once
        file_calls(conn, {"acme": batch})
    file_calls(conn, {"acme": batches[0]})
    if cutoff is not None:
        delete_calls_before(conn, "acme", cutoff)
    assert call_totals(conn, "acme", query, service) == raw_call_totals(
        conn, "acme", query, service
    )
    since = query.since or T0
    assert call_volumes(conn, ["acme"], since) == call_volumes_raw(conn, since)


def call_volumes_raw(conn: psycopg.Connection, since: datetime) -> list[object]:
    from reconciler.core.call_query import TenantVolume

    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'answered'),"
        " coalesce(sum(talk_seconds), 0) FROM tenant_acme.calls"
        " WHERE leg = 'a' AND started_at >= %s",
        (since,),
    ).fetchone()
    assert row is not None
    return [TenantVolume("acme", row[0], row[1], int(row[2]))]


def test_the_rollup_answers_only_what_it_holds() -> None:
    assert rollup_answers(CallQuery(direction="inbound", outcome="busy", queue="sales"), 20)
    assert not rollup_answers(CallQuery(extension="1001"), 20)
    assert not rollup_answers(CallQuery(number="555"), 20)
    assert not rollup_answers(CallQuery(only_extensions=frozenset({"1001"})), 20)
    assert not rollup_answers(CallQuery(), 3601)


@given(since=bounds, until=bounds, probe=moments)
def test_a_range_is_its_whole_days_and_its_edges_exactly(
    since: datetime | None, until: datetime | None, probe: datetime
) -> None:
    split = split_days(since, until)
    inside = (since is None or since <= probe) and (until is None or probe < until)
    day = probe.date()
    in_days = (
        split.days
        and (split.first_day is None or split.first_day <= day)
        and (split.end_day is None or day < split.end_day)
    )
    in_edges = [(s is None or s <= probe) and (u is None or probe < u) for s, u in split.edges]
    assert [in_days, *in_edges].count(True) == (1 if inside else 0)


def test_a_month_is_read_from_the_rollup_not_the_calls(conn: psycopg.Connection) -> None:
    """The rollup is what the totals read: a group planted in it (and not in the calls) is
    counted, which would fail if the totals scanned the raw table."""
    conn.execute(
        "INSERT INTO tenant_acme.calls_daily VALUES ('2026-11-02', 'inbound', 'answered',"
        " 'sales', 3, 7, 700)"
    )
    month = CallQuery(since=T0, until=T0 + timedelta(days=30))
    totals = call_totals(conn, "acme", month, 20)
    assert (totals.calls, totals.answered, totals.average_talk_seconds) == (7, 7, 100.0)
    assert [(q.queue, q.answered_within) for q in totals.queues] == [("sales", 7)]
    assert raw_call_totals(conn, "acme", month, 20).calls == 0


def test_the_rollup_migration_counts_the_calls_filed_before_it(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = migrations_module.TENANT_MIGRATIONS
    rollup = next(m for m in full if "daily rollup" in m.name)
    before = tuple(m for m in full if m is not rollup)
    calls = [_call(n, T0 + timedelta(hours=n)) for n in range(30)]
    with connect(pg_dsn) as conn:
        migrate(conn)
        monkeypatch.setattr(migrations_module, "TENANT_MIGRATIONS", before)
        assert converge(conn, desired_of([make_spec("acme")])).ok
        conn.execute(
            "INSERT INTO tenant_acme.calls (uuid, call_uuid, leg, domain, direction, outcome,"
            " hangup_cause, from_number, from_name, to_number, queue, started_at, ended_at,"
            " ring_seconds, talk_seconds, node) SELECT u, u, 'a', 'acme.example.com',"
            " 'inbound', 'answered', 'NORMAL_CLEARING', '1', '', '2', 'sales', t, t, 4, 60, ''"
            " FROM unnest(%s::text[], %s::timestamptz[]) AS c(u, t)",
            ([c.uuid for c in calls], [c.started_at for c in calls]),
        )
        monkeypatch.setattr(migrations_module, "TENANT_MIGRATIONS", full)
        assert ("tenant_acme", rollup.version) in migrate(conn)
        query = CallQuery(since=T0)
        totals = call_totals(conn, "acme", query, 20)
        assert totals == raw_call_totals(conn, "acme", query, 20)
        assert (totals.calls, totals.queues[0].answered_within) == (30, 30)


def _call(n: int, at: datetime, **numbers: str | None) -> CallRecord:
    uuid = f"00000000-0000-0000-0001-{n:012d}"
    return CallRecord(
        uuid=uuid, call_uuid=uuid, leg=Leg.A, domain="acme.example.com",
        direction=Direction.INBOUND, outcome=Outcome.ANSWERED, hangup_cause="NORMAL_CLEARING",
        from_number=numbers.get("from_number") or "1001", from_name="",
        to_number=numbers.get("to_number") or "1002", did=numbers.get("did"),
        from_extension=None, to_extension=None, queue=None, agent=None, bridge_uuid=None,
        started_at=at, answered_at=at, ended_at=at, ring_seconds=0, talk_seconds=1, node="",
    )  # fmt: skip


@EXAMPLES
@given(
    numbers=st.lists(
        st.tuples(
            st.sampled_from(NUMBERS), st.sampled_from(NUMBERS), st.sampled_from((None, *NUMBERS))
        ),
        max_size=12,
    ),
    needle=st.sampled_from(("555", "0042", "+44", "100", "1001", "2", "%", "_0", "\\")),
    window=st.sampled_from((1, 3, 20_000)),  # the newest calls searched before the index
    page=st.integers(1, 4),
)
def test_a_number_search_finds_the_calls_whose_numbers_hold_it(
    conn: psycopg.Connection,
    numbers: list[tuple[str, str, str | None]],
    needle: str,
    window: int,
    page: int,
) -> None:
    conn.execute("TRUNCATE tenant_acme.calls, tenant_acme.calls_daily")
    calls = [
        _call(n, T0 + timedelta(minutes=n // 2), from_number=f, to_number=t, did=d)
        for n, (f, t, d) in enumerate(numbers)
    ]
    file_calls(conn, {"acme": calls})
    expected = sorted(
        (c for c in calls if any(needle in (v or "") for v in (c.from_number, c.to_number, c.did))),
        key=lambda c: (c.started_at, c.uuid),
        reverse=True,
    )
    found: list[str] = []
    after = None
    with _search_window(window):
        while True:  # every page, in order, each match once
            result = read_calls(conn, "acme", CallQuery(number=needle, limit=page, after=after))
            found += [c.uuid for c in result.calls]
            if result.next_after is None:
                break
            after = result.next_after
        assert read_calls(conn, "acme", CallQuery(number="1001\n1002")).calls == ()
    assert found == [c.uuid for c in expected]


@contextlib.contextmanager
def _search_window(size: int) -> Iterator[None]:
    saved = calls_module.SEARCH_WINDOW
    calls_module.SEARCH_WINDOW = size
    try:
        yield
    finally:
        calls_module.SEARCH_WINDOW = saved


def test_the_number_search_has_a_trigram_index_where_pg_trgm_exists(
    conn: psycopg.Connection,
) -> None:
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
    ).fetchone()
    if available is None:
        pytest.skip("this PostgreSQL has no pg_trgm: the search scans (tested below)")
    file_calls(conn, {"acme": [_call(n, T0, from_number=f"+1415{n:07d}") for n in range(20000)]})
    conn.execute("ANALYZE tenant_acme.calls")
    conn.execute("SET enable_seqscan = off")  # a small table: a scan costs as little
    plan = conn.execute(
        "EXPLAIN SELECT uuid FROM tenant_acme.calls WHERE leg = 'a' AND"
        " (from_number || E'\\n' || to_number || E'\\n' || coalesce(did, '')) LIKE '%5550042%'"
    ).fetchall()
    assert "calls_numbers_trgm" in "\n".join(line for (line,) in plan)


def test_without_pg_trgm_the_migration_and_the_search_still_work(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on the embedded pgserver (no contrib modules): the extension is asked for a name
    the server does not have, migration 7 goes on without the index, the search scans."""
    full = migrations_module.TENANT_MIGRATIONS
    rollup = next(m for m in full if "daily rollup" in m.name)
    body = rollup.body.as_string(None).replace("pg_trgm", "pg_trgm_absent")
    absent = migrations_module.Migration(rollup.version, rollup.name, psycopg.sql.SQL(body))  # type: ignore[arg-type]
    swapped = tuple(absent if m is rollup else m for m in full)
    monkeypatch.setattr(migrations_module, "TENANT_MIGRATIONS", swapped)
    with connect(pg_dsn) as conn:
        migrate(conn)
        with conn.transaction():
            create_tenant_schema(conn, "acme")
        index = conn.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'calls_numbers_trgm'"
        ).fetchone()
        assert index is None
        file_calls(conn, {"acme": [_call(1, T0, from_number="+14155550042")]})
        assert len(read_calls(conn, "acme", CallQuery(number="0042")).calls) == 1

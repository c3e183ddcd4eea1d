"""What apply writes, read_state gives back exactly; the end state does not depend on the path."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.plan import plan
from reconciler.store import connect, read_a1_hashes, read_registry, read_state
from specs_schema.models import TenantSpec
from tests.store.test_support import (
    assert_same_state,
    converge,
    desired_of,
    reset_store,
    schema_fingerprint,
)
from tests.strategies import tenant_sets, tenant_specs

PROPERTY = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


@PROPERTY
@given(specs=tenant_sets())
def test_read_state_gives_back_exactly_what_was_applied(
    conn: psycopg.Connection, specs: list[TenantSpec]
) -> None:
    reset_store(conn)
    desired = desired_of(specs)
    report = converge(conn, desired)
    assert report.ok, report.failed
    assert sorted(report.applied) == sorted(desired)
    assert_same_state(read_state(conn), desired)
    assert plan(desired, read_state(conn)).empty


@PROPERTY
@given(
    pair=st.tuples(
        tenant_specs(tenant_id="acme", did_prefix="415"),
        tenant_specs(tenant_id="acme", did_prefix="415"),
    )
)
def test_applying_a_then_b_equals_applying_b_fresh(
    conn: psycopg.Connection, pair: tuple[TenantSpec, TenantSpec]
) -> None:
    spec_a, spec_b = pair
    reset_store(conn)
    assert converge(conn, desired_of([spec_a])).ok
    hashes_a = read_a1_hashes(conn)
    report = converge(conn, desired_of([spec_b]))
    assert report.ok, report.failed
    via_a = read_state(conn)
    hashes_via_a = read_a1_hashes(conn)

    reset_store(conn)
    assert converge(conn, desired_of([spec_b])).ok
    fresh = read_state(conn)

    assert_same_state(via_a, fresh)
    assert plan(desired_of([spec_b]), via_a).empty
    # Credentials of extensions present in both specs survive the update (same domain).
    if spec_a.domain == spec_b.domain:
        kept = {n for (_, n) in hashes_a} & {e.number for e in spec_b.extensions}
        assert {n: hashes_via_a[("acme", n)] for n in kept} == {
            n: hashes_a[("acme", n)] for n in kept
        }
    assert set(hashes_via_a) == {("acme", e.number) for e in spec_b.extensions}


@settings(PROPERTY, max_examples=12)
@given(before=tenant_sets(min_size=2), after=tenant_sets(min_size=2), data=st.data())
def test_a_frozen_tenant_never_changes_whatever_else_does(
    conn: psycopg.Connection,
    before: list[TenantSpec],
    after: list[TenantSpec],
    data: st.DataObject,
) -> None:
    reset_store(conn)
    assert converge(conn, desired_of(before)).ok
    frozen = data.draw(st.sampled_from([s.id for s in before]))
    fingerprint = schema_fingerprint(conn, f"tenant_{frozen}")
    registry_row = read_registry(conn)[frozen]
    # Whatever the other specs became (and whether the frozen one is still listed):
    desired = {k: v for k, v in desired_of(after).items() if k != frozen}
    report = converge(conn, desired, frozen=[frozen])
    assert frozen not in report.applied and frozen not in report.failed
    assert schema_fingerprint(conn, f"tenant_{frozen}") == fingerprint
    assert read_registry(conn)[frozen] == registry_row


def test_read_state_holds_each_repeated_text_once(conn: psycopg.Connection) -> None:
    """The driver makes a string per value: the read shares equal ones (memory at 100k)."""
    reset_store(conn)
    specs = [
        TenantSpec.model_validate(
            {
                "id": tid,
                "domain": f"{tid}.example.net",
                "name": tid,
                "users": [{"email": f"u@{tid}.example.net", "name": "U", "extensions": ["1000"]}],
                "extensions": [{"number": "1000", "name": "Desk"}],
            }
        )
        for tid in ("acme", "beta")
    ]
    desired = desired_of(specs)
    assert converge(conn, desired).ok
    state = read_state(conn)
    assert state == {t: state[t] for t in desired}
    assert_same_state(state, desired)
    acme, beta = state["acme"].extensions["1000"], state["beta"].extensions["1000"]
    assert acme.number is beta.number and acme.calling_right is beta.calling_right
    assert state["acme"].users["u@acme.example.net"].extensions[0] is acme.number
    hashes = read_a1_hashes(conn)
    assert hashes[("acme", "1000")] != hashes[("beta", "1000")]
    (number_a,) = (n for t, n in hashes if t == "acme")
    (number_b,) = (n for t, n in hashes if t == "beta")
    assert number_a is number_b

"""A tenant's outbound settings, routes and calling rights survive the database exactly, and
changing a route or a limit is one update, never a rewrite of the tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from reconciler.core.model import Kind
from reconciler.core.plan import plan
from reconciler.store import connect, read_state
from specs_schema.models import TenantSpec
from tests.store.test_support import converge, desired_of, spec_data


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


def _spec(**outbound: Any) -> TenantSpec:
    data = spec_data("outco")
    did = data["inbound_numbers"][0]["number"]
    data["extensions"][0]["calling_right"] = "national"
    data["outbound"] = {
        "country": "GB",
        "caller_id": {"name": "Out Co", "number": did},
        "routes": [
            {"match": "national", "gateways": ["carrier1", "carrier2"]},
            {"match": "+4420", "gateways": ["carrier2"]},
        ],
        "emergency": {"caller_id": did, "numbers": ["999"]},
        **outbound,
    }
    return TenantSpec.model_validate(data)


def test_outbound_is_read_back_exactly_as_applied(conn: psycopg.Connection) -> None:
    desired = desired_of([_spec()])
    assert converge(conn, desired).ok
    stored = read_state(conn, tenants=["outco"])["outco"]
    assert stored.outbound == desired["outco"].outbound
    assert stored.outbound_routes == desired["outco"].outbound_routes
    assert stored.outbound["outbound"].emergency_numbers == ("999",)
    first = next(iter(stored.extensions.values()))
    assert first.calling_right == "national"
    assert plan(desired, read_state(conn)).empty

    changed = desired_of([_spec(limits={"max_concurrent": 9})])
    changes = plan(changed, read_state(conn))
    assert [(c.kind, c.action.name) for c in changes.changes] == [(Kind.OUTBOUND, "UPDATE")]
    assert converge(conn, changed).ok
    assert read_state(conn, tenants=["outco"])["outco"].outbound["outbound"].max_concurrent == 9

    data = _spec().model_dump(mode="json", exclude_none=True)
    data["outbound"] = None
    data["extensions"][0].pop("calling_right")
    without = desired_of([TenantSpec.model_validate(data)])
    assert converge(conn, without).ok
    assert read_state(conn, tenants=["outco"])["outco"].outbound == {}
    assert plan(without, read_state(conn)).empty

"""Helpers shared by the store tests (and the check that the shared strategies are valid)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from hypothesis import given, settings
from psycopg import sql

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import KIND_ORDER, Kind, TenantState
from reconciler.core.plan import plan
from reconciler.store import ApplyReport, apply_plan, read_state
from specs_schema.models import TenantSpec
from specs_schema.rules import cross_tenant_findings, tenant_findings
from tests.strategies import tenant_sets

STORE_SCHEMA_PATTERNS = ("pbx", "tenant\\_%", "archive\\_%")


def desired_of(specs: Iterable[TenantSpec]) -> dict[str, TenantState]:
    return {spec.id: tenant_state_from_spec(spec) for spec in specs}


def converge(
    conn: psycopg.Connection, desired: Mapping[str, TenantState], **kwargs: Any
) -> ApplyReport:
    """Plan against the database and apply: one reconcile pass."""
    frozen = kwargs.pop("frozen", ())
    changes = plan(desired, read_state(conn), frozen=frozen)
    return apply_plan(conn, changes, desired=desired, frozen=frozen, **kwargs)


def reset_store(conn: psycopg.Connection) -> None:
    """Drop every schema the store owns: a clean slate for the next hypothesis example."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE ANY(%s)",
        (list(STORE_SCHEMA_PATTERNS),),
    ).fetchall()
    for (schema,) in rows:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def store_schemas(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE ANY(%s) ORDER BY 1",
        (list(STORE_SCHEMA_PATTERNS),),
    ).fetchall()
    return [schema for (schema,) in rows]


def schema_fingerprint(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a schema with its xmin: any write changes it."""
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
    ).fetchall()
    out = {}
    for (table,) in tables:
        rows = conn.execute(
            sql.SQL("SELECT xmin::text, t::text FROM {}.{} t ORDER BY 2").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        ).fetchall()
        out[table] = rows
    return out


def assert_same_state(
    actual: Mapping[str, TenantState], expected: Mapping[str, TenantState]
) -> None:
    """Field-by-field comparison with a readable first difference."""
    assert sorted(actual) == sorted(expected)
    for tenant_id, want in expected.items():
        have = actual[tenant_id]
        assert have.tenant.as_dict() == want.tenant.as_dict(), tenant_id
        for kind in KIND_ORDER:
            if kind is Kind.TENANT:
                continue
            got = {k: r.as_dict() for k, r in have.records(kind).items()}
            exp = {k: r.as_dict() for k, r in want.records(kind).items()}
            assert got == exp, f"{tenant_id} {kind}"
    assert dict(actual) == dict(expected)


@settings(max_examples=100, deadline=None)
@given(tenant_sets(max_size=4))
def test_shared_strategies_draw_only_valid_tenants(specs: list[TenantSpec]) -> None:
    for spec in specs:
        assert tenant_findings(spec.model_dump(mode="json")) == []
    assert cross_tenant_findings({s.id: s.model_dump(mode="json") for s in specs}) == {}


def spec_data(
    tenant_id: str, *, did_prefix: str = "415", domain: str | None = None
) -> dict[str, Any]:
    """A small tenant touching every kind: edit the dict, then ``TenantSpec.model_validate``."""
    return {
        "id": tenant_id,
        "domain": domain or f"{tenant_id}.example.com",
        "name": f'{tenant_id.title()} & Co <"HQ">',
        "settings": {"extension_length": {"min": 3, "max": 4}},
        "extensions": [
            {"number": "101", "name": "Alice"},
            {"number": "102", "name": "Bob"},
            {"number": "103", "name": "Carol", "enabled": False},
        ],
        "users": [
            {"email": f"alice@{tenant_id}.example.com", "name": "Alice", "extensions": ["101"]},
            {"email": f"bob@{tenant_id}.example.com", "name": "Bob", "extensions": ["102", "103"]},
        ],
        "agents": [
            {"name": "alice", "extension": "101"},
            {"name": "bob", "contact": "sofia/gateway/out/+14155550123"},
        ],
        "queues": [
            {
                "name": "support",
                "number": "700",
                "tiers": [{"agent": "alice"}, {"agent": "bob", "level": 2}],
            }
        ],
        "inbound_numbers": [
            {"number": f"+1{did_prefix}5550100", "destination": {"queue": "support"}},
            {"number": f"+1{did_prefix}5550101", "destination": {"extension": "101"}},
        ],
    }


def make_spec(tenant_id: str, **kwargs: Any) -> TenantSpec:
    return TenantSpec.model_validate(spec_data(tenant_id, **kwargs))

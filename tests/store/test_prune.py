"""A tenant removed from git is orphaned (kept, not served); prune archives it, never drops."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from reconciler.core.plan import Action, plan
from reconciler.store import (
    TenantNotOrphaned,
    UnknownTenant,
    connect,
    prune_tenant,
    read_a1_hashes,
    read_history,
    read_registry,
    read_state,
)
from reconciler.store.migrations import TENANT_MIGRATIONS
from specs_schema.models import TenantSpec
from tests.store.test_support import converge, desired_of, make_spec, spec_data, store_schemas

WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


@pytest.fixture
def orphaned(conn: psycopg.Connection) -> psycopg.Connection:
    """acme stays in git; beta's file was removed after it was applied."""
    both = desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])
    assert converge(conn, both).ok
    assert converge(conn, desired_of([make_spec("acme")])).ok
    return conn


def _row_count(conn: psycopg.Connection, schema: str, table: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_tenant_removed_from_git_is_orphaned_with_its_data_kept(
    orphaned: psycopg.Connection,
) -> None:
    state = read_state(orphaned)
    assert state["beta"].tenant.status == "orphaned"
    assert not state["beta"].tenant.served
    assert len(state["beta"].extensions) == 3
    assert ("beta", "101") in read_a1_hashes(orphaned)
    assert plan(desired_of([make_spec("acme")]), state).empty


def test_an_orphan_that_returns_to_git_is_active_again_with_its_credentials(
    orphaned: psycopg.Connection,
) -> None:
    hashes = read_a1_hashes(orphaned, tenants=["beta"])
    both = desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])
    changes = plan(both, read_state(orphaned))
    assert [(c.kind.value, c.action) for c in changes.changes] == [("tenant", Action.UPDATE)]
    assert converge(orphaned, both).ok
    assert read_state(orphaned)["beta"].tenant.status == "active"
    assert read_a1_hashes(orphaned, tenants=["beta"]) == hashes


def test_prune_renames_the_schema_and_forgets_the_tenant(orphaned: psycopg.Connection) -> None:
    archive = prune_tenant(orphaned, "beta", host="ops", now=WHEN)
    assert archive == "archive_beta_20250102T030405Z"
    assert store_schemas(orphaned) == [archive, "pbx", "tenant_acme"]
    assert _row_count(orphaned, archive, "extensions") == 3
    assert _row_count(orphaned, archive, "sip_credentials") == 3
    assert "beta" not in read_registry(orphaned)
    assert "beta" not in read_state(orphaned)
    assert orphaned.execute(
        "SELECT count(*) FROM pbx.did_index WHERE tenant_id = 'beta'"
    ).fetchone() == (0,)
    assert orphaned.execute(
        "SELECT count(*) FROM pbx.schema_migrations WHERE schema_name = %s", (archive,)
    ).fetchone() == (len(TENANT_MIGRATIONS),)  # every tenant migration (numbers may skip)
    entry = read_history(orphaned, tenant_id="beta")[0]
    assert (entry.action, entry.result, entry.host) == ("prune", "applied", "ops")
    assert entry.changes[0]["archived_schema"] == archive
    assert entry.changes[0]["released_inbound_numbers"] == ["+15125550100", "+15125550101"]
    assert len(read_history(orphaned, tenant_id="beta")) == 3  # the applies are kept


def test_pruned_numbers_and_ids_are_free_again(orphaned: psycopg.Connection) -> None:
    prune_tenant(orphaned, "beta", now=WHEN)
    data = spec_data("acme")
    data["inbound_numbers"].append({"number": "+15125550100", "destination": {"extension": "102"}})
    again = desired_of([TenantSpec.model_validate(data), make_spec("beta", did_prefix="513")])
    assert converge(orphaned, again).ok
    assert "tenant_beta" in store_schemas(orphaned)


@pytest.mark.parametrize("status", ["active", "suspended"])
def test_prune_refuses_a_tenant_that_is_still_in_git(conn: psycopg.Connection, status: str) -> None:
    data = spec_data("acme")
    data["status"] = status
    assert converge(conn, desired_of([TenantSpec.model_validate(data)])).ok
    with pytest.raises(TenantNotOrphaned) as excinfo:
        prune_tenant(conn, "acme")
    assert excinfo.value.status == status
    assert "tenant_acme" in store_schemas(conn)


def test_prune_of_an_unknown_tenant_is_an_error(conn: psycopg.Connection) -> None:
    with pytest.raises(UnknownTenant):
        prune_tenant(conn, "ghost")
    assert converge(conn, desired_of([make_spec("acme")])).ok
    with pytest.raises(UnknownTenant):
        prune_tenant(conn, "ghost")

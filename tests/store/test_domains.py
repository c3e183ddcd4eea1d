"""Retired domains: what a tenant once held stays the reconciler's to clean up."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.plan import plan
from reconciler.store import PostgresStore, apply_plan, connect, prune_tenant, read_state
from reconciler.store.domains import read_retired_domains
from tests.store.test_support import converge, desired_of, make_spec


def test_a_domain_change_and_a_prune_retire_the_domain(pg_dsn: str) -> None:
    with connect(pg_dsn) as conn:
        desired = desired_of([make_spec("alpha")])
        converge(conn, desired)
        old = desired["alpha"].tenant.domain
        moved = {
            "alpha": replace(
                desired["alpha"], tenant=replace(desired["alpha"].tenant, domain="new.example.net")
            )
        }
        assert apply_plan(conn, plan(moved, read_state(conn)), desired=moved).ok
        assert read_retired_domains(conn) == {old}
        assert apply_plan(conn, plan({}, read_state(conn)), desired={}).ok  # orphaned
        prune_tenant(conn, "alpha")
        assert read_retired_domains(conn) == {old, "new.example.net"}
    store = PostgresStore(pg_dsn)
    assert store.read_retired_domains() == {old, "new.example.net"}
    store.close()

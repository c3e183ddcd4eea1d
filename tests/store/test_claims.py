"""Claims across tenants on a real database: swaps converge in one pass, a tenant id rename
keeps the domain served and every password."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from reconciler.core.model import InboundNumber, Tenant, TenantState
from reconciler.core.plan import Plan, plan
from reconciler.store import apply_plan, connect, read_a1_hashes, read_history, read_state
from reconciler.store.claims import claim_groups
from tests.store.test_support import converge, desired_of, make_spec


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


def did(number: str, queue: str = "support") -> dict[str, object]:
    return {"number": number, "destination": {"queue": queue}}


def with_dids(state: TenantState, *numbers: str) -> TenantState:
    dids = {
        n: InboundNumber(number=n, destination_kind="queue", destination=next(iter(state.queues)))
        for n in numbers
    }
    return replace(state, inbound_numbers=dids)


def two_tenants() -> dict[str, TenantState]:
    """Two tenants of the shared spec maker, without its (identical) inbound numbers."""
    return {t: with_dids(s) for t, s in desired_of([make_spec("alpha"), make_spec("beta")]).items()}


def test_claim_groups_join_tenants_passing_a_claim_and_nothing_else() -> None:
    base = two_tenants()
    a, b = with_dids(base["alpha"], "+14155550001"), with_dids(base["beta"], "+14155550002")
    swapped = {"alpha": with_dids(a, "+14155550002"), "beta": with_dids(b, "+14155550001")}
    assert claim_groups(plan(swapped, {"alpha": a, "beta": b})) == [("alpha", "beta")]
    apart = {"alpha": with_dids(a, "+14155550009"), "beta": with_dids(b, "+14155550008")}
    assert claim_groups(plan(apart, {"alpha": a, "beta": b})) == [("alpha",), ("beta",)]
    assert claim_groups(Plan()) == []


def test_two_tenants_swapping_their_dids_converge_in_one_pass(conn: psycopg.Connection) -> None:
    base = two_tenants()
    first = {
        "alpha": with_dids(base["alpha"], "+14155550001"),
        "beta": with_dids(base["beta"], "+14155550002"),
    }
    converge(conn, first)
    swapped = {
        "alpha": with_dids(base["alpha"], "+14155550002"),
        "beta": with_dids(base["beta"], "+14155550001"),
    }
    report = apply_plan(conn, plan(swapped, read_state(conn)), desired=swapped)
    assert report.ok and set(report.applied) == {"alpha", "beta"}
    assert plan(swapped, read_state(conn)).empty
    owners = dict(conn.execute("SELECT number, tenant_id FROM pbx.did_index").fetchall())
    assert owners == {"+14155550002": "alpha", "+14155550001": "beta"}


def test_two_tenants_swapping_their_domains_converge_and_rehash(conn: psycopg.Connection) -> None:
    base = two_tenants()
    converge(conn, base)
    hashes = read_a1_hashes(conn)
    da, db = base["alpha"].tenant.domain, base["beta"].tenant.domain
    swapped = {
        "alpha": replace(base["alpha"], tenant=replace(base["alpha"].tenant, domain=db)),
        "beta": replace(base["beta"], tenant=replace(base["beta"].tenant, domain=da)),
    }
    report = apply_plan(conn, plan(swapped, read_state(conn)), desired=swapped)
    assert report.ok, report.failed
    assert plan(swapped, read_state(conn)).empty
    after = read_a1_hashes(conn)
    assert all(after[k] != hashes[k] for k in hashes), "a1-hashes follow the realm"


def test_a_did_taken_by_an_unrelated_tenant_still_fails_with_a_clear_message(
    conn: psycopg.Connection,
) -> None:
    base = two_tenants()
    converge(conn, {"alpha": with_dids(base["alpha"], "+14155550001")})
    wanted = {"beta": with_dids(base["beta"], "+14155550001")}
    report = apply_plan(conn, plan(wanted, read_state(conn, tenants=["beta"])), desired=wanted)
    assert "beta" in report.failed
    assert "+14155550001 (tenant alpha)" in str(report.failed["beta"])


def test_a_tenant_id_rename_keeps_domain_dids_and_passwords(conn: psycopg.Connection) -> None:
    base = {"alpha": with_dids(two_tenants()["alpha"], "+14155550001")}
    converge(conn, base)
    hashes = {number: h for (_, number), h in read_a1_hashes(conn).items()}
    passwords = dict(conn.execute("SELECT extension, password FROM tenant_alpha.sip_credentials"))
    renamed = {"omega": replace(base["alpha"], tenant=replace(base["alpha"].tenant, id="omega"))}
    changes = plan(renamed, read_state(conn))
    assert changes.renames() == {"omega": "alpha"}
    report = apply_plan(conn, changes, desired=renamed)
    assert report.ok and report.applied == ("omega",)
    assert set(read_state(conn)) == {"omega"}
    assert {n: h for (_, n), h in read_a1_hashes(conn).items()} == hashes
    assert (
        dict(conn.execute("SELECT extension, password FROM tenant_omega.sip_credentials"))
        == passwords
    )
    assert conn.execute("SELECT tenant_id FROM pbx.did_index").fetchall() == [("omega",)]
    assert plan(renamed, read_state(conn)).empty
    assert read_history(conn, tenant_id="omega")[0].result == "applied"
    assert isinstance(read_state(conn)["omega"].tenant, Tenant)

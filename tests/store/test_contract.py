"""One contract, two stores: the same behaviour asked of ``PostgresStore`` (on a fresh real
database per test) and of ``MemoryStore``. A pipeline test that passes on the memory store
proves something about production only as far as this suite holds for both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import Extension, PlatformState, State
from reconciler.core.plan import plan, plan_platform
from reconciler.core.revision import GitRevision
from reconciler.store import (
    ApplyReport,
    PostgresStore,
    StalePlan,
    Store,
    TenantApplyError,
)
from reconciler.store.memory import MemoryStore
from specs_schema.load import load_specs
from tests.conftest import EXAMPLE_TENANTS

R1 = GitRevision("1" * 40, dirty=False)
R2 = GitRevision("2" * 40, dirty=True)


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    postgres = PostgresStore(request.getfixturevalue("pg_dsn"))
    postgres.migrate()
    try:
        yield postgres
    finally:
        postgres.close()


@pytest.fixture(scope="module")
def desired() -> State:
    specs = load_specs([EXAMPLE_TENANTS])
    assert specs.ok, specs.errors
    return {tid: tenant_state_from_spec(loaded.spec) for tid, loaded in specs.tenants.items()}


def converge(
    store: Store, desired: State, revision: GitRevision | None = R1, **kw: object
) -> ApplyReport:
    """One pass: plan against what the store holds and apply."""
    frozen = tuple(kw.pop("frozen", ()))  # type: ignore[call-overload]
    changes = plan(desired, store.read_state(), frozen=frozen)
    return store.apply(changes, desired=desired, revision=revision, digests={}, frozen=frozen)


def test_what_is_applied_reads_back_and_the_next_plan_is_empty(
    store: Store, desired: State
) -> None:
    report = converge(store, desired)
    assert report.ok, report.failed
    assert sorted(report.applied) == sorted(desired)
    assert store.read_state() == desired
    assert plan(desired, store.read_state()).empty
    assert store.read_state(["acme"]) == {"acme": desired["acme"]}


def test_a_plan_already_applied_is_unchanged_and_a_stale_one_fails_its_tenant(
    store: Store, desired: State
) -> None:
    acme = {"acme": desired["acme"]}
    first = plan(acme, store.read_state())
    assert store.apply(first, desired=acme, revision=R1, digests={}, frozen=()).applied == ("acme",)
    again = store.apply(first, desired=acme, revision=R1, digests={}, frozen=())
    assert again.unchanged == ("acme",) and not again.applied

    renamed = replace(desired["acme"].tenant, name="Acme Renamed")
    edited = {"acme": replace(desired["acme"], tenant=renamed)}
    stale = store.apply(first, desired=edited, revision=R1, digests={}, frozen=())
    assert isinstance(stale.failed["acme"], StalePlan)
    assert store.read_state() == acme


def test_a_domain_belongs_to_one_tenant(store: Store, desired: State) -> None:
    converge(store, {"acme": desired["acme"]})
    taker = replace(desired["globex"].tenant, domain=desired["acme"].tenant.domain)
    report = converge(store, {**desired, "globex": replace(desired["globex"], tenant=taker)})
    assert isinstance(report.failed["globex"], TenantApplyError)
    assert "globex" not in store.read_state()
    assert store.read_state()["acme"] == desired["acme"]


def test_every_extension_gets_credentials_rehashed_when_its_domain_changes(
    store: Store, desired: State
) -> None:
    converge(store, desired)
    hashes = store.read_a1_hashes()
    wanted = {(tid, number) for tid, state in desired.items() for number in state.extensions}
    assert set(hashes) == wanted
    assert set(store.read_a1_hashes(["acme"])) == {k for k in wanted if k[0] == "acme"}

    old_domain = desired["acme"].tenant.domain
    moved = replace(desired["acme"].tenant, domain="acme-new.example.com")
    converge(store, {**desired, "acme": replace(desired["acme"], tenant=moved)})
    after = store.read_a1_hashes(["acme"])
    assert set(after) == {k for k in wanted if k[0] == "acme"}
    assert all(after[key] != hashes[key] for key in after)
    assert old_domain in store.read_retired_domains()


def test_an_extension_deleted_and_added_back_keeps_its_password(
    store: Store, desired: State
) -> None:
    """Within the grace (the PostgreSQL store's default; the memory store has no expiry) a
    phone that still holds the old password registers again."""
    acme = desired["acme"]
    spare = Extension("1099", "Spare desk")
    with_spare = {"acme": replace(acme, extensions={**acme.extensions, "1099": spare})}
    converge(store, with_spare)
    before = store.read_a1_hashes(["acme"])[("acme", "1099")]
    converge(store, {"acme": acme})
    assert ("acme", "1099") not in store.read_a1_hashes()
    converge(store, with_spare)
    assert store.read_a1_hashes(["acme"])[("acme", "1099")] == before


def test_the_registry_records_the_applied_and_the_attempted_revision(
    store: Store, desired: State
) -> None:
    assert store.read_registry() == {}
    converge(store, desired, R1)
    entry = store.read_registry()["acme"]
    assert (entry.domain, entry.status) == (desired["acme"].tenant.domain, "active")
    assert (entry.applied_revision, entry.applied_dirty) == (R1.commit, False)

    store.record_attempt(["acme"], R2)
    entry = store.read_registry()["acme"]
    assert (entry.attempted_revision, entry.attempted_dirty) == (R2.commit, True)
    assert entry.applied_revision == R1.commit
    assert store.read_registry()["globex"].attempted_revision == R1.commit


def test_a_frozen_tenant_keeps_its_state_and_its_applied_revision(
    store: Store, desired: State
) -> None:
    converge(store, desired, R1)
    renamed = replace(desired["acme"].tenant, name="Acme Renamed")
    edited = {**desired, "acme": replace(desired["acme"], tenant=renamed)}
    report = converge(store, edited, R2, frozen=["acme"])
    assert report.ok and "acme" not in report.applied
    assert store.read_state()["acme"] == desired["acme"]
    registry = store.read_registry()
    assert registry["acme"].applied_revision == R1.commit
    assert registry["globex"].applied_revision == R2.commit


def test_spec_status_holds_exactly_the_invalid_tenants_and_keeps_since(store: Store) -> None:
    assert store.read_spec_status() == {}
    store.record_spec_status({"acme": ("acme.yaml", ["acme.yaml:3:1: domain: bad"])})
    first = store.read_spec_status()["acme"]
    assert (first.spec_file, first.errors) == ("acme.yaml", ("acme.yaml:3:1: domain: bad",))
    assert first.since is not None
    store.record_spec_status(
        {
            "acme": ("acme.yaml", ["acme.yaml:3:1: domain: bad"]),
            "globex": (None, ["globex: no file"]),
        }
    )
    status = store.read_spec_status()
    assert set(status) == {"acme", "globex"} and status["acme"].since == first.since
    store.record_spec_status({})
    assert store.read_spec_status() == {}


def _apply_admins(store: Store, admins: dict[str, str]) -> str:
    """Plan the platform from the store's admins to ``admins`` and apply it; the result."""
    desired = PlatformState.of_admins(admins)
    changes = plan_platform(desired, PlatformState.of_admins(store.read_platform_admins()))
    return store.apply_platform(changes, desired=desired, revision=None).result


def test_platform_admins_converge_to_exactly_the_declared_ones(store: Store) -> None:
    assert store.read_platform_admins() == {}
    assert _apply_admins(store, {"Ops@PBX.example.net": "Ops"}) == "applied"
    assert store.read_platform_admins() == {"ops@pbx.example.net": "Ops"}
    assert _apply_admins(store, {"ops@pbx.example.net": "Ops"}) == "none"
    assert _apply_admins(store, {"new@pbx.example.net": "New"}) == "applied"
    assert store.read_platform_admins() == {"new@pbx.example.net": "New"}

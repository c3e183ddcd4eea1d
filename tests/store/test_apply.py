"""Applying a plan: one transaction per tenant, isolation, locks, history and registry."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from reconciler.core.model import Kind
from reconciler.core.plan import Action, plan
from reconciler.core.plan_text import change_dict
from reconciler.core.revision import GitRevision
from reconciler.store import (
    APPLIED_CHANNEL,
    StalePlan,
    StoreError,
    apply_plan,
    connect,
    migrate,
    open_pool,
    read_history,
    read_platform_admins,
    read_registry,
    read_state,
    sync_platform_admins,
)
from reconciler.store import writer as writer_module
from reconciler.store.locks import lock_tenant
from reconciler.store.migrations import TENANT_MIGRATIONS
from specs_schema.models import TenantSpec
from tests.store.test_support import (
    assert_same_state,
    converge,
    desired_of,
    make_spec,
    schema_fingerprint,
    spec_data,
    store_schemas,
)

REV1 = GitRevision("1" * 40, dirty=False)
REV2 = GitRevision("2" * 40, dirty=True)
STORE_SOURCES = sorted((Path(__file__).resolve().parents[2] / "reconciler" / "store").glob("*.py"))


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


def _changed(tenant_id: str) -> TenantSpec:
    """``make_spec`` with a change of every kind: create, update and delete."""
    data = spec_data(tenant_id)
    data["name"] = "Renamed"
    data["extensions"][0]["name"] = "Alice (desk)"
    data["extensions"].pop(2)  # 103 deleted: bob's link goes first
    data["extensions"].append({"number": "104", "name": "Dave"})
    data["users"][1]["extensions"] = ["102", "104"]
    data["agents"][0]["extension"] = "104"
    data["queues"][0]["tiers"].pop(1)
    data["queues"].append({"name": "sales", "number": "701", "tiers": [{"agent": "bob"}]})
    data["inbound_numbers"][0]["destination"] = {"queue": "sales"}
    data["inbound_numbers"].pop(1)
    return TenantSpec.model_validate(data)


def test_a_change_of_every_kind_lands_in_plan_order_without_foreign_key_errors(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    desired = desired_of([_changed("acme")])
    changes = plan(desired, read_state(conn))
    assert {c.action for c in changes.changes} == set(Action)
    report = apply_plan(conn, changes, desired=desired)
    assert report.applied == ("acme",), report.failed
    assert_same_state(read_state(conn), desired)


def test_a_frozen_tenant_is_left_exactly_as_it_is(conn: psycopg.Connection) -> None:
    assert converge(
        conn, desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")]), revision=REV1
    ).ok
    before = schema_fingerprint(conn, "tenant_beta")
    registry_before = read_registry(conn)["beta"]
    # beta's file became invalid: it is frozen (and absent from the desired state).
    desired = desired_of([_changed("acme")])
    report = converge(conn, desired, frozen=["beta"], revision=REV2)
    assert report.applied == ("acme",)
    assert schema_fingerprint(conn, "tenant_beta") == before
    assert read_registry(conn)["beta"] == registry_before
    assert read_state(conn)["beta"].tenant.status == "active"


def _fail_on_queues(monkeypatch: pytest.MonkeyPatch, tenant_id: str) -> None:
    original = writer_module.TenantWriter._write

    def failing(
        self: writer_module.TenantWriter, kind: Kind, action: Action, changes: list
    ) -> None:
        if self.tenant_id == tenant_id and kind is Kind.QUEUE:
            raise psycopg.errors.RaiseException("injected failure")
        original(self, kind, action, changes)

    monkeypatch.setattr(writer_module.TenantWriter, "_write", failing)


def test_a_failing_new_tenant_rolls_back_alone_and_the_next_one_proceeds(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_on_queues(monkeypatch, "beta")
    specs = [
        make_spec("acme"),
        make_spec("beta", did_prefix="512"),
        make_spec("gamma", did_prefix="617"),
    ]
    report = converge(conn, desired_of(specs), revision=REV1)
    assert report.applied == ("acme", "gamma")
    assert set(report.failed) == {"beta"}
    assert report.failed["beta"].tenant_id == "beta"
    assert "injected failure" in str(report.failed["beta"])
    assert "tenant_beta" not in store_schemas(conn)  # schema creation rolled back too
    assert sorted(read_state(conn)) == ["acme", "gamma"]
    assert conn.execute(
        "SELECT count(*) FROM pbx.did_index WHERE tenant_id = 'beta'"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM pbx.schema_migrations WHERE schema_name = 'tenant_beta'"
    ).fetchone() == (0,)
    (failure,) = read_history(conn, tenant_id="beta")
    assert (failure.result, failure.revision) == ("failed", REV1.commit)
    assert "injected failure" in (failure.error or "")


def test_a_failing_update_leaves_the_tenant_at_its_previous_state(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert converge(conn, desired_of([make_spec("acme")]), revision=REV1).ok
    before = schema_fingerprint(conn, "tenant_acme")
    state_before = read_state(conn)
    _fail_on_queues(monkeypatch, "acme")
    report = converge(conn, desired_of([_changed("acme")]), revision=REV2)
    assert set(report.failed) == {"acme"}
    assert schema_fingerprint(conn, "tenant_acme") == before
    assert read_state(conn) == state_before
    entry = read_registry(conn)["acme"]
    assert (entry.applied_revision, entry.attempted_revision) == (REV1.commit, REV2.commit)
    assert entry.attempted_dirty is True
    assert entry.last_result == "failed"
    assert "injected failure" in (entry.last_error or "")


def test_an_inbound_number_belongs_to_one_tenant_only(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    thief = make_spec("beta")  # same did_prefix: claims acme's numbers
    report = converge(conn, desired_of([make_spec("acme"), thief]))
    assert set(report.failed) == {"beta"}
    assert "+14155550100 (tenant acme)" in report.failed["beta"].message
    assert "tenant_beta" not in store_schemas(conn)
    # The database enforces it too, whatever the code in front of it does.
    conn.execute(
        "INSERT INTO pbx.tenants (id, schema_name, domain, name, status, extension_min, "
        "extension_max, call_timeout, feature_available, feature_on_break, feature_logged_out) "
        "VALUES ('beta', 'tenant_beta', 'beta.example.com', 'B', 'active', 2, 6, 30, "
        "'*22', '*23', '*24')"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO pbx.did_index VALUES ('+14155550100', 'beta')")


def test_a_domain_belongs_to_one_tenant_only(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    twin = make_spec("beta", did_prefix="512", domain="ACME.example.com")
    report = converge(conn, desired_of([make_spec("acme"), twin]))
    assert set(report.failed) == {"beta"}
    assert "already used by tenant acme" in report.failed["beta"].message
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO pbx.tenants (id, schema_name, domain, name, status, extension_min, "
            "extension_max, call_timeout, feature_available, feature_on_break, "
            "feature_logged_out) VALUES ('beta', 'tenant_beta', 'acme.example.com', 'B', "
            "'active', 2, 6, 30, '*22', '*23', '*24')"
        )


def test_applying_one_tenant_touches_no_other_tenant_schema(conn: psycopg.Connection) -> None:
    others = [make_spec("beta", did_prefix="512"), make_spec("gamma", did_prefix="617")]
    assert converge(conn, desired_of([make_spec("acme"), *others]), revision=REV1).ok
    before = {s: schema_fingerprint(conn, s) for s in ("tenant_beta", "tenant_gamma")}
    registry_before = {t: e for t, e in read_registry(conn).items() if t != "acme"}
    report = converge(conn, desired_of([_changed("acme"), *others]), revision=REV1)
    assert report.applied == ("acme",)
    assert {s: schema_fingerprint(conn, s) for s in before} == before
    assert {t: e for t, e in read_registry(conn).items() if t != "acme"} == registry_before


def test_an_apply_waits_while_another_holds_the_tenant_lock(pg_dsn: str) -> None:
    desired = desired_of([make_spec("acme")])
    changes = plan(desired, {})
    outcome: list[object] = []
    with connect(pg_dsn) as holder, connect(pg_dsn) as applier:
        apply_plan(applier, plan({}, {}), desired={})  # migrate up front
        with holder.transaction():
            lock_tenant(holder, "acme")
            worker = threading.Thread(
                target=lambda: outcome.append(apply_plan(applier, changes, desired=desired))
            )
            worker.start()
            time.sleep(0.5)
            assert worker.is_alive()
            assert read_state(holder) == {}
        worker.join(timeout=30)
        assert not worker.is_alive()
        (report,) = outcome
        assert report.applied == ("acme",)  # type: ignore[attr-defined]


def test_two_daemons_applying_the_same_plan_apply_it_once(pg_dsn: str) -> None:
    desired = desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])
    changes = plan(desired, {})
    start = threading.Barrier(2)
    reports = []

    def daemon() -> None:
        with connect(pg_dsn) as conn:
            start.wait()
            reports.append(apply_plan(conn, changes, desired=desired))

    threads = [threading.Thread(target=daemon) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r.ok for r in reports), [r.failed for r in reports]
    applied = sorted(t for r in reports for t in r.applied)
    unchanged = sorted(t for r in reports for t in r.unchanged)
    assert applied == ["acme", "beta"]
    assert unchanged == ["acme", "beta"]
    with connect(pg_dsn) as conn:
        assert_same_state(read_state(conn), desired)
        assert len(read_history(conn)) == 2


def test_a_plan_made_before_someone_else_changed_the_tenant_is_refused(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    old_actual = read_state(conn)
    assert converge(conn, desired_of([_changed("acme")])).ok
    wanted = spec_data("acme")
    wanted["name"] = "Yet another name"
    desired = desired_of([TenantSpec.model_validate(wanted)])
    stale = plan(desired, old_actual)
    report = apply_plan(conn, stale, desired=desired)
    assert isinstance(report.failed["acme"], StalePlan)
    assert_same_state(read_state(conn), desired_of([_changed("acme")]))


def test_followers_are_notified_after_each_tenant_commits(pg_dsn: str) -> None:
    with connect(pg_dsn) as listener, connect(pg_dsn) as conn:
        listener.execute(f"LISTEN {APPLIED_CHANNEL}")
        assert converge(
            conn, desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])
        ).ok
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert payloads == ["acme", "beta"]


def test_the_registry_keeps_digest_and_last_applied_and_attempted_revisions(
    conn: psycopg.Connection,
) -> None:
    desired = desired_of([make_spec("acme")])
    assert converge(conn, desired, revision=REV1, digests={"acme": "d1"}).ok
    entry = read_registry(conn)["acme"]
    assert (entry.spec_digest, entry.applied_revision, entry.applied_dirty) == (
        "d1",
        REV1.commit,
        False,
    )
    assert (entry.status, entry.schema_name, entry.last_result) == (
        "active",
        "tenant_acme",
        "applied",
    )
    # Nothing to change at a new revision: still recorded as applied there.
    report = converge(conn, desired, revision=REV2, digests={"acme": "d2"})
    assert report.applied == () and report.ok
    entry = read_registry(conn)["acme"]
    assert (entry.spec_digest, entry.applied_revision, entry.applied_dirty) == (
        "d2",
        REV2.commit,
        True,
    )
    assert len(read_history(conn, tenant_id="acme")) == 1  # no-op passes write no history


def test_each_apply_leaves_a_history_row_with_its_changes(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")]), revision=REV1, host="node-1").ok
    (row,) = read_history(conn)
    assert (row.tenant_id, row.action, row.result, row.host) == (
        "acme",
        "apply",
        "applied",
        "node-1",
    )
    assert (row.revision, row.dirty, row.error) == (REV1.commit, False, None)
    changes = plan(desired_of([make_spec("acme")]), {}).changes
    assert row.changes == [change_dict(c) for c in changes]


@pytest.mark.parametrize("source", STORE_SOURCES, ids=lambda p: p.name)
def test_sql_is_never_built_from_strings(source: Path) -> None:
    """Every statement is a literal or a psycopg.sql composition: no f-string, no ``+``
    or ``%`` on text, no ``str.format`` reaching ``execute``/``executemany``/``copy``."""
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in {"execute", "executemany", "copy"} and node.args:
            query = node.args[0]
            assert not isinstance(query, (ast.JoinedStr, ast.BinOp)), ast.unparse(query)
            if isinstance(query, ast.Call) and isinstance(query.func, ast.Attribute):
                assert not isinstance(query.func.value, ast.Constant), ast.unparse(query)
        if name == "SQL":
            assert node.args and isinstance(node.args[0], ast.Constant), ast.unparse(node)


def test_a_pool_applies_tenants_in_parallel_each_in_its_own_transaction(pg_dsn: str) -> None:
    specs = [
        make_spec(t, did_prefix=p) for t, p in (("acme", "415"), ("beta", "512"), ("gamma", "617"))
    ]
    desired = desired_of(specs)
    pool = open_pool(pg_dsn, min_size=2, max_size=2)
    try:
        with pool.connection() as conn:
            changes = plan(desired, read_state(conn))
        report = apply_plan(pool, changes, desired=desired, workers=2)
    finally:
        pool.close()
    assert sorted(report.applied) == ["acme", "beta", "gamma"] and report.ok
    with connect(pg_dsn) as conn:
        assert_same_state(read_state(conn), desired)


def test_the_store_refuses_a_connection_inside_a_caller_transaction(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(StoreError):
            read_state(conn)
        with pytest.raises(StoreError):
            apply_plan(conn, plan({}, {}), desired={})


def test_platform_admins_follow_the_platform_file(conn: psycopg.Connection) -> None:
    assert read_platform_admins(conn) == {}
    migrate(conn)
    assert sync_platform_admins(conn, {"Ops@pbx.example.net": "Ops", "b@x.io": "B"})
    assert read_platform_admins(conn) == {"ops@pbx.example.net": "Ops", "b@x.io": "B"}
    assert not sync_platform_admins(conn, {"ops@pbx.example.net": "Ops", "b@x.io": "B"})
    assert sync_platform_admins(conn, {"ops@pbx.example.net": "Operator"})
    assert read_platform_admins(conn) == {"ops@pbx.example.net": "Operator"}


def _shape(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[str, ...]]]:
    """A schema's tables, columns, constraints and indexes, its own name blanked out."""
    queries = {
        "columns": """
            SELECT table_name, column_name, data_type, coalesce(character_maximum_length::text, ''),
                   is_nullable, coalesce(column_default, '')
            FROM information_schema.columns WHERE table_schema = %(s)s ORDER BY 1, 2""",
        "constraints": """
            SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid),
                   c.condeferrable::text
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = %(s)s ORDER BY 1, 2""",
        "indexes": """
            SELECT tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname = %(s)s ORDER BY 1, 2""",
    }
    return {
        name: [
            tuple(str(v).replace(schema, "SCHEMA") for v in row)
            for row in conn.execute(query, {"s": schema}).fetchall()
        ]
        for name, query in queries.items()
    }


def test_a_new_tenant_schema_is_the_one_its_migrations_build(conn: psycopg.Connection) -> None:
    """A new schema is created in one multi-statement round trip; it must not drift from
    replaying the migrations one by one (the way existing schemas got theirs)."""
    assert converge(conn, desired_of([make_spec("acme")])).ok
    with conn.transaction():  # the reference: one migration at a time, as upgrades do
        conn.execute("CREATE SCHEMA tenant_reference")
        for m in TENANT_MIGRATIONS:
            conn.execute(m.body.format(schema=sql.Identifier("tenant_reference")))
    built = _shape(conn, "tenant_acme")
    assert built == _shape(conn, "tenant_reference")
    assert built["columns"] and built["constraints"] and built["indexes"]
    recorded = conn.execute(
        "SELECT version, name FROM pbx.schema_migrations WHERE schema_name = 'tenant_acme' "
        "ORDER BY 1"
    ).fetchall()
    assert recorded == [(m.version, m.name) for m in TENANT_MIGRATIONS]

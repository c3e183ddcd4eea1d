"""The platform scope on PostgreSQL: its own transaction, isolated from the tenants' both
ways, recorded in the apply history under ``_platform``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from reconciler.core.model import PLATFORM, PlatformState
from reconciler.core.plan import Change, plan_platform
from reconciler.reconcile import Reconciler
from reconciler.store import (
    APPLIED_CHANNEL,
    PostgresStore,
    apply_platform,
    connect,
    migrate,
    read_history,
    read_platform,
    read_platform_admins,
    read_state,
)
from reconciler.store import admins as admins_module
from reconciler.store import writer as writer_module
from tests.conftest import EXAMPLE_TENANTS


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    directory = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, directory)
    return directory


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_dsn)
    try:
        yield store
    finally:
        store.close()


def _fail_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's write fails in the database after its first statement ran."""
    write = admins_module._write

    def failing(conn: psycopg.Connection, changes: Sequence[Change]) -> None:
        write(conn, changes)
        conn.execute("SELECT 1 / 0")

    monkeypatch.setattr(admins_module, "_write", failing)


def test_a_failing_platform_apply_rolls_back_alone_and_the_tenants_apply(
    store: PostgresStore, tenants: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_platform(monkeypatch)
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert set(outcome.report.applied) == {"acme", "globex", "initech"}
    assert outcome.platform.result == "failed" and not outcome.ok
    assert "division by zero" in str(outcome.platform.error)
    conn = store.connection
    assert read_platform_admins(conn) == {}, "the platform's transaction rolled back"
    assert sorted(read_state(conn)) == ["acme", "globex", "initech"]
    (failure,) = read_history(conn, tenant_id=PLATFORM)
    assert failure.result == "failed" and "division by zero" in (failure.error or "")
    assert {c["scope"] for c in failure.changes} == {"platform"}
    assert len(failure.changes) == 5  # two super admins, three gateways

    monkeypatch.undo()
    again = Reconciler(tenants, store).run_pass(full=True)
    assert again.ok and again.platform.result == "applied"
    assert set(read_platform_admins(conn)) == {"ops@pbx.example.net", "oncall@pbx.example.net"}


def test_a_failing_tenant_never_rolls_back_the_platform(
    store: PostgresStore, tenants: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = writer_module.TenantWriter.write

    def failing(self: writer_module.TenantWriter, changes: Sequence[Change]) -> None:
        if self.tenant_id == "acme":
            raise RuntimeError("injected failure")
        write(self, changes)

    monkeypatch.setattr(writer_module.TenantWriter, "write", failing)
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert set(outcome.report.failed) == {"acme"}
    assert outcome.platform.result == "applied"
    conn = store.connection
    assert "ops@pbx.example.net" in read_platform_admins(conn)
    assert sorted(read_state(conn)) == ["globex", "initech"]
    (applied,) = read_history(conn, tenant_id=PLATFORM)
    assert applied.result == "applied"


def test_a_platform_plan_made_before_another_writer_is_unchanged_or_refused(
    pg_dsn: str,
) -> None:
    with connect(pg_dsn) as conn:
        migrate(conn)
        desired = PlatformState.of_admins({"ops@x.io": "Ops"})
        changes = plan_platform(desired, PlatformState())
        assert apply_platform(conn, changes, desired=desired, revision=None, host="a").result == (
            "applied"
        )
        again = apply_platform(conn, changes, desired=desired, revision=None, host="b")
        assert again.result == "unchanged", "another writer already did it"
        other = PlatformState.of_admins({"ops@x.io": "Operator"})
        stale = apply_platform(conn, changes, desired=other, revision=None, host="c")
        assert stale.result == "failed" and "changed since this plan" in str(stale.error)
        assert read_platform_admins(conn) == {"ops@x.io": "Ops"}


def test_followers_are_notified_of_a_platform_apply_and_refresh_its_admins(
    pg_dsn: str, store: PostgresStore, tenants: Path
) -> None:
    follower = Reconciler(tenants, PostgresStore(pg_dsn))
    try:
        follower.bootstrap()
        with connect(pg_dsn) as listener:
            listener.execute(f"LISTEN {APPLIED_CHANNEL}")
            Reconciler(tenants, store).run_pass(full=True)
            payloads = {n.payload for n in listener.notifies(timeout=2, stop_after=4)}
        assert PLATFORM in payloads
        assert follower.applied.platform_admins == {}
        follower.refresh(frozenset({PLATFORM}))
        assert "ops@pbx.example.net" in follower.applied.platform_admins
    finally:
        follower.store.reset()


def test_gateways_are_stored_with_a_marker_and_the_history_never_holds_it(
    store: PostgresStore, tenants: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tenants / "_platform.yaml").write_text(
        "gateways:\n"
        "  - {name: legacy}\n"
        "  - {name: carrier9, proxy: 'sip.c9.example:5061', username: u9, register: true}\n"
    )
    monkeypatch.setenv("PBX_GATEWAY_CARRIER9_PASSWORD", "first-Secret-9")
    reconciler = Reconciler(tenants, store)
    assert reconciler.run_pass(full=True).platform.result == "applied"
    gateways = read_platform(store.connection).gateways
    assert set(gateways) == {"legacy", "carrier9"}
    first = gateways["carrier9"]
    assert first.managed and not gateways["legacy"].managed
    assert first.credentials.startswith("pbkdf2:")
    assert reconciler.applied.platform.gateways == gateways

    monkeypatch.setenv("PBX_GATEWAY_CARRIER9_PASSWORD", "second-Secret-9")
    planned = reconciler.plan_pass(full=True)
    (change,) = planned.plan.platform
    assert set(change.fields) == {"credentials"}
    assert reconciler.apply_pass(planned).platform.result == "applied"
    assert read_platform(store.connection).gateways["carrier9"].credentials != first.credentials

    # a host without the password (pbx plan in CI) never plans it away: the applied marker
    # stays, and the gateway is reported
    second = read_platform(store.connection).gateways["carrier9"].credentials
    monkeypatch.delenv("PBX_GATEWAY_CARRIER9_PASSWORD")
    outcome = reconciler.run_pass(full=True)
    assert outcome.planned.plan.platform == ()
    assert read_platform(store.connection).gateways["carrier9"].credentials == second
    assert "PBX_GATEWAY_CARRIER9_PASSWORD" in reconciler.applied.gateway_problems["carrier9"]

    history = read_history(store.connection, tenant_id=PLATFORM)
    text = repr([h.changes for h in history])
    assert "pbkdf2" not in text and "Secret-9" not in text
    assert "'credentials': 'set'" in text

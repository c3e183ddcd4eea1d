"""Migrations: applied automatically, idempotent, safe concurrently, recorded per schema."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from reconciler.store import connect, migrate
from reconciler.store import migrations as migrations_module
from reconciler.store.migrations import TENANT_VERSION, Migration
from tests.store.test_support import converge, desired_of, make_spec


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


CONTROL_VERSIONS = [m.version for m in migrations_module.CONTROL_MIGRATIONS]
"""Every control version in order (branches merged out of order may leave a gap)."""


def _recorded(conn: psycopg.Connection) -> list[tuple[str, int]]:
    return conn.execute(
        "SELECT schema_name, version FROM pbx.schema_migrations ORDER BY 1, 2"
    ).fetchall()


def test_migrating_twice_changes_nothing_the_second_time(conn: psycopg.Connection) -> None:
    assert migrate(conn) == [("pbx", v) for v in CONTROL_VERSIONS]
    assert migrate(conn) == []
    assert _recorded(conn) == [("pbx", v) for v in CONTROL_VERSIONS]


def test_a_new_tenant_schema_is_migrated_in_its_first_apply_and_recorded(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])).ok
    tenant_versions = [m.version for m in migrations_module.TENANT_MIGRATIONS]
    assert _recorded(conn) == [
        *[("pbx", v) for v in CONTROL_VERSIONS],
        *[("tenant_acme", v) for v in tenant_versions],
        *[("tenant_beta", v) for v in tenant_versions],
    ]
    assert migrate(conn) == []


def test_concurrent_daemons_migrate_a_fresh_database_once(pg_dsn: str) -> None:
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def daemon() -> None:
        try:
            with connect(pg_dsn) as conn:
                start.wait()
                migrate(conn)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=daemon) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with connect(pg_dsn) as conn:
        assert _recorded(conn) == [("pbx", v) for v in CONTROL_VERSIONS]


def test_a_new_tenant_migration_reaches_every_tenant_schema(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert converge(conn, desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])).ok
    step = Migration(
        TENANT_VERSION + 1,
        "probe",
        sql.SQL("ALTER TABLE {schema}.extensions ADD COLUMN probe integer"),
    )
    monkeypatch.setattr(
        migrations_module, "TENANT_MIGRATIONS", (*migrations_module.TENANT_MIGRATIONS, step)
    )
    monkeypatch.setattr(migrations_module, "TENANT_VERSION", step.version)
    assert migrate(conn) == [("tenant_acme", step.version), ("tenant_beta", step.version)]
    assert migrate(conn) == []
    for schema in ("tenant_acme", "tenant_beta"):
        assert conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'extensions' AND column_name = 'probe'",
            (schema,),
        ).fetchone() == (1,)


def test_a_version_merged_below_the_highest_applied_still_reaches_every_schema(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Branches number their migrations apart (one adds 3, another 4): a schema that got 4
    first still gets 3 when it arrives, because the runner compares version sets."""
    assert converge(conn, desired_of([make_spec("acme")])).ok
    missing = [
        v
        for v in range(1, TENANT_VERSION)
        if v not in {m.version for m in migrations_module.TENANT_MIGRATIONS}
    ]
    version = missing[0] if missing else TENANT_VERSION + 1
    step = Migration(
        version, "late", sql.SQL("ALTER TABLE {schema}.extensions ADD COLUMN late integer")
    )
    merged = tuple(sorted((*migrations_module.TENANT_MIGRATIONS, step), key=lambda m: m.version))
    monkeypatch.setattr(migrations_module, "TENANT_MIGRATIONS", merged)
    assert migrate(conn) == [("tenant_acme", version)]
    assert migrate(conn) == []

"""The per-tenant change counter (tenant migration "change counter", control migration
"tenant change counters"): every kind of write to a tenant's state tables moves its
counter and no other tenant's; nothing else moves it; old databases get it; a schema
without one is fingerprinted the slow way; no tenant role reads any counter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from reconciler.store import connect, migrate
from reconciler.store import migrations as migrations_module
from reconciler.store.fingerprints import FINGERPRINTED_TABLES, read_fingerprints
from reconciler.store.migrations import Migration
from reconciler.store.prune import prune_tenant
from tests.store.test_support import converge, desired_of, make_spec

CONTROL_NAME = "tenant change counters"
TENANT_NAME = "change counter:"


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


@pytest.fixture
def applied(conn: psycopg.Connection) -> psycopg.Connection:
    assert converge(conn, desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])).ok
    return conn


def _counter(conn: psycopg.Connection, tenant_id: str) -> int | None:
    row = conn.execute(
        "SELECT c.last_change FROM pbx.tenant_changes c"
        " JOIN pbx.tenants t ON t.schema_name = c.schema_name WHERE t.id = %s",
        (tenant_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def _without(migrations: tuple[Migration, ...], name: str) -> tuple[Migration, ...]:
    kept = tuple(m for m in migrations if not m.name.startswith(name))
    assert len(kept) == len(migrations) - 1, f"no migration named {name!r}"
    return kept


WRITES = {
    "insert": "INSERT INTO tenant_acme.users (email, name, role) VALUES ('z@x.org', 'Z', 'member')",
    "update": "UPDATE tenant_acme.extensions SET name = 'Hand made'",
    "update to the same value": "UPDATE tenant_acme.extensions SET name = name",
    "delete": "DELETE FROM tenant_acme.inbound_numbers",
    "truncate": "TRUNCATE tenant_acme.tiers",
    "credential rotated": "UPDATE tenant_acme.sip_credentials SET a1_hash = md5('x')",
    "pin changed": "UPDATE tenant_acme.voicemail_pins SET pin = '123456'",
    "cascade": "DELETE FROM tenant_acme.users",  # its user_extensions go with it
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_every_kind_of_write_moves_the_counter_of_its_tenant_only(
    applied: psycopg.Connection, write: str
) -> None:
    before = {t: _counter(applied, t) for t in ("acme", "beta")}
    prints = read_fingerprints(applied)
    applied.execute(WRITES[write])  # type: ignore[arg-type]
    after = {t: _counter(applied, t) for t in ("acme", "beta")}
    assert after["acme"] != before["acme"] and after["beta"] == before["beta"]
    again = read_fingerprints(applied)
    assert again["acme"] != prints["acme"] and again["beta"] == prints["beta"]


def test_copy_moves_the_counter(applied: psycopg.Connection) -> None:
    before = _counter(applied, "acme")
    with applied.cursor().copy("COPY tenant_acme.users (email, name, role) FROM STDIN") as copy:
        copy.write_row(("copied@x.org", "Copied", "member"))
    assert _counter(applied, "acme") != before


def test_reads_locks_vacuum_history_and_rolled_back_writes_leave_it(
    applied: psycopg.Connection,
) -> None:
    before = read_fingerprints(applied)
    applied.execute("SELECT * FROM tenant_acme.extensions FOR UPDATE")
    applied.execute("VACUUM (FULL) tenant_acme.extensions")
    applied.execute("DELETE FROM tenant_acme.calls")  # call history is no served state
    with pytest.raises(psycopg.errors.RaiseException), applied.transaction():
        applied.execute("DELETE FROM tenant_acme.users")
        applied.execute("DO $$ BEGIN RAISE EXCEPTION 'rolled back'; END $$")
    assert read_fingerprints(applied) == before


def test_every_table_the_state_is_read_from_counts_its_writes(
    applied: psycopg.Connection,
) -> None:
    """A table added later that the state is read from needs its trigger too."""
    counted = {
        table
        for (table,) in applied.execute(
            "SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
            " WHERE c.relnamespace = 'tenant_acme'::regnamespace AND g.tgname = 'count_change'"
        )
    }
    assert counted == set(FINGERPRINTED_TABLES)
    for table in FINGERPRINTED_TABLES:
        before = _counter(applied, "acme")
        applied.execute(
            sql.SQL("DELETE FROM {} WHERE false").format(sql.Identifier("tenant_acme", table))
        )
        assert _counter(applied, "acme") != before, table


def test_the_migration_applies_on_an_existing_database(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database made before the counter: its tenants are fingerprinted by their rows,
    then migrated (schema by schema) to a counter, and a hand edit still shows."""
    full_control = migrations_module.CONTROL_MIGRATIONS
    full_tenant = migrations_module.TENANT_MIGRATIONS
    monkeypatch.setattr(
        migrations_module, "CONTROL_MIGRATIONS", _without(full_control, CONTROL_NAME)
    )
    monkeypatch.setattr(migrations_module, "TENANT_MIGRATIONS", _without(full_tenant, TENANT_NAME))
    assert converge(conn, desired_of([make_spec("acme"), make_spec("beta", did_prefix="512")])).ok
    old = read_fingerprints(conn)
    assert all(isinstance(counted, tuple) for _, counted in old.values())  # row hashes
    monkeypatch.setattr(migrations_module, "CONTROL_MIGRATIONS", full_control)
    monkeypatch.setattr(migrations_module, "TENANT_MIGRATIONS", full_tenant)
    control = next(m.version for m in full_control if m.name.startswith(CONTROL_NAME))
    tenant = next(m.version for m in full_tenant if m.name.startswith(TENANT_NAME))
    assert migrate(conn) == [("pbx", control), ("tenant_acme", tenant), ("tenant_beta", tenant)]
    new = read_fingerprints(conn)
    assert all(isinstance(counted, int) for _, counted in new.values())
    conn.execute("UPDATE tenant_acme.extensions SET name = 'Hand made'")
    assert read_fingerprints(conn)["acme"] != new["acme"]


def test_a_schema_without_its_counter_row_is_fingerprinted_by_its_rows(
    applied: psycopg.Connection,
) -> None:
    applied.execute("DELETE FROM pbx.tenant_changes WHERE schema_name = 'tenant_acme'")
    before = read_fingerprints(applied)
    assert isinstance(before["acme"][1], tuple) and isinstance(before["beta"][1], int)
    applied.execute("UPDATE tenant_acme.extensions SET name = 'Hand made'")
    assert read_fingerprints(applied)["acme"] != before["acme"]


def test_a_renamed_or_pruned_tenant_takes_its_counter_along(
    applied: psycopg.Connection,
) -> None:
    before = read_fingerprints(applied)["acme"]
    applied.execute("UPDATE pbx.tenants SET status = 'orphaned' WHERE id = 'acme'")
    archive = prune_tenant(applied, "acme")
    (moved,) = applied.execute(
        "SELECT last_change FROM pbx.tenant_changes WHERE schema_name = %s", (archive,)
    ).fetchone() or (None,)
    assert moved is not None and moved != before[1]
    assert converge(applied, desired_of([make_spec("acme")])).ok  # created again
    assert isinstance(read_fingerprints(applied)["acme"][1], int)


def test_a_tenant_role_is_counted_but_reads_no_counter(
    applied: psycopg.Connection, pg_dsn: str
) -> None:
    """A role confined to its tenant's schema: its writes move its counter (the trigger
    runs as its owner), it can read neither its own counter nor another tenant's."""
    role = f"pbx_test_tenant_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    applied.execute(sql.SQL("CREATE ROLE {}").format(ident))
    try:
        applied.execute(sql.SQL("GRANT USAGE ON SCHEMA tenant_acme TO {}").format(ident))
        applied.execute(
            sql.SQL("GRANT SELECT, UPDATE ON tenant_acme.extensions TO {}").format(ident)
        )
        before = _counter(applied, "acme")
        with psycopg.connect(pg_dsn, autocommit=True) as tenant_conn:
            tenant_conn.execute(sql.SQL("SET ROLE {}").format(ident))
            tenant_conn.execute("UPDATE tenant_acme.extensions SET name = 'By the tenant'")
            for query in (
                "SELECT * FROM pbx.tenant_changes",
                "SELECT * FROM tenant_beta.extensions",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    tenant_conn.execute(query)  # type: ignore[arg-type]
        assert _counter(applied, "acme") != before
    finally:
        applied.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        applied.execute(sql.SQL("DROP ROLE {}").format(ident))

"""Voicemail PINs: generated per extension, served only as a digest of the domain, re-hashed
on a domain change, rotated and shown; the migration gives existing extensions one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from reconciler.core.plan import plan
from reconciler.core.plan_text import render_text
from reconciler.store import (
    UnknownExtension,
    connect,
    read_history,
    read_voicemail_hashes,
    rotate_pin,
    show_pin,
)
from reconciler.store import migrations as migrations_module
from reconciler.store.migrations import TENANT_MIGRATIONS, migrate
from reconciler.store.voicemail_pins import PIN_LENGTH
from specs_schema.models import TenantSpec
from tests.store.test_support import converge, desired_of, make_spec, spec_data


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _pins(conn: psycopg.Connection) -> dict[str, str]:
    return {number: show_pin(conn, "acme", number) for number in ("101", "102", "103")}


def test_each_extension_gets_a_numeric_pin_served_only_as_its_digest(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    pins = _pins(conn)
    assert all(len(pin) == PIN_LENGTH and pin.isdigit() for pin in pins.values())
    hashes = read_voicemail_hashes(conn)
    assert hashes == {
        ("acme", number): _md5(f"{number}:acme.example.com:{pin}") for number, pin in pins.items()
    }
    # the plan that created them shows none of them
    text = render_text(plan(desired_of([make_spec("acme")]), {}))
    assert not any(pin in text for pin in pins.values())


def test_a_domain_change_rehashes_the_pins_and_keeps_them(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    before = _pins(conn)
    moved = TenantSpec.model_validate(spec_data("acme", domain="acme.example.org"))
    assert converge(conn, desired_of([moved])).ok
    assert _pins(conn) == before
    assert read_voicemail_hashes(conn)[("acme", "101")] == _md5(
        f"101:acme.example.org:{before['101']}"
    )


def test_rotating_a_pin_changes_it_its_digest_and_is_recorded(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    old = show_pin(conn, "acme", "101")
    old_hash = read_voicemail_hashes(conn)[("acme", "101")]
    rotate_pin(conn, "acme", "101")
    new = show_pin(conn, "acme", "101")
    assert read_voicemail_hashes(conn)[("acme", "101")] == _md5(f"101:acme.example.com:{new}")
    assert read_voicemail_hashes(conn)[("acme", "101")] != old_hash or new == old
    entry = read_history(conn, tenant_id="acme")[0]
    assert entry.action == "rotate"
    assert new not in repr(entry) and old not in repr(entry)
    with pytest.raises(UnknownExtension):
        rotate_pin(conn, "acme", "999")
    with pytest.raises(UnknownExtension):
        show_pin(conn, "acme", "999")


def test_the_migration_gives_existing_extensions_a_pin_hashed_for_their_domain(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database from before migration 3: extensions without a PIN get one, in SQL."""
    assert converge(conn, desired_of([make_spec("acme")])).ok
    schema = sql.Identifier("tenant_acme")
    conn.execute(sql.SQL("DROP TABLE {}.voicemail_pins").format(schema))
    conn.execute(
        sql.SQL(
            "ALTER TABLE {}.extensions DROP COLUMN voicemail_enabled, "
            "DROP COLUMN voicemail_max_message_seconds, DROP COLUMN voicemail_pin_on_own_phone"
        ).format(schema)
    )
    conn.execute(
        "DELETE FROM pbx.schema_migrations WHERE schema_name = 'tenant_acme' AND version = 3"
    )
    assert ("tenant_acme", 3) in migrate(conn)
    pins = _pins(conn)
    assert all(len(pin) == 6 and pin.isdigit() for pin in pins.values())
    assert read_voicemail_hashes(conn)[("acme", "102")] == _md5(
        f"102:acme.example.com:{pins['102']}"
    )
    assert TENANT_MIGRATIONS[-1].version == migrations_module.TENANT_VERSION
    assert TENANT_MIGRATIONS[2].version == 3
    assert "voicemail" in TENANT_MIGRATIONS[2].name

"""Which database this is: identities on a real PostgreSQL, DSN fingerprints (pure)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from reconciler.core.identity import DatabaseIdentity
from reconciler.store import StoreError, connect, migrate
from reconciler.store.identity import dsn_fingerprint, read_database_identity
from tests.conftest import fresh_database


@pytest.fixture
def other_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A second database on the same server."""
    with fresh_database(pg_server_dsn) as dsn:
        yield dsn


def identity_of(dsn: str) -> DatabaseIdentity:
    with connect(dsn) as conn:
        migrate(conn)
        return read_database_identity(conn)


def test_the_same_database_has_the_same_identity(pg_dsn: str) -> None:
    first = identity_of(pg_dsn)
    again = identity_of(pg_dsn)  # a new connection, migrate run again
    assert first == again
    assert first.database == psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    assert first.system_identifier.isdigit()
    assert str(uuid.UUID(first.installation_id)) == first.installation_id


def test_two_databases_have_different_identities(pg_dsn: str, other_dsn: str) -> None:
    first, second = identity_of(pg_dsn), identity_of(other_dsn)
    assert first != second
    assert first.system_identifier == second.system_identifier  # one cluster
    assert first.installation_id != second.installation_id
    assert first.difference(second) is not None


def test_a_re_created_database_is_another_installation(pg_server_dsn: str) -> None:
    with fresh_database(pg_server_dsn) as dsn:
        first = identity_of(dsn)
        name = sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]))
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        second = identity_of(dsn)
    assert first.database == second.database
    assert "installation" in (first.difference(second) or "")


def test_an_unmigrated_database_has_no_identity(pg_dsn: str) -> None:
    with connect(pg_dsn) as conn, pytest.raises(StoreError):
        read_database_identity(conn)


def test_identity_round_trips_through_a_dict() -> None:
    identity = DatabaseIdentity("1", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")
    assert DatabaseIdentity.from_dict(identity.as_dict()) == identity
    with pytest.raises(ValueError):
        DatabaseIdentity.from_dict({"system_identifier": "1", "database": "pbx"})


# --- DSN fingerprints --------------------------------------------------------------------

NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize(
    "spelling",
    [
        "postgresql://pbx@db.example.net:5432/pbx",
        "postgresql://pbx:secret@DB.example.net/pbx?connect_timeout=5&sslmode=require",
        "postgres://pbx@db.example.net/pbx",
        "host=db.example.net port=5432 dbname=pbx user=pbx password=other",
        "dbname=pbx   host=db.example.net user=pbx application_name=x",
    ],
)
def test_equivalent_spellings_have_one_fingerprint(spelling: str) -> None:
    assert dsn_fingerprint(spelling, NO_ENV) == dsn_fingerprint(
        "postgresql://pbx@db.example.net/pbx", NO_ENV
    )


@pytest.mark.parametrize(
    "other",
    [
        "postgresql://pbx@db2.example.net/pbx",
        "postgresql://pbx@db.example.net:5433/pbx",
        "postgresql://pbx@db.example.net/pbx2",
        "postgresql://admin@db.example.net/pbx",
    ],
    ids=["host", "port", "dbname", "user"],
)
def test_host_port_database_and_user_each_count(other: str) -> None:
    assert dsn_fingerprint(other, NO_ENV) != dsn_fingerprint(
        "postgresql://pbx@db.example.net/pbx", NO_ENV
    )


def test_fingerprint_never_holds_the_password() -> None:
    fingerprint = dsn_fingerprint("postgresql://pbx:Sup3r-S3cret@db.example.net/pbx", NO_ENV)
    assert "Sup3r" not in fingerprint
    assert fingerprint == "pbx@db.example.net:5432/pbx"


def test_libpq_environment_fills_what_the_dsn_leaves_out() -> None:
    env = {"PGHOST": "db.example.net", "PGUSER": "pbx", "PGDATABASE": "pbx", "PGPORT": "5432"}
    assert dsn_fingerprint("", env) == dsn_fingerprint("postgresql://pbx@db.example.net/pbx", {})


def test_unix_socket_paths_keep_their_case() -> None:
    fingerprint = dsn_fingerprint("postgresql://postgres@/pbx?host=/tmp/PgData", NO_ENV)
    assert "/tmp/PgData" in fingerprint


def test_unparseable_dsn_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        dsn_fingerprint("host='unterminated", NO_ENV)

"""Which database this is: an identity that survives a new DSN spelling and tells a fresh
database from the one a file was written for.

A persisted snapshot is only worth serving against the database it was built from. The DSN
cannot tell: the same ``host:port/dbname`` may be a restored backup, a new cluster or a
re-created database. ``read_database_identity`` combines three facts, each catching a case the
others miss: the cluster's ``system_identifier`` (a new ``initdb``, another server), the database
name (two databases of one cluster), and the installation UUID the control-schema migration
writes once (a database dropped and created again under the same name, or ``pg_restore`` of
another installation into this cluster).

``dsn_fingerprint`` is the fallback for a start while the database is unreachable: the address
the DSN points at (host, port, database, user), spelled canonically, never the password.

Neighbours: ``reconciler.store.migrations`` (control migration 2 writes the UUID),
``reconciler.serve.persist`` (records both in the snapshot file and compares them).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reconciler.core.identity import DatabaseIdentity
from reconciler.store.errors import StoreError, StoreUnavailable, translated


@translated
def read_database_identity(conn: psycopg.Connection) -> DatabaseIdentity:
    """The identity of the database ``conn`` is connected to; needs the control schema
    migrated (``StoreError`` otherwise)."""
    row = conn.execute(
        """
        SELECT (SELECT system_identifier::text FROM pg_control_system()),
               current_database(),
               (SELECT installation_id::text FROM pbx.installation)
        """
    ).fetchone()
    if row is None or not all(row):
        raise StoreError("database identity unavailable: pbx.installation holds no row")
    return DatabaseIdentity(str(row[0]), str(row[1]), str(row[2]))


_DEFAULT_PORT = "5432"
_DEFAULT_SOCKET = "(default socket)"


def dsn_fingerprint(dsn: str, environ: Mapping[str, str] | None = None) -> str:
    """``user@host:port/dbname`` of what ``dsn`` connects to, filled in as libpq would
    (the DSN, then ``PG*`` variables, then defaults) and lowercased where PostgreSQL does not
    care, so ``postgresql://u:pw@DB:5432/x`` and ``host=db user=u dbname=x`` agree. The password
    and every other option are left out. ``ValueError`` when ``dsn`` does not parse."""
    env = os.environ if environ is None else environ
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a PostgreSQL connection string: {exc}") from None

    def pick(name: str, variable: str) -> str:
        value = params.get(name)
        return str(value) if value not in (None, "") else env.get(variable, "")

    user = pick("user", "PGUSER") or _os_user()
    host = pick("host", "PGHOST") or pick("hostaddr", "PGHOSTADDR") or _DEFAULT_SOCKET
    port = pick("port", "PGPORT") or _DEFAULT_PORT
    dbname = pick("dbname", "PGDATABASE") or user
    hosts = ",".join(h if h.startswith("/") else h.lower() for h in host.split(","))
    return f"{quote(user, safe='')}@{quote(hosts, safe='/,:()')}:{port}/{quote(dbname, safe='')}"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return ""


def probe_identity(dsn: str, timeout: float) -> DatabaseIdentity | None:
    """The identity of the database ``dsn`` names; None when it has none (never migrated:
    not the database any file was written for); ``StoreUnavailable`` when it cannot be
    asked within ``timeout`` seconds."""
    from reconciler.store.database import connect

    with connect(dsn, connect_timeout=max(1, round(timeout))) as conn:
        try:
            return read_database_identity(conn)
        except StoreUnavailable:
            raise
        except StoreError:
            return None


def configured_fingerprint(database_url: str | None, embedded_dir: Path) -> str:
    """Names the configured database for a start without it: the DSN's fingerprint, or the
    embedded server's data directory."""
    if database_url is None:
        return f"embedded:{embedded_dir.resolve()}"
    try:
        return dsn_fingerprint(database_url)
    except ValueError:
        return "unparseable DSN"

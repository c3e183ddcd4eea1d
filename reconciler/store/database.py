"""Which database, and connections to it.

``database_url`` resolves the DSN: ``--database-url`` (the caller passes it), else
``PBX_DATABASE_URL``, else an embedded PostgreSQL (pgserver) whose data directory lives under
the user's data dir, so ``pbx apply`` works on a fresh machine. The embedded server runs for
as long as the ``with`` block: the resolver owns that handle and stops the server on exit
(pgserver keeps it running while another process still uses the same directory).

Store functions take a connection in autocommit mode (as ``connect`` and ``open_pool`` make
them): each function opens exactly the transactions it documents.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import platformdirs
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from reconciler.core.logs import register_secret
from reconciler.store.errors import InvalidDsn, StoreUnavailable, unavailable

DATABASE_URL_ENV = "PBX_DATABASE_URL"
EMBEDDED_DATABASE = "pbx"
APPLICATION_NAME = "pbx-reconciler"


def dsn_password(dsn: str) -> str | None:
    """The password a DSN carries (for the log masker), None when it has none or is invalid."""
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except psycopg.ProgrammingError:
        return None


def default_data_dir() -> Path:
    """Where the embedded server keeps its cluster."""
    return Path(platformdirs.user_data_dir("pbx-reconciler")) / "postgres"


@contextmanager
def database_url(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
) -> Iterator[str]:
    """Yield the DSN to use; starts (and finally stops) the embedded server when needed."""
    env = os.environ if environ is None else environ
    explicit = url or env.get(DATABASE_URL_ENV)
    if explicit:
        yield checked_dsn(explicit)
        return
    pgserver = _import_pgserver()
    directory = data_dir or default_data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(directory, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain subprocess/OS errors
        raise StoreUnavailable(f"embedded PostgreSQL in {directory} did not start: {exc}") from exc
    try:
        _ensure_database(server.get_uri(), EMBEDDED_DATABASE)
        yield server.get_uri(EMBEDDED_DATABASE)
    finally:
        server.cleanup()


def checked_dsn(dsn: str) -> str:
    """``dsn`` when it is a PostgreSQL connection string, with its password registered for
    masking. A string the driver cannot parse never reaches it: the driver's error quotes
    the whole string, password included (``user:pw@host/db`` without a scheme does that)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        info = None
    if info is None:
        raise InvalidDsn(
            "the database URL is not a PostgreSQL connection string: write "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME or 'host=... dbname=... password=...' "
            "(the value is not shown: it may hold a password)"
        )
    password = info.get("password")
    register_secret(str(password) if password else None)
    return dsn


def _import_pgserver() -> Any:
    """pgserver (heavy: imported only when no server is configured). Importing it checks
    the XDG runtime dir through platformdirs, which warns on every root shell
    (``RuntimeDirWarning``); pgserver only puts its lock file there, so a command prints
    what its user asked for, not that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs.*")
        import pgserver
    return pgserver


def read_only_dsn(dsn: str) -> str:
    """``dsn`` whose sessions refuse every write (``default_transaction_read_only``): for
    ``pbx serve``, which only ever reads the applied state (give it a read-only role too)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InvalidDsn(f"not a PostgreSQL DSN: {exc}") from exc
    options = str(params.get("options") or "")
    params["options"] = f"{options} -c default_transaction_read_only=on".strip()
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection:
    """An autocommit connection; connection failures become ``StoreUnavailable``."""
    try:
        return psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME, **kwargs)
    except psycopg.OperationalError as exc:
        raise unavailable(exc) from exc


def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    timeout: float = 30.0,
    configure: Callable[[psycopg.Connection], None] | None = None,
) -> ConnectionPool:
    """An opened pool of autocommit connections (the daemon's, and parallel applies').

    ``configure`` runs on each new connection (the daemon records backend pids with it, to
    tell its own apply notifications from other writers')."""
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
        configure=configure,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout as exc:
        pool.close()
        raise StoreUnavailable(f"database unavailable: no connection within {timeout}s") from exc
    return pool


def _ensure_database(server_dsn: str, name: str) -> None:
    with connect(server_dsn) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # another process may create it meanwhile
            with suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

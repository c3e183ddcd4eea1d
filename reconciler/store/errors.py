"""The store's exception tree; foreign errors (psycopg) are translated here, at the boundary.

No message built here ever contains a SIP password: database error details (which can quote
a failing row) are dropped, only the primary message, SQLSTATE and constraint name are kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import psycopg

from reconciler.core.errors import PbxError, Permanent, Transient

P = ParamSpec("P")
R = TypeVar("R")


class StoreError(PbxError):
    """Base of every error the store raises; each leaf also picks a branch of the project
    tree (``Permanent`` or ``Transient``, see ``reconciler.core.errors``)."""


class StoreUnavailable(StoreError, Transient):
    """The database cannot be reached or refused the connection (temporary: retry later)."""


class InvalidDsn(StoreError, Permanent):
    """The configured database URL cannot be parsed; the message never quotes it."""


class MigrationError(StoreError, Permanent):
    """A schema migration failed; the schema stays at its previous version."""


class TenantApplyError(StoreError, Permanent):
    """Applying one tenant failed; that tenant was rolled back, the others went on."""

    def __init__(self, tenant_id: str, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(f"tenant {tenant_id}: {message}")
        self.tenant_id = tenant_id
        self.message = message
        self.sqlstate = sqlstate


class PlatformApplyError(StoreError, Permanent):
    """Applying the platform's changes failed; they were rolled back, the tenants went on."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(f"platform: {message}")
        self.message = message
        self.sqlstate = sqlstate


class StalePlan(TenantApplyError):
    """The tenant changed between planning and applying; plan again."""


class UnknownTenant(StoreError, Permanent):
    """No tenant with this id is registered."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"unknown tenant '{tenant_id}'")
        self.tenant_id = tenant_id


class UnknownExtension(StoreError, Permanent):
    """The tenant has no extension with this number."""

    def __init__(self, tenant_id: str, extension: str) -> None:
        super().__init__(f"tenant {tenant_id}: unknown extension '{extension}'")
        self.tenant_id = tenant_id
        self.extension = extension


class TenantNotOrphaned(StoreError, Permanent):
    """Prune refused: only tenants whose spec left git (status ``orphaned``) are archived."""

    def __init__(self, tenant_id: str, status: str) -> None:
        super().__init__(
            f"tenant {tenant_id} is {status}, not orphaned: only a tenant whose spec file was "
            "removed can be pruned"
        )
        self.tenant_id = tenant_id
        self.status = status


def describe_db_error(exc: psycopg.Error) -> str:
    """A password-free description: primary message and constraint, never the DETAIL line
    (PostgreSQL's "Failing row contains (...)" would quote the row, secrets included)."""
    diag = exc.diag
    text = diag.message_primary or (str(exc).splitlines() or [type(exc).__name__])[0]
    if diag.constraint_name:
        text += f" (constraint {diag.constraint_name})"
    return text


def unavailable(exc: psycopg.Error) -> StoreUnavailable:
    """Translate a connection-level psycopg error."""
    return StoreUnavailable(f"database unavailable: {describe_db_error(exc)}")


@contextmanager
def writing(conn: psycopg.Connection, what: str) -> Iterator[None]:
    """psycopg errors of a write leave as store errors: ``StoreUnavailable`` when the
    connection is gone, else a ``StoreError`` saying what failed (never a row's values)."""
    try:
        yield
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        raise StoreError(f"{what} failed: {describe_db_error(exc)}") from exc


def translated(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for read-side entry points: psycopg errors leave as store errors
    (connection-level ones as ``StoreUnavailable``), the original chained as the cause."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        except psycopg.Error as exc:
            raise StoreError(f"{func.__name__} failed: {describe_db_error(exc)}") from exc

    return wrapper


def require_autocommit(conn: psycopg.Connection) -> None:
    """Store functions open the transactions they need; inside a caller's transaction a
    1000-schema read or apply would hold every table lock at once and exhaust the lock table."""
    if not conn.autocommit:
        raise StoreError("the store needs an autocommit connection (see store.connect)")

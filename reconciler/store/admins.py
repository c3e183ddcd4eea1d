"""The platform scope in PostgreSQL: its records (super admins of ``_platform.yaml`` in
``pbx.platform_admins``, carrier gateways in ``pbx.platform_gateways``: their settings and a
credentials marker, never a password) and their apply.

Git is the source of truth: the platform's changes are planned like a tenant's
(``plan_platform``) and applied in a transaction of their own, apart from every tenant's:
a failing platform apply never rolls back a tenant, and a failing tenant never blocks the
platform. Under the platform's advisory lock the platform is re-read and re-planned (empty:
another writer did it, ``unchanged``; different: ``stale``), written, and recorded in the
apply history under the scope id ``PLATFORM``; a failure is recorded there too, in a
transaction of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from reconciler.core.model import PLATFORM, Gateway, Kind, PlatformAdmin, PlatformState
from reconciler.core.plan import Action, Change, plan_platform
from reconciler.core.revision import GitRevision
from reconciler.store.errors import (
    PlatformApplyError,
    describe_db_error,
    require_autocommit,
    translated,
    unavailable,
)
from reconciler.store.history import changes_json, record_history
from reconciler.store.layout import APPLIED_CHANNEL
from reconciler.store.locks import lock_tenant
from reconciler.store.read import control_schema_exists

log = logging.getLogger(__name__)

PlatformResult = Literal["none", "applied", "unchanged", "failed"]


@dataclass(frozen=True)
class PlatformReport:
    """What the platform's apply did: nothing planned, committed, already there (another
    writer), or rolled back with ``error``."""

    result: PlatformResult = "none"
    error: PlatformApplyError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def apply_platform(
    conn: psycopg.Connection,
    changes: Sequence[Change],
    *,
    desired: PlatformState | None,
    revision: GitRevision | None,
    host: str,
) -> PlatformReport:
    """Apply the platform's ``changes`` (made by ``plan_platform(desired, ...)``) in one
    transaction; a lost connection raises ``StoreUnavailable`` (it stops the whole pass)."""
    if not changes:
        return PlatformReport()
    require_autocommit(conn)
    try:
        with conn.transaction():
            lock_tenant(conn, PLATFORM)  # "_platform" is no tenant id: a lock of its own
            actual = read_platform(conn)
            expected = plan_platform(desired, actual)
            if not expected:
                return PlatformReport("unchanged")
            if expected != tuple(changes):
                raise PlatformApplyError("the database changed since this plan was made")
            _write(conn, changes)
            _history(conn, changes, revision, host, result="applied")
            conn.execute("SELECT pg_notify(%s, %s)", (APPLIED_CHANNEL, PLATFORM))
    except PlatformApplyError as exc:
        error = exc
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        error = PlatformApplyError(describe_db_error(exc), sqlstate=exc.sqlstate)
    except Exception as exc:  # a bug must not stop the tenants either: logged with its traceback
        log.exception("platform: unexpected error while applying")
        error = PlatformApplyError(f"unexpected {type(exc).__name__}: {exc}")
    else:
        log.info("platform: applied %d change(s)", len(changes))
        return PlatformReport("applied")
    log.warning("platform: apply failed and was rolled back: %s", error.message)
    _record_failure(conn, changes, revision, host, error)
    return PlatformReport("failed", error)


def _write(conn: psycopg.Connection, changes: Sequence[Change]) -> None:
    for change in changes:
        if change.kind is Kind.GATEWAY:
            _write_gateway(conn, change)
            continue
        if change.kind is not Kind.PLATFORM_ADMIN:
            raise PlatformApplyError(f"no writer for platform kind {change.kind.value}")
        if change.action is Action.DELETE:
            conn.execute("DELETE FROM pbx.platform_admins WHERE email = %s", (change.key,))
            continue
        admin = change.after
        assert isinstance(admin, PlatformAdmin)
        conn.execute(
            """
            INSERT INTO pbx.platform_admins (email, name) VALUES (%s, %s)
            ON CONFLICT (email) DO UPDATE SET name = excluded.name, updated_at = now()
            """,
            (admin.email, admin.name),
        )


def _write_gateway(conn: psycopg.Connection, change: Change) -> None:
    if change.action is Action.DELETE:
        conn.execute("DELETE FROM pbx.platform_gateways WHERE name = %s", (change.key,))
        return
    gateway = change.after
    assert isinstance(gateway, Gateway)
    config = {k: v for k, v in gateway.as_dict().items() if k != "name"}
    conn.execute(
        """
        INSERT INTO pbx.platform_gateways (name, config) VALUES (%s, %s)
        ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = now()
        """,
        (gateway.name, Jsonb(config)),
    )


def _history(
    conn: psycopg.Connection,
    changes: Sequence[Change],
    revision: GitRevision | None,
    host: str,
    *,
    result: str,
    error: str | None = None,
) -> None:
    record_history(
        conn,
        tenant_id=PLATFORM,
        action="apply",
        result=result,
        revision=revision,
        host=host,
        changes=changes_json(changes),
        error=error,
    )


def _record_failure(
    conn: psycopg.Connection,
    changes: Sequence[Change],
    revision: GitRevision | None,
    host: str,
    error: PlatformApplyError,
) -> None:
    try:
        with conn.transaction():
            _history(conn, changes, revision, host, result="failed", error=error.message)
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        log.error("platform: recording the failure failed: %s", describe_db_error(exc))


def sync_platform_admins(
    conn: psycopg.Connection, admins: Mapping[str, str], *, host: str = "local"
) -> bool:
    """Make the platform admins exactly ``{email: name}`` (plan and apply, as a pass does);
    True when they changed. For set-up outside a pass (tests, bootstrap scripts)."""
    actual = read_platform(conn)
    desired = replace(PlatformState.of_admins(admins), gateways=actual.gateways)
    changes = plan_platform(desired, actual)
    report = apply_platform(conn, changes, desired=desired, revision=None, host=host)
    if report.error is not None:
        raise report.error
    return report.result == "applied"


@translated
def read_platform_admins(conn: psycopg.Connection) -> dict[str, str]:
    """``{email: name}`` of the applied super admins."""
    if not control_schema_exists(conn):
        return {}
    rows = conn.execute("SELECT email, name FROM pbx.platform_admins ORDER BY email").fetchall()
    return dict(rows)


@translated
def read_platform(conn: psycopg.Connection) -> PlatformState:
    """The applied platform: super admins and carrier gateways."""
    if not control_schema_exists(conn):
        return PlatformState()
    admins = PlatformState.of_admins(read_platform_admins(conn))
    if not _table_exists(conn, "pbx.platform_gateways"):
        return admins  # a database migrated by an older release (read-only tools)
    rows = conn.execute("SELECT name, config FROM pbx.platform_gateways ORDER BY name").fetchall()
    return admins.with_gateways(_gateway(name, config) for name, config in rows)


def _gateway(name: str, config: Mapping[str, Any]) -> Gateway:
    known = {f.name for f in fields(Gateway)} - {"name"}
    return Gateway(name=name, **{k: v for k, v in config.items() if k in known})


def _table_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])

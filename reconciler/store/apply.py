"""Apply a ``Plan`` to PostgreSQL: one transaction per tenant (or per claim group), history
and registry kept.

Per group (a tenant, or tenants whose changes pass a domain or DID between them: see
``claims``), in one transaction: take each tenant's advisory lock, re-read it and re-plan it
against ``desired``; if that is empty a concurrent apply already did the work
(``unchanged``), if it differs from the given plan the plan is stale (``StalePlan``), else
write its changes in plan order (``writer``); then check the cross-tenant claims, mark the
registry applied at ``revision``, append a history row and ``NOTIFY pbx_applied, '<tenant
id>'`` (delivered at commit, for HA followers). A failure rolls back the whole group only;
it is recorded (history row, registry ``attempted_revision`` and ``last_error``) in a
transaction of its own and the next group proceeds. A lost connection stops the whole apply
(``StoreUnavailable``).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import psycopg
from psycopg_pool import ConnectionPool

from reconciler.core.model import State
from reconciler.core.plan import Change, Plan, plan
from reconciler.core.revision import GitRevision
from reconciler.store.claims import claim_groups, renamed_from, verify_claims
from reconciler.store.credentials import CREDENTIALS_GRACE
from reconciler.store.errors import (
    StalePlan,
    TenantApplyError,
    describe_db_error,
    require_autocommit,
    unavailable,
    writing,
)
from reconciler.store.history import changes_json, record_history
from reconciler.store.layout import APPLIED_CHANNEL
from reconciler.store.locks import lock_tenant
from reconciler.store.migrations import migrate
from reconciler.store.read import control_schema_exists, read_state
from reconciler.store.writer import TenantWriter

log = logging.getLogger(__name__)

Target = psycopg.Connection | ConnectionPool


@dataclass(frozen=True)
class ApplyReport:
    """Outcome per tenant of the plan: committed, already there, or rolled back."""

    applied: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    failed: Mapping[str, TenantApplyError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _Context:
    desired: State
    revision: GitRevision | None
    host: str
    digests: Mapping[str, str]
    credentials_grace: timedelta = CREDENTIALS_GRACE


_Outcome = Literal["applied", "unchanged"] | TenantApplyError


def apply_plan(
    target: Target,
    changes: Plan,
    *,
    desired: State,
    revision: GitRevision | None = None,
    host: str | None = None,
    digests: Mapping[str, str] | None = None,
    frozen: Iterable[str] = (),
    workers: int = 1,
    credentials_grace: timedelta = CREDENTIALS_GRACE,
) -> ApplyReport:
    """Apply ``changes`` (made by ``plan(desired, read_state(...))``) group by group.

    ``digests``: spec digest per tenant, stored in the registry. ``frozen``: tenants with an
    invalid spec (not marked as applied at ``revision``). ``workers`` > 1 with a pool applies
    that many groups in parallel (each still in its own transaction). ``credentials_grace``:
    how long a deleted extension's credentials are kept for its return.
    """
    ctx = _Context(
        desired, revision, host or socket.gethostname(), digests or {}, credentials_grace
    )
    with _connection(target) as conn:
        migrate(conn)
    by_tenant: dict[str, tuple[Change, ...]] = {}
    for change in changes.changes:  # one pass: Plan.for_tenant per tenant would be quadratic
        by_tenant[change.tenant] = (*by_tenant.get(change.tenant, ()), change)
    groups = claim_groups(changes)
    outcomes: dict[str, _Outcome] = {}
    if isinstance(target, ConnectionPool) and workers > 1:

        def run(group: tuple[str, ...]) -> dict[str, _Outcome]:
            with _connection(target) as conn:
                return _apply_group(conn, group, by_tenant, ctx)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbx-apply") as pool:
            for result in pool.map(run, groups):
                outcomes.update(result)
    else:
        with _connection(target) as conn:
            for group in groups:
                outcomes.update(_apply_group(conn, group, by_tenant, ctx))
    failed = {t: o for t, o in outcomes.items() if isinstance(o, TenantApplyError)}
    skip = set(frozen) | set(failed) | {t for t, o in outcomes.items() if o == "applied"}
    with _connection(target) as conn:
        _mark_current(conn, [t for t in sorted(desired) if t not in skip], ctx)
    return ApplyReport(
        applied=tuple(t for t, o in outcomes.items() if o == "applied"),
        unchanged=tuple(t for t, o in outcomes.items() if o == "unchanged"),
        failed=failed,
    )


def record_attempt(
    conn: psycopg.Connection, tenant_ids: Iterable[str], revision: GitRevision | None
) -> None:
    """Mark ``revision`` as the last attempted one of registered tenants, before applying:
    a crash mid-apply still leaves "attempted X, applied Y" for status to show."""
    ids = sorted(set(tenant_ids))
    if not ids or not control_schema_exists(conn):
        return
    commit, dirty = (revision.commit, revision.dirty) if revision else (None, None)
    with writing(conn, "recording the attempted revision"):
        conn.execute(
            """
            UPDATE pbx.tenants SET attempted_revision = %s, attempted_dirty = %s,
                                   attempted_at = now()
            WHERE id = ANY(%s)
            """,
            (commit, dirty, ids),
        )


@contextmanager
def _connection(target: Target) -> Iterator[psycopg.Connection]:
    if isinstance(target, ConnectionPool):
        try:
            with target.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        return
    require_autocommit(target)
    yield target


def _apply_group(
    conn: psycopg.Connection,
    group: tuple[str, ...],
    by_tenant: Mapping[str, tuple[Change, ...]],
    ctx: _Context,
) -> dict[str, _Outcome]:
    outcomes: dict[str, _Outcome] = {}
    try:
        with conn.transaction():
            # Statements whose results nobody reads are pipelined (one round trip each
            # batch, not one per statement: a cold apply of thousands of tenants on a
            # loaded server waits mostly on round trips). COPY cannot be pipelined.
            with conn.pipeline():
                conn.execute("SET CONSTRAINTS ALL DEFERRED")  # claims: checked below, by name
                locked = {t for t in group} | {
                    old for t in group if (old := renamed_from(by_tenant[t])) is not None
                }
                for tenant_id in sorted(locked):  # one order for every writer: no deadlock
                    lock_tenant(conn, tenant_id)
            for tenant_id in group:
                outcomes[tenant_id] = _write_tenant(conn, tenant_id, by_tenant[tenant_id], ctx)
            written = [t for t, o in outcomes.items() if o == "applied"]
            verify_claims(conn, written)
            with conn.pipeline():
                for tenant_id in written:
                    _mark_applied(conn, tenant_id, ctx)
                    record_history(
                        conn,
                        tenant_id=tenant_id,
                        action="apply",
                        result="applied",
                        revision=ctx.revision,
                        host=ctx.host,
                        changes=changes_json(by_tenant[tenant_id]),
                    )
                    conn.execute("SELECT pg_notify(%s, %s)", (APPLIED_CHANNEL, tenant_id))
    except TenantApplyError as exc:
        error = exc
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        error = TenantApplyError(group[0], describe_db_error(exc), sqlstate=exc.sqlstate)
    except Exception as exc:
        # A bug must not stop the other tenants either; it is logged with its traceback.
        log.exception("tenants %s: unexpected error while applying", ",".join(group))
        error = TenantApplyError(group[0], f"unexpected {type(exc).__name__}: {exc}")
    else:
        for tenant_id in written:
            log.info("tenant %s: applied %d change(s)", tenant_id, len(by_tenant[tenant_id]))
        return outcomes
    return {t: _failed(conn, t, group, error, by_tenant[t], ctx) for t in group}


def _write_tenant(
    conn: psycopg.Connection, tenant_id: str, changes: tuple[Change, ...], ctx: _Context
) -> _Outcome:
    """Re-plan one tenant under its lock and write it; ``unchanged`` when another writer
    already did."""
    old_id = renamed_from(changes)
    ids = [tenant_id] if old_id is None else [tenant_id, old_id]
    actual = read_state(conn, tenants=ids)
    want = ctx.desired.get(tenant_id)
    expected = plan({tenant_id: want} if want else {}, actual).changes
    if not expected:
        return "unchanged"
    if expected != changes:
        raise StalePlan(tenant_id, "the database changed since this plan was made; plan again")
    tenant = want.tenant if want else actual[tenant_id].tenant
    writer = TenantWriter(conn, tenant_id, tenant.domain, credentials_grace=ctx.credentials_grace)
    writer.write(changes)
    return "applied"


def _failed(
    conn: psycopg.Connection,
    tenant_id: str,
    group: tuple[str, ...],
    error: TenantApplyError,
    changes: tuple[Change, ...],
    ctx: _Context,
) -> TenantApplyError:
    if error.tenant_id != tenant_id:
        error = TenantApplyError(
            tenant_id,
            f"rolled back with {error.tenant_id} (applied together: {', '.join(group)}): "
            f"{error.message}",
            sqlstate=error.sqlstate,
        )
    log.warning("tenant %s: apply failed and was rolled back: %s", tenant_id, error.message)
    _record_failure(conn, tenant_id, changes, error, ctx)
    return error


def _mark_applied(conn: psycopg.Connection, tenant_id: str, ctx: _Context) -> None:
    commit, dirty = (ctx.revision.commit, ctx.revision.dirty) if ctx.revision else (None, None)
    conn.execute(
        """
        UPDATE pbx.tenants
        SET spec_digest = coalesce(%(digest)s, spec_digest),
            applied_revision = %(commit)s, applied_dirty = %(dirty)s, applied_at = now(),
            attempted_revision = %(commit)s, attempted_dirty = %(dirty)s, attempted_at = now(),
            last_result = 'applied', last_error = NULL, updated_at = now()
        WHERE id = %(id)s
        """,
        {"digest": ctx.digests.get(tenant_id), "commit": commit, "dirty": dirty, "id": tenant_id},
    )


def _mark_current(conn: psycopg.Connection, tenant_ids: Sequence[str], ctx: _Context) -> None:
    """Tenants already matching their spec are recorded as applied at this revision too."""
    if not tenant_ids:
        return
    commit, dirty = (ctx.revision.commit, ctx.revision.dirty) if ctx.revision else (None, None)
    with writing(conn, "recording the applied revision"):
        conn.execute(
            """
            UPDATE pbx.tenants AS t
            SET spec_digest = coalesce(d.digest, t.spec_digest),
                applied_revision = %(commit)s, applied_dirty = %(dirty)s, applied_at = now(),
                attempted_revision = %(commit)s, attempted_dirty = %(dirty)s,
                attempted_at = now(), last_result = 'applied', last_error = NULL
            FROM unnest(%(ids)s::text[], %(digests)s::text[]) AS d(id, digest)
            WHERE t.id = d.id
              AND (t.applied_revision IS DISTINCT FROM %(commit)s
                   OR t.applied_dirty IS DISTINCT FROM %(dirty)s
                   OR (d.digest IS NOT NULL AND t.spec_digest IS DISTINCT FROM d.digest)
                   OR t.last_result IS DISTINCT FROM 'applied')
            """,
            {
                "commit": commit,
                "dirty": dirty,
                "ids": list(tenant_ids),
                "digests": [ctx.digests.get(t) for t in tenant_ids],
            },
        )


def _record_failure(
    conn: psycopg.Connection,
    tenant_id: str,
    changes: tuple[Change, ...],
    error: TenantApplyError,
    ctx: _Context,
) -> None:
    commit, dirty = (ctx.revision.commit, ctx.revision.dirty) if ctx.revision else (None, None)
    try:
        with conn.transaction():
            conn.execute(
                """
                UPDATE pbx.tenants
                SET attempted_revision = %s, attempted_dirty = %s, attempted_at = now(),
                    last_result = 'failed', last_error = %s
                WHERE id = %s
                """,
                (commit, dirty, error.message, tenant_id),
            )
            record_history(
                conn,
                tenant_id=tenant_id,
                action="apply",
                result="failed",
                revision=ctx.revision,
                host=ctx.host,
                changes=changes_json(changes),
                error=error.message,
            )
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        log.error("tenant %s: recording the failure failed: %s", tenant_id, describe_db_error(exc))

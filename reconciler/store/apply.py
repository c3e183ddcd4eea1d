"""Apply a ``Plan`` to PostgreSQL: one transaction per tenant, history and registry kept.

Per tenant, in one transaction: take the tenant's advisory lock, re-read the tenant and re-plan
it against ``desired``; if that is empty a concurrent apply already did the work (``unchanged``),
if it differs from the given plan the plan is stale (``StalePlan``), else write the changes in
plan order (batched per kind with ``executemany``), mark the registry applied at ``revision``,
append a history row and ``NOTIFY pbx_applied, '<tenant id>'`` (delivered at commit, for HA
followers). A failure rolls back that tenant only; it is recorded (history row, registry
``attempted_revision`` and ``last_error``) in a transaction of its own and the next tenant
proceeds. A lost connection stops the whole apply (``StoreUnavailable``).

Extensions created get a generated password (see ``credentials``); updates keep it; a domain
change re-hashes every a1-hash of the tenant. New DIDs are claimed in the global index
``pbx.did_index``, so a DID can belong to one tenant only.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.abc import Query
from psycopg_pool import ConnectionPool

from reconciler.core.model import Extension, InboundNumber, Kind, Record, State, Tenant, User
from reconciler.core.plan import Action, Change, Plan, plan
from reconciler.core.revision import GitRevision
from reconciler.store.credentials import credential_rows, rehash_for_domain
from reconciler.store.errors import (
    StalePlan,
    StoreError,
    TenantApplyError,
    describe_db_error,
    require_autocommit,
    unavailable,
)
from reconciler.store.history import changes_json, record_history
from reconciler.store.layout import APPLIED_CHANNEL, tenant_schema
from reconciler.store.locks import lock_tenant
from reconciler.store.migrations import create_tenant_schema, migrate
from reconciler.store.read import control_schema_exists, read_tenant_state
from reconciler.store.tables import (
    SIP_CREDENTIALS,
    TABLES,
    TENANT_COLUMNS,
    USER_EXTENSIONS,
    Table,
)

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
) -> ApplyReport:
    """Apply ``changes`` (made by ``plan(desired, read_state(...))``) tenant by tenant.

    ``digests``: spec digest per tenant, stored in the registry. ``frozen``: tenants with an
    invalid spec (not marked as applied at ``revision``). ``workers`` > 1 with a pool applies
    that many tenants in parallel (each still in its own transaction).
    """
    ctx = _Context(desired, revision, host or socket.gethostname(), digests or {})
    with _connection(target) as conn:
        migrate(conn)
    by_tenant: dict[str, list[Change]] = {}
    for change in changes.changes:  # one pass: Plan.for_tenant per tenant would be quadratic
        by_tenant.setdefault(change.tenant, []).append(change)
    outcomes: dict[str, _Outcome] = {}
    if isinstance(target, ConnectionPool) and workers > 1:

        def run(tenant_id: str) -> _Outcome:
            with _connection(target) as conn:
                return _apply_tenant(conn, tenant_id, tuple(by_tenant[tenant_id]), ctx)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbx-apply") as pool:
            for tenant_id, outcome in zip(by_tenant, pool.map(run, by_tenant), strict=True):
                outcomes[tenant_id] = outcome
    else:
        with _connection(target) as conn:
            for tenant_id, tenant_changes in by_tenant.items():
                outcomes[tenant_id] = _apply_tenant(conn, tenant_id, tuple(tenant_changes), ctx)
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
    try:
        conn.execute(
            """
            UPDATE pbx.tenants SET attempted_revision = %s, attempted_dirty = %s,
                                   attempted_at = now()
            WHERE id = ANY(%s)
            """,
            (commit, dirty, ids),
        )
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        raise StoreError(
            f"recording the attempted revision failed: {describe_db_error(exc)}"
        ) from exc


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


def _apply_tenant(
    conn: psycopg.Connection, tenant_id: str, changes: tuple[Change, ...], ctx: _Context
) -> _Outcome:
    try:
        with conn.transaction():
            lock_tenant(conn, tenant_id)
            actual = read_tenant_state(conn, tenant_id)
            want = ctx.desired.get(tenant_id)
            expected = plan(
                {tenant_id: want} if want else {}, {tenant_id: actual} if actual else {}
            ).changes
            if not expected:
                return "unchanged"
            if expected != changes:
                raise StalePlan(
                    tenant_id, "the database changed since this plan was made; plan again"
                )
            tenant = want.tenant if want else actual.tenant if actual else None
            assert tenant is not None
            _TenantWriter(conn, tenant_id, tenant.domain).write(changes)
            _mark_applied(conn, tenant_id, ctx)
            record_history(
                conn,
                tenant_id=tenant_id,
                action="apply",
                result="applied",
                revision=ctx.revision,
                host=ctx.host,
                changes=changes_json(changes),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (APPLIED_CHANNEL, tenant_id))
    except TenantApplyError as exc:
        error = exc
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        error = TenantApplyError(tenant_id, describe_db_error(exc), sqlstate=exc.sqlstate)
    except Exception as exc:
        # A bug must not stop the other tenants either; it is logged with its traceback.
        log.exception("tenant %s: unexpected error while applying", tenant_id)
        error = TenantApplyError(tenant_id, f"unexpected {type(exc).__name__}: {exc}")
    else:
        log.info("tenant %s: applied %d change(s)", tenant_id, len(changes))
        return "applied"
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
    try:
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
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        raise StoreError(
            f"recording the applied revision failed: {describe_db_error(exc)}"
        ) from exc


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


class _TenantWriter:
    """Writes one tenant's changes, in plan order, inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection, tenant_id: str, domain: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.domain = domain
        self.schema = sql.Identifier(tenant_schema(tenant_id))

    def write(self, changes: Sequence[Change]) -> None:
        # Consecutive changes of one kind and phase (upsert or delete) are independent of
        # each other, so they run as batches: creates, then updates, then deletes.
        for (kind, _), group in groupby(changes, key=lambda c: (c.kind, c.action is Action.DELETE)):
            batch = list(group)
            for action in Action:
                records = [c for c in batch if c.action is action]
                if records:
                    self._write(kind, action, records)

    def _write(self, kind: Kind, action: Action, changes: list[Change]) -> None:
        if kind is Kind.TENANT:
            for change in changes:
                self._tenant(change)
            return
        table = TABLES[kind]
        if action is Action.CREATE:
            records = _records(changes, after=True)
            self._copy(table.name, table.columns, [table.to_row(r) for r in records])
            _AFTER_CREATE.get(kind, _nothing)(self, records)
        elif action is Action.UPDATE:
            records = _records(changes, after=True)
            values = [c for c in table.columns if c not in table.key]
            if values:
                self._many(
                    self._update(table, values),
                    [_update_row(table, values, r) for r in records],
                )
            _AFTER_UPDATE.get(kind, _nothing)(self, changes)
        else:
            records = _records(changes, after=False)
            _BEFORE_DELETE.get(kind, _nothing)(self, records)
            self._many(self._delete(table), [table.key_of(r) for r in records])

    # --- statements -----------------------------------------------------------------------

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.schema, sql.Identifier(name))

    def _copy(self, table: str, columns: Sequence[str], rows: Sequence[tuple[object, ...]]) -> None:
        """Bulk insert: COPY is several times cheaper than row-by-row INSERTs, client and
        server side, which is what makes a cold apply of a thousand tenants fit a minute."""
        if not rows:
            return
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._table(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def _update(self, table: Table, values: list[str]) -> sql.Composed:
        return sql.SQL("UPDATE {} SET {} WHERE {}").format(
            self._table(table.name),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values),
            _key_match(table.key),
        )

    def _delete(self, table: Table) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE {}").format(
            self._table(table.name), _key_match(table.key)
        )

    def _many(self, query: Query, rows: Sequence[tuple[object, ...]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(query, rows)

    # --- tenant -----------------------------------------------------------------------------

    def _tenant(self, change: Change) -> None:
        if change.action is Action.DELETE or not isinstance(change.after, Tenant):
            raise TenantApplyError(
                self.tenant_id, "tenants are never deleted by apply: they are orphaned, then pruned"
            )
        tenant = change.after
        self._check_domain_free(tenant.domain)
        values = [getattr(tenant, c) for c in TENANT_COLUMNS]
        if change.action is Action.CREATE:
            create_tenant_schema(self.conn, self.tenant_id)
            self.conn.execute(
                sql.SQL("INSERT INTO pbx.tenants ({}, schema_name) VALUES ({}, %s)").format(
                    sql.SQL(", ").join(map(sql.Identifier, TENANT_COLUMNS)),
                    sql.SQL(", ").join(sql.Placeholder() * len(TENANT_COLUMNS)),
                ),
                [*values, tenant_schema(self.tenant_id)],
            )
            return
        self.conn.execute(
            sql.SQL("UPDATE pbx.tenants SET {}, updated_at = now() WHERE id = %s").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(c)) for c in TENANT_COLUMNS[1:]
                )
            ),
            [*values[1:], self.tenant_id],
        )
        before = change.before
        if isinstance(before, Tenant) and before.domain != tenant.domain:
            rehash_for_domain(self.conn, self.tenant_id, tenant.domain)

    def _check_domain_free(self, domain: str) -> None:
        row = self.conn.execute(
            "SELECT id FROM pbx.tenants WHERE lower(domain) = lower(%s) AND id <> %s",
            (domain, self.tenant_id),
        ).fetchone()
        if row:
            raise TenantApplyError(
                self.tenant_id, f"domain '{domain}' is already used by tenant {row[0]}"
            )

    # --- per-kind extras --------------------------------------------------------------------

    def _extensions_created(self, records: Sequence[object]) -> None:
        numbers = [r.number for r in records if isinstance(r, Extension)]
        rows = credential_rows(numbers, self.domain)
        try:
            self._copy(SIP_CREDENTIALS, ("extension", "password", "a1_hash"), rows)
        except psycopg.Error as exc:
            failure: psycopg.Error | None = exc
        else:
            failure = None
        if failure is not None:
            # These rows carry passwords and the driver's error quotes them (DETAIL, CONTEXT):
            # the error raised here is built outside the handler so it neither wraps nor
            # chains (``__context__``) the original.
            raise TenantApplyError(
                self.tenant_id,
                f"storing SIP credentials failed: {describe_db_error(failure)}",
                sqlstate=failure.sqlstate,
            )

    def _users_created(self, records: Sequence[object]) -> None:
        self._insert_links([r for r in records if isinstance(r, User)])

    def _users_updated(self, changes: Sequence[Change]) -> None:
        relinked = [
            c.after
            for c in changes
            if isinstance(c.before, User)
            and isinstance(c.after, User)
            and c.before.extensions != c.after.extensions
        ]
        if relinked:
            self.conn.execute(
                sql.SQL("DELETE FROM {} WHERE user_email = ANY(%s)").format(
                    self._table(USER_EXTENSIONS)
                ),
                ([u.email for u in relinked],),
            )
            self._insert_links(relinked)

    def _insert_links(self, users: list[User]) -> None:
        self._copy(
            USER_EXTENSIONS,
            ("user_email", "extension"),
            [(u.email, number) for u in users for number in u.extensions],
        )

    def _dids_created(self, records: Sequence[object]) -> None:
        numbers = [r.number for r in records if isinstance(r, InboundNumber)]
        taken = self.conn.execute(
            "SELECT number, tenant_id FROM pbx.did_index WHERE number = ANY(%s) AND tenant_id <> %s"
            " ORDER BY number",
            (numbers, self.tenant_id),
        ).fetchall()
        if taken:
            claims = ", ".join(f"{number} (tenant {owner})" for number, owner in taken)
            raise TenantApplyError(
                self.tenant_id, f"inbound number already claimed by another tenant: {claims}"
            )
        self._many(
            "INSERT INTO pbx.did_index (number, tenant_id) VALUES (%s, %s)",
            [(number, self.tenant_id) for number in numbers],
        )

    def _dids_deleted(self, records: Sequence[object]) -> None:
        self.conn.execute(
            "DELETE FROM pbx.did_index WHERE number = ANY(%s) AND tenant_id = %s",
            ([r.number for r in records if isinstance(r, InboundNumber)], self.tenant_id),
        )


def _nothing(writer: _TenantWriter, items: Sequence[object]) -> None:
    return None


def _records(changes: Sequence[Change], *, after: bool) -> list[Record]:
    """The records a batch of changes writes (``after``) or removes (``before``)."""
    records: list[Record] = []
    for change in changes:
        record = change.after if after else change.before
        assert record is not None, "plan invariant: creates/updates carry after, deletes before"
        records.append(record)
    return records


_AFTER_CREATE: dict[Kind, Callable[[_TenantWriter, Sequence[Any]], None]] = {
    Kind.EXTENSION: _TenantWriter._extensions_created,
    Kind.USER: _TenantWriter._users_created,
    Kind.INBOUND_NUMBER: _TenantWriter._dids_created,
}
_AFTER_UPDATE: dict[Kind, Callable[[_TenantWriter, Sequence[Any]], None]] = {
    Kind.USER: _TenantWriter._users_updated,
}
_BEFORE_DELETE: dict[Kind, Callable[[_TenantWriter, Sequence[Any]], None]] = {
    Kind.INBOUND_NUMBER: _TenantWriter._dids_deleted,
}


def _key_match(key: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in key)


def _update_row(table: Table, values: list[str], record: object) -> tuple[object, ...]:
    row = dict(zip(table.columns, table.to_row(record), strict=True))
    return tuple(row[c] for c in values) + tuple(row[c] for c in table.key)

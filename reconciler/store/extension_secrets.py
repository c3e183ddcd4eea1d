"""A per-extension secret in the tenant schema (the SIP password, the voicemail PIN): its
plain value, revealed only to its owner, beside the digest FreeSWITCH is served,
``md5("<number>:<domain>:<secret>")``. Both kinds are generated, shown, rotated and
rehashed for a new domain the same way; ``credentials`` and ``voicemail_pins`` name their
table and columns (``ExtensionSecret``) and keep what is their own.

Neither value ever enters a record, a plan, a log line, an exception or a history row.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from reconciler.store.errors import (
    StoreError,
    UnknownExtension,
    UnknownTenant,
    describe_db_error,
    unavailable,
)
from reconciler.store.history import record_history
from reconciler.store.layout import APPLIED_CHANNEL, tenant_schema
from reconciler.store.locks import lock_tenant
from reconciler.store.read import control_schema_exists


@dataclass(frozen=True, slots=True)
class ExtensionSecret:
    """Where one kind of secret lives and how it is named in history and errors."""

    table: str
    value_column: str
    """The plain value's column."""
    digest_column: str
    """The served digest's column."""
    history_kind: str
    """The ``kind`` of its rotation's history change."""
    called: str
    """How an error names it: ``rotating <called> of 101 failed``."""
    new: Callable[[], str]
    """A fresh value."""


def a1_hash(username: str, domain: str, password: str) -> str:
    """SIP digest HA1 (RFC 2617), lowercase hex: what FreeSWITCH's ``a1-hash`` param wants."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(f"{username}:{domain}:{password}".encode())
    return digest.hexdigest()


def fresh_rows(
    kind: ExtensionSecret, numbers: Iterable[str], domain: str
) -> list[tuple[str, str, str]]:
    """Fresh ``(extension, secret, digest)`` rows for newly created extensions."""
    rows = []
    for number in numbers:
        value = kind.new()
        rows.append((number, value, a1_hash(number, domain, value)))
    return rows


def rehash_secrets(
    conn: psycopg.Connection, kind: ExtensionSecret, tenant_id: str, domain: str
) -> None:
    """A domain change invalidates every digest of the tenant (the realm is hashed in)."""
    table = secret_table(tenant_id, kind.table)
    secret, digest = sql.Identifier(kind.value_column), sql.Identifier(kind.digest_column)
    rows = conn.execute(sql.SQL("SELECT extension, {} FROM {}").format(secret, table)).fetchall()
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("UPDATE {} SET {} = %s WHERE extension = %s").format(table, digest),
            [(a1_hash(number, domain, value), number) for number, value in rows],
        )


def read_secret(
    conn: psycopg.Connection, kind: ExtensionSecret, tenant_id: str, extension: str
) -> tuple[str, str]:
    """``(the tenant's domain, the secret)`` of one extension, for its owner."""
    try:
        domain = tenant_domain(conn, tenant_id)
        row = conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE extension = %s").format(
                sql.Identifier(kind.value_column), secret_table(tenant_id, kind.table)
            ),
            (extension,),
        ).fetchone()
    except psycopg.OperationalError as exc:
        raise unavailable(exc) from exc
    if row is None:
        raise UnknownExtension(tenant_id, extension)
    return domain, str(row[0])


def rotate_secret(
    conn: psycopg.Connection,
    kind: ExtensionSecret,
    tenant_id: str,
    extension: str,
    *,
    host: str | None = None,
) -> None:
    """Replace one extension's secret and its digest; followers are told to re-serve."""
    failure: str | None = None
    try:
        with conn.transaction():
            lock_tenant(conn, tenant_id)
            domain = tenant_domain(conn, tenant_id)
            ((number, value, hashed),) = fresh_rows(kind, [extension], domain)
            cur = conn.execute(
                sql.SQL(
                    "UPDATE {} SET {} = %s, {} = %s, rotated_at = now() WHERE extension = %s"
                ).format(
                    secret_table(tenant_id, kind.table),
                    sql.Identifier(kind.value_column),
                    sql.Identifier(kind.digest_column),
                ),
                (value, hashed, number),
            )
            if cur.rowcount != 1:
                raise UnknownExtension(tenant_id, extension)
            record_history(
                conn,
                tenant_id=tenant_id,
                action="rotate",
                result="applied",
                revision=None,
                host=host or socket.gethostname(),
                changes=Jsonb([{"kind": kind.history_kind, "key": extension, "action": "rotate"}]),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (APPLIED_CHANNEL, tenant_id))
    except psycopg.OperationalError as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        failure = describe_db_error(exc)
    except psycopg.Error as exc:
        failure = describe_db_error(exc)
    if failure is not None:
        # Raised outside the handler: the statement carried the new secret and the
        # driver's error may quote it, so it must not ride along as cause or context.
        raise StoreError(
            f"tenant {tenant_id}: rotating {kind.called} of {extension} failed: {failure}"
        )


def tenant_domain(conn: psycopg.Connection, tenant_id: str) -> str:
    """The registered domain of a tenant (UnknownTenant when it is not registered)."""
    row = (
        conn.execute("SELECT domain FROM pbx.tenants WHERE id = %s", (tenant_id,)).fetchone()
        if control_schema_exists(conn)
        else None
    )
    if row is None:
        raise UnknownTenant(tenant_id)
    return str(row[0])


def secret_table(tenant_id: str, name: str) -> sql.Composed:
    """``tenant_<id>.<name>``, quoted."""
    return sql.SQL("{}.{}").format(sql.Identifier(tenant_schema(tenant_id)), sql.Identifier(name))

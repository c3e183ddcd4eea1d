"""Voicemail PINs: generated on extension creation, stored only in the tenant schema.

A PIN is 6 decimal digits drawn with ``secrets`` (a phone keypad types nothing else;
mod_voicemail allows a few attempts per call, see ``voicemail.conf``'s
``max-login-attempts``, so 10^6 is out of reach of guessing over calls). FreeSWITCH is
served only ``vm-a1-hash = md5("<number>:<domain>:<pin>")``, which mod_voicemail checks the
entered PIN against (``mod_voicemail.c``: ``vm-a1-hash`` overrides the SIP ``a1-hash``,
which would otherwise let the SIP password open the box). The plain PIN leaves the
database only through ``show_pin`` (its owner's reveal). Neither value ever enters a record,
a plan, a log line, an exception or a history row.

A deleted extension's PIN goes with it (cascade); a re-added one gets a new PIN.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterable

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from reconciler.store.credentials import a1_hash, tenant_domain
from reconciler.store.errors import (
    StoreError,
    UnknownExtension,
    describe_db_error,
    unavailable,
)
from reconciler.store.history import record_history
from reconciler.store.layout import APPLIED_CHANNEL, tenant_schema
from reconciler.store.locks import lock_tenant
from reconciler.store.tables import VOICEMAIL_PINS

PIN_LENGTH = 6


def new_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(PIN_LENGTH))


def pin_rows(numbers: Iterable[str], domain: str) -> list[tuple[str, str, str]]:
    """Fresh ``(extension, pin, vm_a1_hash)`` rows for newly created extensions."""
    rows = []
    for number in numbers:
        pin = new_pin()
        rows.append((number, pin, a1_hash(number, domain, pin)))
    return rows


def rehash_pins_for_domain(conn: psycopg.Connection, tenant_id: str, domain: str) -> None:
    """A domain change invalidates every PIN digest of the tenant (the realm is hashed in)."""
    table = _pins_table(tenant_id)
    rows = conn.execute(sql.SQL("SELECT extension, pin FROM {}").format(table)).fetchall()
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("UPDATE {} SET vm_a1_hash = %s WHERE extension = %s").format(table),
            [(a1_hash(number, domain, pin), number) for number, pin in rows],
        )


def show_pin(conn: psycopg.Connection, tenant_id: str, extension: str) -> str:
    """The voicemail PIN of one extension, for its owner."""
    try:
        tenant_domain(conn, tenant_id)
        row = conn.execute(
            sql.SQL("SELECT pin FROM {} WHERE extension = %s").format(_pins_table(tenant_id)),
            (extension,),
        ).fetchone()
    except psycopg.OperationalError as exc:
        raise unavailable(exc) from exc
    if row is None:
        raise UnknownExtension(tenant_id, extension)
    return str(row[0])


def rotate_pin(
    conn: psycopg.Connection, tenant_id: str, extension: str, *, host: str | None = None
) -> None:
    """Replace one extension's PIN and its digest; followers are told to re-serve."""
    failure: str | None = None
    try:
        with conn.transaction():
            lock_tenant(conn, tenant_id)
            domain = tenant_domain(conn, tenant_id)
            ((number, pin, hashed),) = pin_rows([extension], domain)
            cur = conn.execute(
                sql.SQL(
                    "UPDATE {} SET pin = %s, vm_a1_hash = %s, rotated_at = now() "
                    "WHERE extension = %s"
                ).format(_pins_table(tenant_id)),
                (pin, hashed, number),
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
                changes=Jsonb([{"kind": "voicemail_pin", "key": extension, "action": "rotate"}]),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (APPLIED_CHANNEL, tenant_id))
    except psycopg.OperationalError as exc:
        if conn.broken or conn.closed:
            raise unavailable(exc) from exc
        failure = describe_db_error(exc)
    except psycopg.Error as exc:
        failure = describe_db_error(exc)
    if failure is not None:
        # Raised outside the handler: the statement carried the new PIN.
        raise StoreError(
            f"tenant {tenant_id}: rotating the voicemail PIN of {extension} failed: {failure}"
        )


def _pins_table(tenant_id: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(
        sql.Identifier(tenant_schema(tenant_id)), sql.Identifier(VOICEMAIL_PINS)
    )

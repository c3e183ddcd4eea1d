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
from collections.abc import Iterable

import psycopg

from reconciler.store.extension_secrets import (
    ExtensionSecret,
    fresh_rows,
    read_secret,
    rehash_secrets,
    rotate_secret,
)
from reconciler.store.tables import VOICEMAIL_PINS

PIN_LENGTH = 6


def new_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(PIN_LENGTH))


VOICEMAIL_PIN = ExtensionSecret(
    table=VOICEMAIL_PINS,
    value_column="pin",
    digest_column="vm_a1_hash",
    history_kind="voicemail_pin",
    called="the voicemail PIN",
    new=lambda: new_pin(),  # looked up per call, so a test may replace it
)


def pin_rows(numbers: Iterable[str], domain: str) -> list[tuple[str, str, str]]:
    """Fresh ``(extension, pin, vm_a1_hash)`` rows for newly created extensions."""
    return fresh_rows(VOICEMAIL_PIN, numbers, domain)


def rehash_pins_for_domain(conn: psycopg.Connection, tenant_id: str, domain: str) -> None:
    """A domain change invalidates every PIN digest of the tenant (the realm is hashed in)."""
    rehash_secrets(conn, VOICEMAIL_PIN, tenant_id, domain)


def show_pin(conn: psycopg.Connection, tenant_id: str, extension: str) -> str:
    """The voicemail PIN of one extension, for its owner."""
    return read_secret(conn, VOICEMAIL_PIN, tenant_id, extension)[1]


def rotate_pin(
    conn: psycopg.Connection, tenant_id: str, extension: str, *, host: str | None = None
) -> None:
    """Replace one extension's PIN and its digest; followers are told to re-serve."""
    rotate_secret(conn, VOICEMAIL_PIN, tenant_id, extension, host=host)

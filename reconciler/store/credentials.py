"""SIP credentials: generated on extension creation, stored only in the tenant schema.

The password is 32 characters drawn with ``secrets`` from a phone-friendly alphabet (letters
and digits, without the look-alikes 0/O, 1/l/I): about 186 bits, nothing a phone's config
tool or a person typing it from a screen trips over (a leading ``-`` or ``_`` did). FreeSWITCH is served only the
digest ``a1_hash = md5("<number>:<domain>:<password>")``; the plain password leaves the
database only through ``show_credentials`` (phone provisioning). Neither value ever enters a
record, a plan, a log line, an exception or a history row.

A deleted extension's password and a1-hash are kept for a grace period (``retired_credentials``
in the tenant schema, default 7 days): a file caught mid-write that drops extensions, or a
removal undone, gives the extensions back with the passwords their phones hold. Retired
credentials are read only to restore them; expired ones are purged when the tenant is next
written and are never reused.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from psycopg import sql

from reconciler.store.extension_secrets import (
    ExtensionSecret,
    a1_hash,
    fresh_rows,
    read_secret,
    rehash_secrets,
    rotate_secret,
    secret_table,
)
from reconciler.store.tables import RETIRED_CREDENTIALS, SIP_CREDENTIALS

PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # noqa: S105
PASSWORD_LENGTH = 32
"""32 characters of a 57-letter alphabet: log2(57) * 32 = 186 bits of entropy."""
CREDENTIALS_GRACE = timedelta(days=7)
"""How long a deleted extension's credentials are kept for its return."""


@dataclass(frozen=True, slots=True)
class SipCredentials:
    """What a phone needs to register. ``repr`` masks the password."""

    username: str
    domain: str
    password: str = field(repr=False)

    def to_dict(self) -> dict[str, str]:
        return {"username": self.username, "domain": self.domain, "password": self.password}


# Random bytes map onto the alphabet without bias: 228 = 4 x 57 byte values map 4 to 1, the
# 28 values above are dropped (translate does both in C: a cold apply makes 100,000).
_USABLE = 4 * len(PASSWORD_ALPHABET)
_TO_ALPHABET = bytes(ord(PASSWORD_ALPHABET[b % len(PASSWORD_ALPHABET)]) for b in range(256))
_UNUSABLE = bytes(range(_USABLE, 256))


def new_password() -> str:
    drawn = b""
    while len(drawn) < PASSWORD_LENGTH:
        drawn += secrets.token_bytes(PASSWORD_LENGTH + 8).translate(_TO_ALPHABET, _UNUSABLE)
    return drawn[:PASSWORD_LENGTH].decode("ascii")


SIP_PASSWORD = ExtensionSecret(
    table=SIP_CREDENTIALS,
    value_column="password",
    digest_column="a1_hash",
    history_kind="credentials",
    called="credentials",
    new=lambda: new_password(),  # looked up per call, so a test may replace it
)


def credential_rows(numbers: Iterable[str], domain: str) -> list[tuple[str, str, str]]:
    """Fresh ``(extension, password, a1_hash)`` rows for newly created extensions."""
    return fresh_rows(SIP_PASSWORD, numbers, domain)


def retire_credentials(
    conn: psycopg.Connection, tenant_id: str, numbers: Sequence[str], grace: timedelta
) -> None:
    """Keep the credentials of extensions about to be deleted until ``now() + grace``
    (nothing is kept when ``grace`` is zero). Runs before the delete cascades them away."""
    if not numbers or grace <= timedelta(0):
        return
    retired = secret_table(tenant_id, RETIRED_CREDENTIALS)
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE extension = ANY(%s)").format(retired), (list(numbers),)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (extension, password, a1_hash, expires_at) "
            "SELECT extension, password, a1_hash, now() + %s FROM {} WHERE extension = ANY(%s)"
        ).format(retired, _credentials_table(tenant_id)),
        (grace, list(numbers)),
    )


def restored_credential_rows(
    conn: psycopg.Connection, tenant_id: str, numbers: Sequence[str], domain: str
) -> list[tuple[str, str, str]]:
    """``(extension, password, a1_hash)`` of re-added extensions whose retired credentials
    have not expired, hashed for the tenant's domain now; their retired rows (expired or not)
    are removed either way."""
    if not numbers:
        return []
    rows = conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE extension = ANY(%s) RETURNING extension, password, "
            "expires_at > now()"
        ).format(secret_table(tenant_id, RETIRED_CREDENTIALS)),
        (list(numbers),),
    ).fetchall()
    return [
        (number, password, a1_hash(number, domain, password)) for number, password, ok in rows if ok
    ]


def purge_retired_credentials(conn: psycopg.Connection, tenant_id: str) -> None:
    """Forget retired credentials whose grace has passed."""
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE expires_at <= now()").format(
            secret_table(tenant_id, RETIRED_CREDENTIALS)
        )
    )


def rehash_for_domain(conn: psycopg.Connection, tenant_id: str, domain: str) -> None:
    """A domain change invalidates every a1-hash of the tenant (the realm is hashed in)."""
    rehash_secrets(conn, SIP_PASSWORD, tenant_id, domain)


def show_credentials(conn: psycopg.Connection, tenant_id: str, extension: str) -> SipCredentials:
    """The SIP credentials of one extension, for provisioning a phone."""
    domain, password = read_secret(conn, SIP_PASSWORD, tenant_id, extension)
    return SipCredentials(username=extension, domain=domain, password=password)


def rotate_credentials(
    conn: psycopg.Connection, tenant_id: str, extension: str, *, host: str | None = None
) -> None:
    """Replace one extension's password and a1-hash; followers are told to re-serve."""
    rotate_secret(conn, SIP_PASSWORD, tenant_id, extension, host=host)


def _credentials_table(tenant_id: str) -> sql.Composed:
    return secret_table(tenant_id, SIP_CREDENTIALS)

"""The portal's own tables in the control schema: accounts, invitations and password resets,
sessions, API tokens and the audit trail (control migrations 5 and 7).

An invitation only ever creates an account; it never touches an activated one (that was an
account takeover: whoever held the link chose the password). Changing an activated account's
password goes through a reset (``purpose = 'reset'``) or the person's own change, and both
end every session and API token of that person.

Nothing here is configuration: who exists and with which role stays in git. These rows only
say who has *activated* access and how they are logged in. Every secret is stored hashed
(passwords with argon2id by the caller, tokens as SHA-256 digests: they are 256-bit random,
so a fast hash is enough); the one exception is a TOTP secret, which verification needs.

Synchronous like the rest of the store: the portal runs these in its worker threads, the
CLI (``pbx users invite``) and the daemon's pass thread call them directly.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from reconciler.core.errors import Permanent
from reconciler.store.errors import StoreError, translated

INVITE = "invite"
RESET = "reset"
REMOVED_SESSIONS_KEPT = timedelta(days=7)  # longer than any session lives


@dataclass(frozen=True, slots=True)
class Account:
    email: str
    password_hash: str = ""
    totp_secret: str | None = None


class AccountExists(StoreError, Permanent):
    """An invitation met an activated account: it is refused, never applied."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} already has an account")
        self.email = email


@dataclass(frozen=True, slots=True)
class Invitation:
    """A pending link: ``purpose`` INVITE creates an account, RESET changes an existing one's
    password (and, when ``totp_secret`` is set, replaces its second factor)."""

    email: str
    totp_secret: str | None
    expires_at: datetime
    purpose: str = INVITE


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    email: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    client_addr: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    email: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str | None
    tenant_id: str | None
    action: str
    target: str | None
    result: str
    client_addr: str | None
    detail: str | None
    tenant_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Revoked:
    """What ``revoke_emails`` removed."""

    sessions: int = 0
    tokens: int = 0
    invitations: int = 0

    @property
    def total(self) -> int:
        return self.sessions + self.tokens + self.invitations


# -- accounts and invitations --------------------------------------------------------------


@translated
def read_account(conn: psycopg.Connection, email: str) -> Account | None:
    row = conn.execute(
        "SELECT email, password_hash, totp_secret FROM pbx.portal_accounts WHERE email = %s",
        (email.lower(),),
    ).fetchone()
    return Account(*row) if row else None


@translated
def create_invitation(
    conn: psycopg.Connection,
    *,
    email: str,
    token_hash: bytes,
    expires_at: datetime,
    created_by: str | None,
    totp_secret: str | None,
    purpose: str = INVITE,
) -> bool:
    """A new link replaces any unused one for the same person (one live link each).

    False, and nothing written, when the account does not fit the purpose: an invitation
    for someone who already has an account, a reset for someone who has none."""
    email = email.lower()
    with conn.transaction():
        exists = conn.execute(
            "SELECT 1 FROM pbx.portal_accounts WHERE email = %s FOR UPDATE", (email,)
        ).fetchone()
        if (exists is not None) != (purpose == RESET):
            return False
        conn.execute(
            "DELETE FROM pbx.portal_invitations WHERE email = %s AND used_at IS NULL", (email,)
        )
        conn.execute(
            """
            INSERT INTO pbx.portal_invitations
                (token_hash, email, totp_secret, created_by, expires_at, purpose)
            VALUES (%s, %s, %s, %s, %s, %s)
            """,
            (token_hash, email, totp_secret, created_by, expires_at, purpose),
        )
    return True


@translated
def pending_link_since(conn: psycopg.Connection, email: str, purpose: str) -> datetime | None:
    """When the person's live link of this purpose was issued (None: there is none)."""
    row = conn.execute(
        """
        SELECT max(created_at) FROM pbx.portal_invitations
        WHERE email = %s AND purpose = %s AND used_at IS NULL AND expires_at > now()
        """,
        (email.lower(), purpose),
    ).fetchone()
    return row[0] if row else None


@translated
def read_invitation(conn: psycopg.Connection, token_hash: bytes) -> Invitation | None:
    """The invitation, only while it is unused and unexpired."""
    row = conn.execute(
        """
        SELECT email, totp_secret, expires_at, purpose FROM pbx.portal_invitations
        WHERE token_hash = %s AND used_at IS NULL AND expires_at > now()
        """,
        (token_hash,),
    ).fetchone()
    return Invitation(*row) if row else None


@translated
def invitation_was_used(conn: psycopg.Connection, token_hash: bytes) -> bool:
    """Whether the link behind ``token_hash`` was used (a reload of the activation page)."""
    row = conn.execute(
        "SELECT 1 FROM pbx.portal_invitations WHERE token_hash = %s AND used_at IS NOT NULL",
        (token_hash,),
    ).fetchone()
    return row is not None


@translated
def activate_account(
    conn: psycopg.Connection, *, token_hash: bytes, password_hash: str, totp_step: int | None
) -> str | None:
    """Spend the invitation and create the account (with the TOTP secret it carried) in one
    transaction. None: no usable invitation. ``AccountExists`` (and nothing spent or changed)
    when the person already has an account: an invitation never overwrites one."""
    with conn.transaction():
        row = conn.execute(
            """
            UPDATE pbx.portal_invitations SET used_at = now()
            WHERE token_hash = %s AND used_at IS NULL AND expires_at > now()
              AND purpose = 'invite'
            RETURNING email, totp_secret
            """,
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        email, totp_secret = row
        created = conn.execute(
            """
            INSERT INTO pbx.portal_accounts (email, password_hash, totp_secret, totp_last_step)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (email) DO NOTHING
            """,
            (email, password_hash, totp_secret, totp_step),
        ).rowcount
        if created != 1:
            raise AccountExists(str(email))  # rolls the spent invitation back too
    return str(email)


@translated
def reset_account(
    conn: psycopg.Connection,
    *,
    token_hash: bytes,
    password_hash: str,
    totp_step: int | None,
) -> tuple[str, Revoked] | None:
    """Spend a reset link: the new password (and the new TOTP secret it carried, if any), and
    every session, API token and other pending link of the person ends. None: no usable link.
    The caller has checked the second factor (the current one, or the new one's code)."""
    with conn.transaction():
        row = conn.execute(
            """
            UPDATE pbx.portal_invitations SET used_at = now()
            WHERE token_hash = %s AND used_at IS NULL AND expires_at > now()
              AND purpose = 'reset'
            RETURNING email, totp_secret
            """,
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        email, new_secret = row
        changed = conn.execute(
            """
            UPDATE pbx.portal_accounts SET
                password_hash = %(hash)s,
                totp_secret = coalesce(%(secret)s, totp_secret),
                totp_last_step = CASE WHEN %(secret)s::text IS NULL
                    THEN greatest(totp_last_step, %(step)s) ELSE %(step)s END,
                password_changed_at = now()
            WHERE email = %(email)s
            """,
            {"hash": password_hash, "secret": new_secret, "step": totp_step, "email": email},
        ).rowcount
        if changed != 1:
            return None
        revoked = _revoke_person(conn, str(email), keep_session=None)
    return str(email), revoked


@translated
def change_password(
    conn: psycopg.Connection, email: str, password_hash: str, *, keep_session: int | None
) -> Revoked:
    """The person's own change (they proved the current password and second factor): every
    other session and every API token of theirs ends."""
    with conn.transaction():
        conn.execute(
            "UPDATE pbx.portal_accounts SET password_hash = %s, password_changed_at = now() "
            "WHERE email = %s",
            (password_hash, email.lower()),
        )
        return _revoke_person(conn, email.lower(), keep_session=keep_session)


@translated
def revoke_person(
    conn: psycopg.Connection, email: str, *, keep_session: int | None = None
) -> Revoked:
    """End everything of one person: sessions (but ``keep_session``), API tokens and pending
    links. The account stays (they log in again with their password)."""
    with conn.transaction():
        return _revoke_person(conn, email.lower(), keep_session=keep_session)


def _revoke_person(conn: psycopg.Connection, email: str, *, keep_session: int | None) -> Revoked:
    sessions = conn.execute(
        "DELETE FROM pbx.portal_sessions WHERE email = %s AND id IS DISTINCT FROM %s",
        (email, keep_session),
    ).rowcount
    tokens = conn.execute("DELETE FROM pbx.portal_api_tokens WHERE email = %s", (email,)).rowcount
    links = conn.execute(
        "DELETE FROM pbx.portal_invitations WHERE email = %s AND used_at IS NULL", (email,)
    ).rowcount
    return Revoked(sessions, tokens, links)


@translated
def update_password_hash(conn: psycopg.Connection, email: str, password_hash: str) -> None:
    """Argon2 parameters were raised since this hash was made: store the stronger one."""
    conn.execute(
        "UPDATE pbx.portal_accounts SET password_hash = %s WHERE email = %s",
        (password_hash, email.lower()),
    )


STEP_BITS = 32  # totp_last_step: the latest used step, and above it which of the 2 before


def next_used_steps(stored: int | None, step: int) -> int | None:
    """``totp_last_step`` once ``step`` is used, or None when it already was.

    The column packs the latest used step with two bits for the two steps before it, so a
    code of the next step (a phone clock slightly ahead) does not block the current one,
    while every step's code is still accepted once. Older steps count as used."""
    if stored is None:
        return step
    last, mask = stored & ((1 << STEP_BITS) - 1), stored >> STEP_BITS
    used = {last} | {last - 1 - i for i in (0, 1) if mask >> i & 1}
    if step in used or step < last - 2:
        return None
    used.add(step)
    top = max(used)
    bits = sum(1 << i for i in (0, 1) if top - 1 - i in used)
    return top | bits << STEP_BITS


@translated
def use_totp_step(conn: psycopg.Connection, email: str, step: int) -> bool:
    """Record a TOTP time step as used; False when it already was, so a code seen over
    someone's shoulder cannot be replayed (``next_used_steps`` says how)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT totp_last_step FROM pbx.portal_accounts WHERE email = %s FOR UPDATE",
            (email.lower(),),
        ).fetchone()
        if row is None:
            return False
        updated = next_used_steps(row[0], step)
        if updated is None:
            return False
        conn.execute(
            "UPDATE pbx.portal_accounts SET totp_last_step = %s WHERE email = %s",
            (updated, email.lower()),
        )
    return True


@translated
def read_installation_id(conn: psycopg.Connection) -> str:
    """The installation's random identity (control migration 6): what the portal derives
    the key of its pre-session CSRF tokens from, the same for every daemon."""
    row = conn.execute("SELECT installation_id::text FROM pbx.installation").fetchone()
    if row is None:
        raise StoreError("pbx.installation holds no row")
    return str(row[0])


# -- sessions ---------------------------------------------------------------------------------


@translated
def create_session(
    conn: psycopg.Connection,
    *,
    token_hash: bytes,
    email: str,
    csrf_token: str,
    expires_at: datetime,
    client_addr: str | None,
    user_agent: str | None,
) -> SessionRow:
    row = conn.execute(
        """
        INSERT INTO pbx.portal_sessions
            (token_hash, email, csrf_token, expires_at, client_addr, user_agent)
        VALUES (%s, %s, %s, %s, %s, %s)
        RETURNING id, email, csrf_token, created_at, last_seen_at, expires_at,
                  client_addr, user_agent
        """,
        (token_hash, email.lower(), csrf_token, expires_at, client_addr, (user_agent or "")[:200]),
    ).fetchone()
    assert row is not None
    return SessionRow(*row)


@translated
def read_session(conn: psycopg.Connection, token_hash: bytes) -> SessionRow | None:
    row = conn.execute(
        "SELECT id, email, csrf_token, created_at, last_seen_at, expires_at, client_addr, "
        "user_agent FROM pbx.portal_sessions WHERE token_hash = %s",
        (token_hash,),
    ).fetchone()
    return SessionRow(*row) if row else None


@translated
def end_removed_session(conn: psycopg.Connection, session_id: int) -> None:
    """A session whose person git no longer declares: ended, and its digest kept like
    ``revoke_all_except`` keeps it, so a request already on its way is told why too."""
    conn.execute(
        """
        WITH ended AS (DELETE FROM pbx.portal_sessions WHERE id = %s RETURNING token_hash)
        INSERT INTO pbx.portal_removed_sessions (token_hash)
        SELECT token_hash FROM ended ON CONFLICT DO NOTHING
        """,
        (session_id,),
    )


@translated
def read_session_or_removal(
    conn: psycopg.Connection, token_hash: bytes
) -> tuple[SessionRow | None, bool]:
    """The session, or (None, True) when it ended because git no longer declares its person
    (``revoke_all_except``): one round trip either way."""
    row = read_session(conn, token_hash)
    if row is not None:
        return row, False
    removed = conn.execute(
        "SELECT 1 FROM pbx.portal_removed_sessions WHERE token_hash = %s", (token_hash,)
    ).fetchone()
    return None, removed is not None


@translated
def touch_session(conn: psycopg.Connection, session_id: int, seen_at: datetime) -> None:
    conn.execute(
        "UPDATE pbx.portal_sessions SET last_seen_at = greatest(last_seen_at, %s) WHERE id = %s",
        (seen_at, session_id),
    )


@translated
def delete_session(conn: psycopg.Connection, session_id: int) -> SessionRow | None:
    """Ends one session (logout, revocation); returns what it was."""
    row = conn.execute(
        "DELETE FROM pbx.portal_sessions WHERE id = %s RETURNING id, email, csrf_token, "
        "created_at, last_seen_at, expires_at, client_addr, user_agent",
        (session_id,),
    ).fetchone()
    return SessionRow(*row) if row else None


@translated
def list_sessions(conn: psycopg.Connection, email: str | None = None) -> list[SessionRow]:
    rows = conn.execute(
        """
        SELECT id, email, csrf_token, created_at, last_seen_at, expires_at, client_addr,
               user_agent
        FROM pbx.portal_sessions
        WHERE %(email)s::text IS NULL OR email = %(email)s
        ORDER BY last_seen_at DESC
        """,
        {"email": email.lower() if email else None},
    ).fetchall()
    return [SessionRow(*row) for row in rows]


# -- API tokens ---------------------------------------------------------------------------------


@translated
def create_api_token(
    conn: psycopg.Connection,
    *,
    token_hash: bytes,
    email: str,
    name: str,
    expires_at: datetime | None = None,
) -> int:
    """A token that stops working at ``expires_at`` (default: 90 days from now)."""
    row = conn.execute(
        "INSERT INTO pbx.portal_api_tokens (token_hash, email, name, expires_at) "
        "VALUES (%s, %s, %s, coalesce(%s, now() + interval '90 days')) RETURNING id",
        (token_hash, email.lower(), name, expires_at),
    ).fetchone()
    assert row is not None
    return int(row[0])


@translated
def read_api_token(conn: psycopg.Connection, token_hash: bytes) -> ApiToken | None:
    """The token's owner while it has not expired; marks it used (at most once a minute:
    reads stay reads)."""
    conn.execute(
        """
        UPDATE pbx.portal_api_tokens SET last_used_at = now()
        WHERE token_hash = %s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 min')
        """,
        (token_hash,),
    )
    row = conn.execute(
        "SELECT id, email, name, created_at, last_used_at, expires_at FROM pbx.portal_api_tokens "
        "WHERE token_hash = %s AND expires_at > now()",
        (token_hash,),
    ).fetchone()
    return ApiToken(*row) if row else None


@translated
def list_api_tokens(conn: psycopg.Connection, email: str | None) -> list[ApiToken]:
    """One person's tokens, or everyone's (``email`` None: a super admin's view)."""
    rows = conn.execute(
        "SELECT id, email, name, created_at, last_used_at, expires_at FROM pbx.portal_api_tokens "
        "WHERE %(email)s::text IS NULL OR email = %(email)s ORDER BY email, id",
        {"email": email.lower() if email else None},
    ).fetchall()
    return [ApiToken(*row) for row in rows]


@translated
def delete_api_token(
    conn: psycopg.Connection, email: str | None, token_id: int
) -> tuple[bytes, str] | None:
    """Revokes one of ``email``'s tokens (anyone's when ``email`` is None); returns its digest
    (to drop it from caches) and its owner."""
    row = conn.execute(
        "DELETE FROM pbx.portal_api_tokens "
        "WHERE (%(email)s::text IS NULL OR email = %(email)s) AND id = %(id)s "
        "RETURNING token_hash, email",
        {"email": email.lower() if email else None, "id": token_id},
    ).fetchone()
    return (bytes(row[0]), str(row[1])) if row else None


# -- revocation and audit --------------------------------------------------------------------


@translated
def revoke_all_except(conn: psycopg.Connection, entitled: Collection[str]) -> Revoked:
    """Sessions, API tokens and pending invitations of everyone not in ``entitled`` end.
    Accounts stay (a person put back in git logs in again with the same password)."""
    keep = {email.lower() for email in entitled}
    with conn.transaction():
        # who holds anything is a short list; everyone declared in git can be 100,000 people:
        # compare here, send only the few to revoke
        holders = conn.execute(
            """
            SELECT email FROM pbx.portal_sessions
            UNION SELECT email FROM pbx.portal_api_tokens
            UNION SELECT email FROM pbx.portal_invitations WHERE used_at IS NULL
            """
        ).fetchall()
        gone = sorted({email for (email,) in holders} - keep)
        if not gone:
            return Revoked(0, 0, 0)
        # a digest of each ended session is kept for a while, so its next request is told
        # why it ended instead of being sent to the login page in silence
        conn.execute(
            "DELETE FROM pbx.portal_removed_sessions WHERE removed_at < now() - %s",
            (REMOVED_SESSIONS_KEPT,),
        )
        sessions = conn.execute(
            """
            WITH ended AS (
                DELETE FROM pbx.portal_sessions WHERE email = ANY(%s) RETURNING token_hash
            )
            INSERT INTO pbx.portal_removed_sessions (token_hash)
            SELECT token_hash FROM ended ON CONFLICT DO NOTHING
            """,
            (gone,),
        ).rowcount
        tokens = conn.execute(
            "DELETE FROM pbx.portal_api_tokens WHERE email = ANY(%s)", (gone,)
        ).rowcount
        invitations = conn.execute(
            "DELETE FROM pbx.portal_invitations WHERE used_at IS NULL AND email = ANY(%s)",
            (gone,),
        ).rowcount
    return Revoked(sessions, tokens, invitations)


@translated
def record_audit(
    conn: psycopg.Connection,
    *,
    actor: str | None,
    action: str,
    result: str,
    tenant_id: str | None = None,
    target: str | None = None,
    client_addr: str | None = None,
    detail: str | None = None,
    tenant_ids: Sequence[str] = (),
) -> None:
    """One row. ``tenant_ids``: every tenant whose admins must see it (a person of several
    tenants); ``tenant_id`` alone is the one tenant of the row, if any."""
    every = sorted({*tenant_ids, *([tenant_id] if tenant_id else [])})
    conn.execute(
        """
        INSERT INTO pbx.portal_audit
            (actor, tenant_id, action, target, result, client_addr, detail, tenant_ids)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            actor,
            tenant_id or (every[0] if len(every) == 1 else None),
            action,
            target,
            result,
            client_addr,
            detail,
            every,
        ),
    )


@translated
def read_audit(
    conn: psycopg.Connection, *, tenant_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Most recent first; one tenant's entries (its own and those of its people that name
    several tenants), or every entry when ``tenant_id`` is None."""
    rows = conn.execute(
        """
        SELECT id, at, actor, tenant_id, action, target, result, client_addr, detail,
               tenant_ids
        FROM pbx.portal_audit
        WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s
           OR tenant_ids @> ARRAY[%(tenant)s::text]
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {"tenant": tenant_id, "limit": limit},
    ).fetchall()
    return [audit_entry(row) for row in rows]


def audit_entry(row: tuple[Any, ...]) -> AuditEntry:
    """An ``AuditEntry`` of a row selected in ``read_audit``'s column order."""
    id_, at, actor, tenant_id, action, target, result, client_addr, detail, tenant_ids = row
    return AuditEntry(
        id_, at, actor, tenant_id, action, target, result, client_addr, detail, tuple(tenant_ids)
    )


@dataclass(frozen=True, slots=True)
class PersonAccess:
    """Where one person stands with the portal: an account or not, their latest unused
    invitation (pending or expired), their last successful login (from the audit trail)."""

    email: str
    active: bool
    invited_at: datetime | None
    invitation_expires_at: datetime | None
    last_login_at: datetime | None


@translated
def people_access(conn: psycopg.Connection, emails: Sequence[str]) -> dict[str, PersonAccess]:
    """``PersonAccess`` of each of ``emails`` (lowercase), in three indexed-or-small reads."""
    wanted = sorted({e.lower() for e in emails})
    active = {
        r[0]
        for r in conn.execute(
            "SELECT email FROM pbx.portal_accounts WHERE email = ANY(%s)", (wanted,)
        )
    }
    invited = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            """
            SELECT DISTINCT ON (email) email, created_at, expires_at FROM pbx.portal_invitations
            WHERE email = ANY(%s) AND used_at IS NULL AND purpose = 'invite'
            ORDER BY email, created_at DESC
            """,
            (wanted,),
        )
    }
    logins: dict[str, datetime] = dict(
        conn.execute(
            """
            SELECT target, max(at) FROM pbx.portal_audit
            WHERE action = 'login' AND result = 'ok' AND target = ANY(%s) GROUP BY target
            """,
            (wanted,),
        ).fetchall()
    )
    return {
        e: PersonAccess(e, e in active, *invited.get(e, (None, None)), logins.get(e))
        for e in wanted
    }

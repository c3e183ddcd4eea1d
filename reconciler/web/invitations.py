"""Invitations: the only way a password comes to exist. ``pbx users invite EMAIL`` and the
portal's admins issue a single-use, expiring activation link; only its SHA-256 digest is
stored. Only people the applied state declares (tenant users of active tenants, platform
admins) can be invited. A super admin's invitation carries a fresh TOTP secret, enrolled on
activation: their account never works without a second factor.

``invite`` is synchronous (the CLI and tests call it with a store connection; the portal runs
it in its database threads) and takes the applied state from the caller, or reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from reconciler.core.model import State
from reconciler.store import read_platform_admins, read_state
from reconciler.store.portal import (
    Invitation,
    activate_account,
    create_invitation,
    read_invitation,
    record_audit,
)
from reconciler.web import totp
from reconciler.web.access import entitled_emails
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.passwords import check_new_password, hash_password
from reconciler.web.tokens import new_token, token_digest

DEFAULT_TTL = timedelta(hours=72)
ACTIVATE_PATH = "/activate/"


class NotEntitled(BadRequest):
    """The email is not a user of any active tenant nor a platform admin in the applied state."""

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} is not declared in the applied state: add them to a tenant's users "
            "(or _platform.yaml super_admins) in git first"
        )


@dataclass(frozen=True, slots=True)
class InviteLink:
    """What to hand the person (the URL is the secret; it is shown once, never stored)."""

    email: str
    url: str
    expires_at: datetime
    totp_required: bool


def invite(
    conn: psycopg.Connection,
    email: str,
    *,
    base_url: str,
    ttl: timedelta = DEFAULT_TTL,
    invited_by: str | None = None,
    state: State | None = None,
    admins: Mapping[str, str] | None = None,
    client_addr: str | None = None,
) -> InviteLink:
    """Issue an activation link for ``email`` (any earlier unused link stops working).

    ``state``/``admins`` default to what the store holds (the CLI's case); the portal passes
    the daemon's applied state. Raises ``NotEntitled``. The caller has migrated the store.
    """
    email = email.strip().lower()
    if admins is None:
        admins = read_platform_admins(conn)
    if state is None:
        state = read_state(conn)
    if email not in entitled_emails(state, admins):
        raise NotEntitled(email)
    token = new_token()
    expires_at = datetime.now(UTC) + ttl
    super_admin = email in admins
    create_invitation(
        conn,
        email=email,
        token_hash=token_digest(token),
        expires_at=expires_at,
        created_by=invited_by,
        totp_secret=totp.new_secret() if super_admin else None,
    )
    record_audit(
        conn,
        actor=invited_by or "cli",
        action="invite",
        result="ok",
        tenant_id=_single_tenant(state, email),
        target=email,
        client_addr=client_addr,
    )
    url = base_url.rstrip("/") + ACTIVATE_PATH + token
    return InviteLink(email=email, url=url, expires_at=expires_at, totp_required=super_admin)


def _single_tenant(state: State, email: str) -> str | None:
    """The tenant an audit row belongs to, when the person is a user of exactly one."""
    tenants = [t for t, s in state.items() if email in s.users]
    return tenants[0] if len(tenants) == 1 else None


def pending_invitation(conn: psycopg.Connection, token: str) -> Invitation:
    """The invitation behind an activation link, or ``NotFound`` (unknown, used, expired)."""
    found = read_invitation(conn, token_digest(token))
    if found is None:
        raise NotFound("this activation link is not valid: it expired, was used, or was replaced")
    return found


def activate(
    conn: psycopg.Connection,
    token: str,
    *,
    password: str,
    confirmation: str,
    code: str = "",
    client_addr: str | None = None,
) -> str:
    """Set the password (and enrol TOTP) from an activation link; returns the email."""
    found = pending_invitation(conn, token)
    check_new_password(password, confirmation, found.email)
    step = None
    if found.totp_secret is not None:
        step = totp.matching_step(found.totp_secret, code)
        if step is None:
            raise BadRequest("the authenticator code is not valid: scan the QR code and retry")
    email = activate_account(
        conn, token_hash=token_digest(token), password_hash=hash_password(password), totp_step=step
    )
    if email is None:
        raise NotFound("this activation link was used meanwhile")
    record_audit(
        conn, actor=email, action="activate", result="ok", target=email, client_addr=client_addr
    )
    return email

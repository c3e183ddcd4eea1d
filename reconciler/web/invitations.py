"""Invitations and password resets: the only ways a password comes to exist or change
outside the person's own **Account** page. Each is a single-use, expiring link; only its
SHA-256 digest is stored.

* An **invitation** creates an account, and only that: it is refused for a person who
  already has one (an invitation that overwrote an account was a takeover, the link going
  to whoever asked for it). Only people the applied state declares can be invited; a super
  admin's invitation carries a fresh TOTP secret, enrolled on activation.
* A **reset** changes an activated account's password, issued by an operator on the host
  (``pbx users reset``) or mailed to the declared address: never handed to another person.
  It asks for the current authenticator code when the account has one, unless the operator
  issued it with a new authenticator (the lost-phone case). Spending it ends every session,
  API token and other pending link of the person.

Synchronous (the CLI and tests call these with a store connection; the portal runs them in
its database threads); the applied state comes from the caller, or is read from the store.
Audit rows name every tenant of the person, so each of those tenants' admins sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.core.model import State
from reconciler.store import read_platform_admins, read_state
from reconciler.store.accounts import (
    INVITE,
    RESET,
    AccountExists,
    Invitation,
    activate_account,
    create_invitation,
    invitation_was_used,
    read_account,
    read_invitation,
    record_audit,
    reset_account,
    use_totp_step,
)
from reconciler.store.runner import Connection
from reconciler.web import totp
from reconciler.web.access import entitled_emails, tenants_of
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.passwords import check_new_password, hash_password
from reconciler.web.tokens import new_token, token_digest

DEFAULT_TTL = timedelta(hours=72)
MAX_TTL = timedelta(days=30)
ACTIVATE_PATH = "/activate/"


class NotEntitled(BadRequest):
    """The email is not a user of any active tenant nor a platform admin in the applied state
    (or not one the caller may invite: the answer reads the same)."""

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} is not declared in the applied state: add them to a tenant's users "
            "(or _platform.yaml super_admins) in git first"
        )


class AlreadyActivated(BadRequest):
    """An invitation for someone who has an account: refused, the account is left alone."""

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} already has an account: an invitation never changes it. They change "
            "their password on Account; an operator can run `pbx users reset EMAIL`"
        )


class NoAccount(BadRequest):
    def __init__(self, email: str) -> None:
        super().__init__(f"{email} has no activated account: invite them instead")


@dataclass(frozen=True, slots=True)
class InviteLink:
    """What to hand the person (the URL is the secret; it is shown once, never stored).
    ``purpose``: ``invite`` or ``reset``."""

    email: str
    url: str
    expires_at: datetime
    totp_required: bool
    purpose: str = INVITE


def check_ttl(ttl: timedelta) -> timedelta:
    """A link lives from one minute to 30 days (a negative or absurd TTL is a mistake)."""
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise BadRequest(f"a link's lifetime is 60 to {int(MAX_TTL.total_seconds())} seconds")
    return ttl


def _applied(
    conn: Connection, state: State | None, admins: Mapping[str, str] | None
) -> tuple[State, Mapping[str, str]]:
    return (
        state if state is not None else read_state(conn),
        admins if admins is not None else read_platform_admins(conn),
    )


def invite(
    conn: Connection,
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
    the daemon's applied state. Raises ``NotEntitled``, ``AlreadyActivated``. The caller has
    migrated the store (and decided that the inviter may invite this person)."""
    email = email.strip().lower()
    check_ttl(ttl)
    state, admins = _applied(conn, state, admins)
    if email not in entitled_emails(state, admins):
        raise NotEntitled(email)
    token = new_token()
    expires_at = datetime.now(UTC) + ttl
    super_admin = email in admins

    def audit(result: str, detail: str | None = None) -> None:
        record_audit(
            conn,
            actor=invited_by or "cli",
            action="invite",
            result=result,
            target=email,
            client_addr=client_addr,
            detail=detail,
            tenant_ids=tenants_of(email, state),
        )

    created = create_invitation(
        conn,
        email=email,
        token_hash=token_digest(token),
        expires_at=expires_at,
        created_by=invited_by,
        totp_secret=totp.new_secret() if super_admin else None,
    )
    if not created:
        audit("denied", "already has an account")
        raise AlreadyActivated(email)
    audit("ok")
    url = base_url.rstrip("/") + ACTIVATE_PATH + token
    return InviteLink(email=email, url=url, expires_at=expires_at, totp_required=super_admin)


def issue_reset(
    conn: Connection,
    email: str,
    *,
    base_url: str,
    ttl: timedelta = DEFAULT_TTL,
    requested_by: str | None = None,
    new_authenticator: bool = False,
    state: State | None = None,
    admins: Mapping[str, str] | None = None,
    client_addr: str | None = None,
) -> InviteLink:
    """A reset link for an activated account. Hand it only to the person (print it on the
    host, or mail it to the declared address). ``new_authenticator`` replaces the second
    factor (enrolled on the reset page); a super admin without one always gets one."""
    email = email.strip().lower()
    check_ttl(ttl)
    state, admins = _applied(conn, state, admins)
    if email not in entitled_emails(state, admins):
        raise NotEntitled(email)
    account = read_account(conn, email)
    if account is None:
        raise NoAccount(email)
    enrol = new_authenticator or (email in admins and account.totp_secret is None)
    token = new_token()
    expires_at = datetime.now(UTC) + ttl
    if not create_invitation(
        conn,
        email=email,
        token_hash=token_digest(token),
        expires_at=expires_at,
        created_by=requested_by,
        totp_secret=totp.new_secret() if enrol else None,
        purpose=RESET,
    ):
        raise NoAccount(email)
    record_audit(
        conn,
        actor=requested_by or "cli",
        action="reset_issue",
        result="ok",
        target=email,
        client_addr=client_addr,
        detail="with a new authenticator" if enrol else None,
        tenant_ids=tenants_of(email, state),
    )
    url = base_url.rstrip("/") + ACTIVATE_PATH + token
    return InviteLink(email, url, expires_at, totp_required=enrol, purpose=RESET)


def pending_invitation(conn: Connection, token: str) -> Invitation:
    """The invitation behind an activation link, or ``NotFound`` (unknown, used, expired)."""
    found = read_invitation(conn, token_digest(token))
    if found is None:
        raise NotFound("this activation link is not valid: it expired, was used, or was replaced")
    return found


def link_was_used(conn: Connection, token: str) -> bool:
    """An activation or reset link already used: its account is active (a reloaded page)."""
    return invitation_was_used(conn, token_digest(token))


def current_factor_needed(conn: Connection, found: Invitation) -> bool:
    """A reset that keeps the account's authenticator asks for its current code."""
    if found.purpose != RESET or found.totp_secret is not None:
        return False
    account = read_account(conn, found.email)
    return account is not None and account.totp_secret is not None


def activate(
    conn: Connection,
    token: str,
    *,
    password: str,
    confirmation: str,
    code: str = "",
    client_addr: str | None = None,
    state: State | None = None,
) -> str:
    """Set the password (and enrol TOTP) from an activation or reset link; returns the email.
    ``state``: the applied state, for the audit row's tenants (none when not given)."""
    found = pending_invitation(conn, token)
    check_new_password(password, confirmation, found.email)
    tenant_ids = tenants_of(found.email, state) if state is not None else []
    if found.purpose == RESET:
        return _reset(conn, token, found, password, code, client_addr, tenant_ids)
    step = None
    if found.totp_secret is not None:
        step = _code_step(found.totp_secret, code)

    def audit(result: str, detail: str | None = None) -> None:
        record_audit(
            conn,
            actor=found.email,
            action="activate",
            result=result,
            target=found.email,
            client_addr=client_addr,
            detail=detail,
            tenant_ids=tenant_ids,
        )

    try:
        email = activate_account(
            conn,
            token_hash=token_digest(token),
            password_hash=hash_password(password),
            totp_step=step,
        )
    except AccountExists as exc:
        audit("denied", "already has an account")
        raise AlreadyActivated(found.email) from exc
    if email is None:
        raise NotFound("this activation link was used meanwhile")
    audit("ok")
    return email


def _code_step(secret: str, code: str) -> int:
    step = totp.matching_step(secret, code)
    if step is None:
        raise BadRequest("the authenticator code is not valid: check the app and retry")
    return step


def _reset(
    conn: Connection,
    token: str,
    found: Invitation,
    password: str,
    code: str,
    client_addr: str | None,
    tenant_ids: list[str],
) -> str:
    account = read_account(conn, found.email)
    if account is None:
        raise NotFound("this reset link is not valid: the account is gone")
    step = None
    if found.totp_secret is not None:
        step = _code_step(found.totp_secret, code)
    elif account.totp_secret is not None:
        step = _code_step(account.totp_secret, code)
        if not use_totp_step(conn, account.email, step):
            raise BadRequest("the authenticator code was already used: wait for the next one")
    done = reset_account(
        conn, token_hash=token_digest(token), password_hash=hash_password(password), totp_step=step
    )
    if done is None:
        raise NotFound("this reset link was used meanwhile")
    email, revoked = done
    record_audit(
        conn,
        actor=email,
        action="reset",
        result="ok",
        target=email,
        client_addr=client_addr,
        detail=(
            ("new authenticator; " if found.totp_secret else "")
            + f"ended {revoked.sessions} session(s), {revoked.tokens} token(s)"
        ),
        tenant_ids=tenant_ids,
    )
    return email

"""Invitations on a real database: single use, expiring, only for people git declares;
super admins enrol TOTP on activation."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pyotp
import pytest

from reconciler.store import connect, read_platform_admins, sync_platform_admins
from reconciler.store.accounts import read_account, read_audit
from reconciler.web import NotEntitled, invite
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.invitations import (
    AlreadyActivated,
    NoAccount,
    activate,
    issue_reset,
    pending_invitation,
)
from reconciler.web.passwords import verify
from tests.fakes.portal import PASSWORD, SUPER, FakePortalDeps


@pytest.fixture
def conn(portal_dsn: str) -> psycopg.Connection:
    with connect(portal_dsn) as connection:
        yield connection  # type: ignore[misc]


def _invite(conn: psycopg.Connection, deps: FakePortalDeps, email: str, **kw: object) -> str:
    link = invite(
        conn, email, base_url="https://pbx.example.net/", state=deps.state, admins=deps.admins, **kw
    )  # type: ignore[arg-type]
    assert link.url.startswith("https://pbx.example.net/activate/")
    return link.url.rsplit("/", 1)[1]


def test_activation_sets_an_argon2id_password_and_the_link_then_stops_working(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    token = _invite(conn, deps, "Bob@Acme.example.com")
    assert activate(conn, token, password=PASSWORD, confirmation=PASSWORD) == "bob@acme.example.com"
    account = read_account(conn, "bob@acme.example.com")
    assert account is not None and account.password_hash.startswith("$argon2id$")
    assert verify(account.password_hash, PASSWORD).ok
    with pytest.raises(NotFound):
        activate(conn, token, password=PASSWORD, confirmation=PASSWORD)


def test_only_the_token_digest_is_stored(conn: psycopg.Connection, deps: FakePortalDeps) -> None:
    token = _invite(conn, deps, "bob@acme.example.com")
    stored = conn.execute("SELECT token_hash FROM pbx.portal_invitations").fetchall()
    assert len(stored) == 1 and token.encode() not in bytes(stored[0][0])


def test_an_expired_link_is_refused(conn: psycopg.Connection, deps: FakePortalDeps) -> None:
    token = _invite(conn, deps, "bob@acme.example.com")
    conn.execute("UPDATE pbx.portal_invitations SET expires_at = now() - interval '1 second'")
    with pytest.raises(NotFound, match="expired"):
        pending_invitation(conn, token)
    with pytest.raises(NotFound):
        activate(conn, token, password=PASSWORD, confirmation=PASSWORD)


def test_a_new_invitation_replaces_the_unused_one(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    first = _invite(conn, deps, "bob@acme.example.com")
    second = _invite(conn, deps, "bob@acme.example.com")
    with pytest.raises(NotFound):
        pending_invitation(conn, first)
    assert pending_invitation(conn, second).email == "bob@acme.example.com"


@pytest.mark.parametrize("email", ["mallory@example.com", "ivan@initech.example.com"])
def test_people_not_declared_in_the_applied_state_cannot_be_invited(
    conn: psycopg.Connection, deps: FakePortalDeps, email: str
) -> None:
    with pytest.raises(NotEntitled, match="not declared"):
        _invite(conn, deps, email)


def test_super_admin_activation_requires_a_valid_totp_code(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    token = _invite(conn, deps, SUPER)
    secret = pending_invitation(conn, token).totp_secret
    assert secret is not None
    with pytest.raises(BadRequest, match="authenticator code"):
        activate(conn, token, password=PASSWORD, confirmation=PASSWORD, code="000000")
    activate(conn, token, password=PASSWORD, confirmation=PASSWORD, code=pyotp.TOTP(secret).now())
    account = read_account(conn, SUPER)
    assert account is not None and account.totp_secret == secret


def test_first_super_admin_is_bootstrapped_from_the_store_on_a_fresh_install(
    conn: psycopg.Connection,
) -> None:
    """What `pbx users invite` does: no state passed, the store's platform admins decide."""
    sync_platform_admins(conn, {SUPER: "Platform Operator"})
    assert read_platform_admins(conn) == {SUPER: "Platform Operator"}
    link = invite(conn, SUPER, base_url="http://127.0.0.1:8081")
    assert link.totp_required and link.email == SUPER
    with pytest.raises(NotEntitled):
        invite(conn, "bob@acme.example.com", base_url="http://127.0.0.1:8081")
    audit = read_audit(conn)
    assert [(a.actor, a.action, a.target) for a in audit] == [("cli", "invite", SUPER)]


def test_a_weak_password_leaves_the_invitation_usable(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    token = _invite(conn, deps, "bob@acme.example.com")
    with pytest.raises(BadRequest):
        activate(conn, token, password="short", confirmation="short")
    assert pending_invitation(conn, token).email == "bob@acme.example.com"


@pytest.mark.parametrize("seconds", [-100, 0, 59, 31 * 86400])
def test_a_link_lifetime_out_of_range_is_refused(
    conn: psycopg.Connection, deps: FakePortalDeps, seconds: int
) -> None:
    with pytest.raises(BadRequest, match="lifetime"):
        _invite(conn, deps, "bob@acme.example.com", ttl=timedelta(seconds=seconds))


def test_an_invitation_for_an_activated_account_is_refused_and_changes_nothing(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    token = _invite(conn, deps, "bob@acme.example.com")
    activate(conn, token, password=PASSWORD, confirmation=PASSWORD)
    with pytest.raises(AlreadyActivated):
        _invite(conn, deps, "bob@acme.example.com")
    account = read_account(conn, "bob@acme.example.com")
    assert account is not None and verify(account.password_hash, PASSWORD).ok
    audit = read_audit(conn)[0]
    assert (audit.action, audit.result, audit.tenant_ids) == ("invite", "denied", ("acme",))


def test_a_reset_with_a_new_authenticator_replaces_the_second_factor(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    token = _invite(conn, deps, SUPER)
    old_secret = pending_invitation(conn, token).totp_secret
    assert old_secret is not None
    activate(
        conn, token, password=PASSWORD, confirmation=PASSWORD, code=pyotp.TOTP(old_secret).now()
    )
    link = issue_reset(
        conn,
        SUPER,
        base_url="http://x",
        new_authenticator=True,
        state=deps.state,
        admins=deps.admins,
    )
    reset_token = link.url.rsplit("/", 1)[1]
    new_secret = pending_invitation(conn, reset_token).totp_secret
    assert link.totp_required and new_secret not in (None, old_secret)
    new_password = "a brand new passphrase"
    with pytest.raises(BadRequest):  # a code of the old authenticator enrols nothing
        activate(conn, reset_token, password=new_password, confirmation=new_password, code="000000")
    activate(
        conn,
        reset_token,
        password=new_password,
        confirmation=new_password,
        code=pyotp.TOTP(new_secret).now(),
    )
    account = read_account(conn, SUPER)
    assert account is not None and account.totp_secret == new_secret
    assert verify(account.password_hash, new_password).ok


def test_a_reset_link_is_not_an_invitation_and_an_invitation_not_a_reset(
    conn: psycopg.Connection, deps: FakePortalDeps
) -> None:
    with pytest.raises(NoAccount):
        issue_reset(
            conn, "bob@acme.example.com", base_url="http://x", state=deps.state, admins=deps.admins
        )
    assert conn.execute("SELECT count(*) FROM pbx.portal_invitations").fetchone() == (0,)

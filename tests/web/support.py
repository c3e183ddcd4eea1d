"""Helpers shared by the portal tests: accounts made through real invitations, logging in
through the real form, reading the CSRF token a page carries."""

from __future__ import annotations

import re

import psycopg
import pyotp
from aiohttp.test_utils import TestClient

from reconciler.store import connect
from reconciler.web.invitations import activate, invite, pending_invitation
from tests.fakes.portal import PASSWORD, FakePortalDeps

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')


def make_account(
    dsn: str, deps: FakePortalDeps, email: str, password: str = PASSWORD
) -> str | None:
    """Invite and activate ``email``; returns the TOTP secret of a super admin (else None)."""
    with connect(dsn) as conn:
        link = invite(
            conn, email, base_url="http://portal.test", state=deps.state, admins=deps.admins
        )
        token = link.url.rsplit("/", 1)[1]
        secret = pending_invitation(conn, token).totp_secret
        code = pyotp.TOTP(secret).now() if secret else ""
        activate(conn, token, password=password, confirmation=password, code=code)
        allow_code_reuse(conn, email)
    return secret


def allow_code_reuse(conn: psycopg.Connection, email: str) -> None:
    """Tests log in several times within one 30 s TOTP step; replay protection would refuse
    the second login, so tests forget the last used step (the replay test does not)."""
    conn.execute("UPDATE pbx.portal_accounts SET totp_last_step = NULL WHERE email = %s", (email,))


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def login(
    client: TestClient,
    email: str,
    password: str = PASSWORD,
    secret: str | None = None,
    dsn: str | None = None,
) -> str:
    """Log in through the form; returns the session's CSRF token (from the next page)."""
    if secret and dsn:
        with connect(dsn) as conn:
            allow_code_reuse(conn, email)
    page = await client.get("/login")
    form = {
        "csrf": csrf_of(await page.text()),
        "email": email,
        "password": password,
        "code": pyotp.TOTP(secret).now() if secret else "",
    }
    response = await client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    account = await client.get("/account")
    assert account.status == 200
    return csrf_of(await account.text())

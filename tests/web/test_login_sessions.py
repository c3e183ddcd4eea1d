"""Logging in, sessions and their end, through the real app on a real database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.store import connect
from reconciler.store.accounts import read_audit
from reconciler.web import PortalConfig, RateLimit, make_portal_app, passwords, revoke_unentitled
from reconciler.web.login import GENERIC_FAILURE
from tests.fakes.portal import PASSWORD, SUPER, FakePortalDeps
from tests.web.support import csrf_of, login, make_account

BOB = "bob@acme.example.com"


async def _post_login(
    client: TestClient, email: str, password: str, code: str = ""
) -> tuple[int, str]:
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "csrf": csrf_of(await page.text()),
            "email": email,
            "password": password,
            "code": code,
        },
        allow_redirects=False,
    )
    return response.status, await response.text()


async def test_unknown_email_and_wrong_password_read_the_same_and_cost_the_same_work(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same answer, and one argon2 verification each (a dummy hash for an unknown
    email): the time it takes does not tell who has an account. Counted, not timed."""
    make_account(portal_dsn, deps, BOB)
    verified: list[str] = []
    real = passwords._HASHER

    class CountingHasher:
        def verify(self, stored: str, password: str) -> bool:
            verified.append(stored.split("$", 2)[1])  # the algorithm id: argon2id
            return real.verify(stored, password)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(passwords, "_HASHER", CountingHasher())
    bodies = {}
    for kind, email in (("unknown", "nobody@acme.example.com"), ("wrong", BOB)):
        status, body = await _post_login(client, email, "not the password at all")
        assert status == 401
        bodies[kind] = body.replace("nobody@acme.example.com", BOB)
    assert GENERIC_FAILURE in bodies["unknown"]
    assert bodies["unknown"] == bodies["wrong"]
    assert verified == ["argon2id", "argon2id"]


async def test_login_sets_a_hardened_session_cookie_and_audits(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={"csrf": csrf_of(await page.text()), "email": BOB, "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = next(
        v for k, v in response.headers.items() if k == "Set-Cookie" and "pbx_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    with connect(portal_dsn) as conn:
        assert [(a.action, a.result) for a in read_audit(conn)][:1] == [("login", "ok")]


async def test_secure_cookie_with_host_prefix_behind_https(deps: FakePortalDeps) -> None:
    config = PortalConfig(public_url="https://pbx.example.net")
    app = make_portal_app(deps, config)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/login")
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-pbx_pre=") and "Secure" in cookie
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_super_admin_needs_the_totp_code_and_a_code_cannot_be_replayed(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    assert secret is not None
    status, body = await _post_login(client, SUPER, PASSWORD)
    assert status == 200 and 'name="code"' in body  # the second step asks for it
    code = pyotp.TOTP(secret).now()
    status, _ = await _post_login(client, SUPER, PASSWORD, code)
    assert status == 303
    client.session.cookie_jar.clear()
    status, body = await _post_login(client, SUPER, PASSWORD, code)
    assert status == 401, "the same code twice"


async def test_super_admin_without_authenticator_is_told_to_enrol(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """Someone promoted to super admin in git after activating as a plain user."""
    make_account(portal_dsn, deps, BOB)
    deps.admins = {**deps.admins, BOB: "Bob"}
    status, body = await _post_login(client, BOB, PASSWORD)
    assert status == 401 and "authenticator" in body


async def test_failed_logins_are_rate_limited_per_account_and_address(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    config = PortalConfig(
        public_url="http://portal.test",
        login_per_account_address=RateLimit(3, 900),
        login_per_address=RateLimit(100, 60),
    )
    make_account(portal_dsn, deps, BOB)
    app = make_portal_app(deps, config)
    from reconciler.web.server import portal_of_app

    frozen = time.monotonic()
    portal_of_app(app).limiter.pairs.clock = lambda: frozen  # the waits never run out
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            assert (await _post_login(client, BOB, "wrong password here"))[0] == 401
        status, body = await _post_login(client, BOB, PASSWORD)
        assert status == 429 and "too many attempts" in body
        status, _ = await _post_login(client, "nobody@x.org", "wrong password here")
        assert status == 401  # other accounts are not affected


async def test_failed_logins_are_rate_limited_per_client_address(deps: FakePortalDeps) -> None:
    config = PortalConfig(
        public_url="http://portal.test",
        login_per_account_address=RateLimit(100, 900),
        login_per_address=RateLimit(4, 60),
    )
    async with TestClient(TestServer(make_portal_app(deps, config))) as client:
        for n in range(4):
            assert (await _post_login(client, f"u{n}@x.org", "whatever else"))[0] == 401
        status, _ = await _post_login(client, "u9@x.org", "whatever else")
        assert status == 429


async def test_logout_ends_the_session_server_side(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    csrf = await login(client, BOB)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pbx_session"].value
    response = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    client.session.cookie_jar.update_cookies({"pbx_session": cookie})  # replay the old cookie
    response = await client.get("/t/acme", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?next=%2Ft%2Facme"


async def test_idle_and_absolute_timeouts(deps: FakePortalDeps, portal_dsn: str) -> None:
    config = PortalConfig(public_url="http://portal.test", idle_timeout=60, absolute_timeout=3600)
    app = make_portal_app(deps, config)
    make_account(portal_dsn, deps, BOB)
    async with TestClient(TestServer(app)) as client:
        from reconciler.web.server import portal_of_app

        sessions = portal_of_app(app).sessions
        await login(client, BOB)
        assert (await client.get("/t/acme", allow_redirects=False)).status == 200
        real = sessions.clock
        sessions.clock = lambda: real() + timedelta(seconds=61)
        assert (await client.get("/t/acme", allow_redirects=False)).status == 303
        sessions.clock = real
        await login(client, BOB)
        sessions.clock = lambda: datetime.now(UTC) + timedelta(seconds=3601)
        assert (await client.get("/t/acme", allow_redirects=False)).status == 303


async def test_removal_from_git_is_immediate_and_the_post_pass_revocation_ends_sessions(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    await login(client, BOB)
    from dataclasses import replace

    acme = deps.state["acme"]
    users = {k: v for k, v in acme.users.items() if k != BOB}
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    response = await client.get("/api/v1/tenants/acme")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "access_removed"
    with connect(portal_dsn) as conn:
        revoked = revoke_unentitled(conn, deps.state, deps.admins)
        assert revoked.sessions == 1
        assert conn.execute("SELECT count(*) FROM pbx.portal_sessions").fetchone() == (0,)
        assert read_audit(conn)[0].action == "revoke"


async def test_demotion_in_git_takes_effect_on_the_next_request(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    from dataclasses import replace

    make_account(portal_dsn, deps, "alice@acme.example.com")
    await login(client, "alice@acme.example.com")
    assert (await client.get("/api/v1/tenants/acme/queues")).status == 200
    acme = deps.state["acme"]
    users = dict(acme.users)
    users["alice@acme.example.com"] = replace(users["alice@acme.example.com"], role="member")
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    assert (await client.get("/api/v1/tenants/acme/queues")).status == 404


@pytest.mark.parametrize("path", ["/platform", "/t/acme", "/account"])
async def test_pages_redirect_to_login_without_a_session(client: TestClient, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=" + path.replace("/", "%2F")

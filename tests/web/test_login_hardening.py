"""Login throttling, argon2's own threads, trusted proxies, the idle timeout, the signed
pre-session CSRF token, 405 pages and TOTP steps: through the real app over HTTP, on a real
database (issue 15)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.store import connect
from reconciler.store.accounts import create_api_token, read_audit
from reconciler.web import PortalConfig, RateLimit, make_portal_app, passwords
from reconciler.web.server import portal_of_app
from reconciler.web.tokens import new_api_token, token_digest
from tests.fakes.portal import PASSWORD, SUPER, FakePortalDeps
from tests.web.support import allow_code_reuse, csrf_of, login, make_account

BOB = "bob@acme.example.com"
WRONG = "not the password at all"
LOOSE = RateLimit(1000, 900)  # a counter that never gets in the way of the one under test


@asynccontextmanager
async def portal(deps: FakePortalDeps, **config: Any) -> AsyncIterator[TestClient]:
    """The portal with its throttle clocks stopped: delays never run out during a test,
    however slow the machine (tests assert behaviour, never timings)."""
    app = make_portal_app(deps, PortalConfig(public_url="http://portal.test", **config))
    found = portal_of_app(app)
    now = time.monotonic()
    limiter = found.limiter
    for counter in (limiter.pairs, limiter.addresses, limiter.accounts, found.login.refusals):
        counter.clock = lambda: now
    async with TestClient(TestServer(app)) as client:
        yield client


async def post_login(
    client: TestClient, email: str, password: str, code: str = "", via: str | None = None
) -> int:
    headers = {"X-Forwarded-For": via} if via else {}
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "csrf": csrf_of(await page.text()),
            "email": email,
            "password": password,
            "code": code,
        },
        headers=headers,
        allow_redirects=False,
    )
    client.session.cookie_jar.clear()  # every attempt a fresh browser
    return response.status


def audit_rows(dsn: str, detail_prefix: str = "") -> list[Any]:
    with connect(dsn) as conn:
        rows = read_audit(conn, limit=1000)
    return [r for r in rows if (r.detail or "").startswith(detail_prefix)]


async def test_concurrent_attempts_on_one_account_check_no_more_passwords_than_allowed(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    """The race of the issue: 120 passwords in 10.8 s against a limit of 5."""
    make_account(portal_dsn, deps, BOB)
    async with portal(deps, login_per_account=RateLimit(5, 900)) as client:
        page = await client.get("/login")
        form = {"csrf": csrf_of(await page.text()), "email": BOB, "password": WRONG}
        answers = await asyncio.gather(
            *(client.post("/login", data=form, allow_redirects=False) for _ in range(30))
        )
    statuses = sorted(a.status for a in answers)
    assert statuses.count(401) == 5 and statuses.count(429) == 25, statuses


class BlockingHasher:
    """argon2 that waits for the test to let it finish: a burst that fills its threads."""

    def __init__(self) -> None:
        self.real = passwords._HASHER
        self.release = threading.Event()
        self.inside = 0
        self._lock = threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.inside += 1
        self.release.wait(30)
        return bool(self.real.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextmanager
def blocking_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockingHasher]:
    hasher = BlockingHasher()
    monkeypatch.setattr(passwords, "_HASHER", hasher)
    try:
        yield hasher
    finally:
        hasher.release.set()


async def test_a_burst_of_logins_never_starves_page_database_calls(
    deps: FakePortalDeps, portal_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_api_token()
    make_account(portal_dsn, deps, BOB)
    with connect(portal_dsn) as conn:
        create_api_token(conn, token_hash=token_digest(token), email=BOB, name="t")
    bearer = {"Authorization": f"Bearer {token}"}
    async with portal(
        deps, argon2_threads=2, argon2_queue=2, login_per_address=LOOSE, db_pool_size=2
    ) as client:
        csrf = csrf_of(await (await client.get("/login")).text())
        with blocking_argon2(monkeypatch) as hasher:
            burst = [
                asyncio.ensure_future(
                    client.post(
                        "/login",
                        data={"csrf": csrf, "email": f"u{n}@x.org", "password": WRONG},
                        allow_redirects=False,
                    )
                )
                for n in range(8)
            ]
            for _ in range(1000):  # every login arrived: 2 checking, 2 waiting, 4 refused
                if hasher.inside >= 2 and sum(f.done() for f in burst) >= 4:
                    break
                await asyncio.sleep(0.01)
            assert hasher.inside == 2, "both argon2 threads are busy"
            page = await asyncio.wait_for(client.get("/api/v1/tokens", headers=bearer), 10)
            assert page.status == 200, "a database call while every argon2 thread is taken"
            hasher.release.set()
            answers = await asyncio.gather(*burst)
    statuses = sorted(a.status for a in answers)
    assert statuses == [401] * 4 + [503] * 4, "2 running + 2 queued; the rest refused at once"
    refused = next(a for a in answers if a.status == 503)
    assert "Retry-After" in refused.headers


async def test_successful_logins_do_not_use_up_the_address_budget(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    """The 31st agent logging in at shift start from one office NAT."""
    make_account(portal_dsn, deps, BOB)
    async with portal(deps, login_per_address=RateLimit(3, 300)) as client:
        assert [await post_login(client, BOB, PASSWORD) for _ in range(6)] == [303] * 6
        assert [await post_login(client, f"x{n}@x.org", WRONG) for n in range(4)] == [
            401,
            401,
            401,
            429,
        ]


async def test_behind_a_trusted_proxy_the_forwarded_client_is_limited_and_audited(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    async with portal(
        deps,
        login_per_address=RateLimit(2, 300),
        trusted_proxies=(ip_network("127.0.0.0/8"), ip_network("10.0.0.0/8")),
    ) as client:
        chain = "198.51.100.7, 203.0.113.9, 10.1.1.1"  # the client forged the leftmost
        assert [await post_login(client, f"x{n}@x.org", WRONG, via=chain) for n in range(3)] == [
            401,
            401,
            429,
        ]
        assert await post_login(client, "y@x.org", WRONG, via="203.0.113.10") == 401
    assert {r.client_addr for r in audit_rows(portal_dsn)} == {"203.0.113.9", "203.0.113.10"}


async def test_without_trusted_proxies_a_forwarded_header_changes_nothing(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    async with portal(deps, login_per_address=RateLimit(2, 300)) as client:
        statuses = [
            await post_login(client, "x@x.org", WRONG, via=f"203.0.113.{n}") for n in range(3)
        ]
    assert statuses == [401, 401, 429]
    assert {r.client_addr for r in audit_rows(portal_dsn)} == {"127.0.0.1"}


async def test_guessing_from_elsewhere_never_locks_the_super_admin_out(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    assert secret is not None
    proxies = (ip_network("127.0.0.0/8"),)
    async with portal(deps, trusted_proxies=proxies, login_per_address=LOOSE) as client:
        guesses = [await post_login(client, SUPER, WRONG, via="203.0.113.66") for _ in range(12)]
        assert guesses.count(401) == 5 and guesses[5:] == [429] * 7
        with connect(portal_dsn) as conn:
            allow_code_reuse(conn, SUPER)
        code = pyotp.TOTP(secret).now()
        assert await post_login(client, SUPER, PASSWORD, code, via="198.51.100.7") == 303


async def test_the_account_cap_spares_known_addresses_and_a_super_admin_lifts_it(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    make_account(portal_dsn, deps, BOB)
    proxies = (ip_network("127.0.0.0/8"),)
    async with portal(
        deps, trusted_proxies=proxies, login_per_address=LOOSE, login_per_account=RateLimit(4, 900)
    ) as client:
        assert await post_login(client, BOB, PASSWORD, via="198.51.100.7") == 303  # bob's office
        for n in range(4):
            assert await post_login(client, BOB, WRONG, via=f"203.0.113.{n}") == 401
        assert await post_login(client, BOB, WRONG, via="203.0.113.99") == 429  # the cap
        assert await post_login(client, BOB, PASSWORD, via="198.51.100.7") == 303  # known

        csrf = await login(client, SUPER, secret=secret, dsn=portal_dsn)
        page = await client.get("/platform/locks")
        assert page.status == 200 and BOB in await page.text()
        refused = await client.post("/platform/locks/clear", data={"email": BOB})
        assert refused.status == 403, "the lift needs the session's CSRF token"
        lifted = await client.post(
            "/platform/locks/clear", data={"email": BOB, "csrf": csrf}, allow_redirects=False
        )
        assert lifted.status == 303
        client.session.cookie_jar.clear()
        assert await post_login(client, BOB, WRONG, via="203.0.113.99") == 401
    unlocks = [r for r in audit_rows(portal_dsn) if r.action == "login_unlock"]
    assert [(r.actor, r.target, r.result) for r in unlocks] == [(SUPER, BOB, "ok")]


async def test_lifting_a_throttle_is_for_super_admins_and_in_the_api(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    make_account(portal_dsn, deps, "alice@acme.example.com")
    async with portal(deps) as client:
        csrf = await login(client, "alice@acme.example.com")
        headers = {"X-CSRF-Token": csrf}
        body = {"email": BOB}
        assert (
            await client.post("/api/v1/login-locks/clear", json=body, headers=headers)
        ).status == 404
        assert (await client.get("/platform/locks")).status == 404
        client.session.cookie_jar.clear()
        csrf = await login(client, SUPER, secret=secret, dsn=portal_dsn)
        answer = await client.post(
            "/api/v1/login-locks/clear", json=body, headers={"X-CSRF-Token": csrf}
        )
        assert answer.status == 200 and (await answer.json())["email"] == BOB
        listed = await client.get("/api/v1/login-locks")
        assert (await listed.json()) == {"locks": []}


async def test_throttled_attempts_leave_one_audit_row_per_window_not_one_each(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    async with portal(deps, login_per_address=RateLimit(3, 300)) as client:
        statuses = [await post_login(client, f"x{n}@x.org", WRONG) for n in range(40)]
    assert statuses[:3] == [401] * 3 and statuses[3:] == [429] * 37
    assert len(audit_rows(portal_dsn, "rate limited")) == 1
    assert len(audit_rows(portal_dsn)) == 4


async def test_the_idle_timeout_counts_from_the_last_request_without_a_write_per_request(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    """Idle 60 s, requests every 10 s for 2 minutes, the cache re-read every time (as after
    its 5 s): the session lives on; the database row is written at most every 15 s."""
    make_account(portal_dsn, deps, BOB)
    async with portal(
        deps, idle_timeout=60, absolute_timeout=3600, session_cache_seconds=0
    ) as client:
        sessions = portal_of_app(client.server.app).sessions
        real = sessions.clock
        await login(client, BOB)
        with connect(portal_dsn) as conn:
            (written,) = conn.execute("SELECT last_seen_at FROM pbx.portal_sessions").fetchone()
        for seconds in range(5, 125, 10):
            sessions.clock = lambda s=seconds: real() + timedelta(seconds=s)
            response = await client.get("/t/acme", allow_redirects=False)
            assert response.status == 200, f"ended after {seconds} s of requests every 10 s"
            if seconds == 5:
                with connect(portal_dsn) as conn:
                    row = conn.execute("SELECT last_seen_at FROM pbx.portal_sessions").fetchone()
                assert row == (written,), "no database write for a request 5 s later"
        sessions.clock = lambda: real() + timedelta(seconds=115 + 61)
        assert (await client.get("/t/acme", allow_redirects=False)).status == 303


async def test_a_pre_session_token_the_server_never_issued_is_refused(client: TestClient) -> None:
    """Plain double submit let any equal cookie and field pass (a planted cookie)."""
    client.session.cookie_jar.update_cookies({"pbx_pre": "chosen-by-the-attacker"})
    response = await client.post(
        "/login",
        data={"csrf": "chosen-by-the-attacker", "email": BOB, "password": WRONG},
        allow_redirects=False,
    )
    assert response.status == 403
    page = await client.get("/login")  # the cookie the browser holds, with its signed field
    response = await client.post(
        "/login",
        data={"csrf": csrf_of(await page.text()), "email": BOB, "password": WRONG},
        allow_redirects=False,
    )
    assert response.status == 401


async def test_aiohttps_own_answers_on_pages_get_the_security_headers(client: TestClient) -> None:
    response = await client.delete("/platform")
    assert response.status == 405
    assert "GET" in response.headers["Allow"].split(",")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    too_big = await client.post("/login", data={"csrf": "x" * 100_000})
    assert too_big.status == 413
    assert too_big.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_a_code_of_the_next_step_does_not_block_the_current_one(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    assert secret is not None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(time.time())  # both codes from one step: robust to a rollover
    ahead, current = totp.generate_otp(step + 1), totp.generate_otp(step)
    async with portal(deps) as client:
        assert await post_login(client, SUPER, PASSWORD, ahead) == 303  # a phone a bit fast
        assert await post_login(client, SUPER, PASSWORD, current) == 303  # another device
        assert await post_login(client, SUPER, PASSWORD, current) == 401  # but never twice
        assert await post_login(client, SUPER, PASSWORD, ahead) == 401

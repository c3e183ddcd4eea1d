"""Nobody takes over anybody, over the real HTTP stack on a real database: an invitation
never touches an activated account, tenant admins invite only people wholly theirs, resets
and password changes reach the person and end every session and token, API tokens expire
and cannot mint more, super admins see and end anyone's sessions and tokens."""

from __future__ import annotations

import pyotp
import pytest
from aiohttp.test_utils import TestClient

from reconciler.core.desired import tenant_state_from_spec
from reconciler.store import connect
from reconciler.store.accounts import read_account, read_audit
from reconciler.web.invitations import issue_reset
from reconciler.web.passwords import verify
from tests.fakes.portal import PASSWORD, SUPER, FakePortalDeps, _spec
from tests.web.support import allow_code_reuse, csrf_of, login, make_account

ALICE, BOB, CAROL, DAVE, GINA = (
    "alice@acme.example.com",
    "bob@acme.example.com",
    "carol@acme.example.com",
    "dave@example.org",
    "gina@globex.example.com",
)
MALLORY = "mallory@evil.example.com"
ATTACKER_PASSWORD = "the attacker chose this one"


def add_hostile_tenant(deps: FakePortalDeps) -> None:
    """A tenant file that lists acme's admin and a super admin as its own users."""
    spec = _spec(
        "evil",
        "evil.example.com",
        "active",
        [
            {"email": MALLORY, "name": "Mallory", "role": "admin", "extensions": ["5001"]},
            {"email": ALICE, "name": "Alice", "role": "member", "extensions": ["5002"]},
            {"email": SUPER, "name": "Ops", "role": "member", "extensions": ["5003"]},
        ],
        ["5001", "5002", "5003"],
    )
    deps.state = {**deps.state, "evil": tenant_state_from_spec(spec)}


async def log_in_as(client: TestClient, deps: FakePortalDeps, dsn: str, email: str) -> str:
    client.session.cookie_jar.clear()
    with connect(dsn) as conn:
        account = read_account(conn, email)
    secret = account.totp_secret if account else make_account(dsn, deps, email)
    return await login(client, email, secret=secret, dsn=dsn)


async def password_works(client: TestClient, email: str, password: str) -> bool:
    """A login attempt through the form (cookies of the caller are kept aside)."""
    saved = list(client.session.cookie_jar)
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    form = {"csrf": csrf_of(await page.text()), "email": email, "password": password, "code": ""}
    response = await client.post("/login", data=form, allow_redirects=False)
    client.session.cookie_jar.clear()
    for cookie in saved:
        client.session.cookie_jar.update_cookies({cookie.key: cookie})
    return response.status == 303


async def take_over(client: TestClient, url: str, password: str) -> int:
    """What the inviter does with a link they were handed: set the password themselves."""
    path = url.split("portal.test", 1)[1]
    page = await client.get(path)
    if page.status != 200:
        return page.status
    form = {"csrf": csrf_of(await page.text()), "password": password, "confirmation": password}
    return (await client.post(path, data=form)).status


# -- the account-takeover chain ----------------------------------------------------------------


async def test_a_hostile_tenant_admin_cannot_take_over_another_tenants_admin_or_a_super_admin(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    add_hostile_tenant(deps)
    make_account(portal_dsn, deps, ALICE)
    make_account(portal_dsn, deps, SUPER)
    csrf = await log_in_as(client, deps, portal_dsn, MALLORY)
    for victim in (ALICE, SUPER):
        response = await client.post(
            "/api/v1/invitations", json={"email": victim}, headers={"X-CSRF-Token": csrf}
        )
        if response.status == 201:  # the old code: the link came back to Mallory
            await take_over(client, (await response.json())["url"], ATTACKER_PASSWORD)
        assert response.status == 400
        assert "not declared" in (await response.json())["error"]["message"]
    assert await password_works(client, ALICE, PASSWORD)
    assert not await password_works(client, ALICE, ATTACKER_PASSWORD)
    with connect(portal_dsn) as conn:
        pending = conn.execute("SELECT count(*) FROM pbx.portal_invitations WHERE used_at IS NULL")
        assert pending.fetchone() == (0,)
        denied = [(a.action, a.result, a.target) for a in read_audit(conn) if a.actor == MALLORY]
    assert ("invite", "denied", ALICE) in denied and ("invite", "denied", SUPER) in denied


async def test_a_super_admin_cannot_reinvite_an_activated_tenant_admin(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, ALICE)
    csrf = await log_in_as(client, deps, portal_dsn, SUPER)
    response = await client.post(
        "/api/v1/invitations", json={"email": ALICE}, headers={"X-CSRF-Token": csrf}
    )
    if response.status == 201:
        await take_over(client, (await response.json())["url"], ATTACKER_PASSWORD)
    assert response.status == 400
    assert "already has an account" in (await response.json())["error"]["message"]
    assert await password_works(client, ALICE, PASSWORD)
    page = await client.post("/invite", data={"csrf": csrf, "email": ALICE})
    assert page.status == 400 and "already has an account" in await page.text()


async def test_a_tenant_admin_cannot_reinvite_an_activated_agent_but_invites_a_new_member(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    csrf = await log_in_as(client, deps, portal_dsn, ALICE)
    headers = {"X-CSRF-Token": csrf}
    again = await client.post("/api/v1/invitations", json={"email": BOB}, headers=headers)
    if again.status == 201:
        await take_over(client, (await again.json())["url"], ATTACKER_PASSWORD)
    assert again.status == 400
    assert await password_works(client, BOB, PASSWORD)
    fresh = await client.post("/api/v1/invitations", json={"email": CAROL}, headers=headers)
    assert fresh.status == 201
    body = await fresh.json()
    assert body["url"].startswith("http://portal.test/activate/") and body["sent_to"] is None


async def test_a_tenant_admin_cannot_invite_a_person_who_is_also_in_another_tenant(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """Dave is acme's agent and globex's member: only a super admin may invite him."""
    csrf = await log_in_as(client, deps, portal_dsn, ALICE)
    response = await client.post(
        "/api/v1/invitations", json={"email": DAVE}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 400
    page = await client.get("/invite")
    assert CAROL in await page.text() and DAVE not in await page.text()


async def test_an_activation_link_issued_before_the_account_existed_changes_nothing(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """Two links for one person (one left over from an older version): the second one, once
    the account exists, is refused and leaves the account alone."""
    make_account(portal_dsn, deps, BOB)
    with connect(portal_dsn) as conn:
        conn.execute(
            "INSERT INTO pbx.portal_invitations (token_hash, email, expires_at) "
            "VALUES (sha256('leftover'), %s, now() + interval '1 hour')",
            (BOB,),
        )
    page = await client.get("/activate/leftover")
    form = {
        "csrf": csrf_of(await page.text()),
        "password": ATTACKER_PASSWORD,
        "confirmation": ATTACKER_PASSWORD,
    }
    response = await client.post("/activate/leftover", data=form)
    assert response.status == 400 and "already has an account" in await response.text()
    with connect(portal_dsn) as conn:
        account = read_account(conn, BOB)
    assert account is not None and verify(account.password_hash, PASSWORD).ok


async def test_invitations_and_activations_are_audited_for_every_tenant_of_the_person(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await log_in_as(client, deps, portal_dsn, SUPER)
    response = await client.post(
        "/api/v1/invitations", json={"email": DAVE}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201
    await take_over(client, (await response.json())["url"], PASSWORD)  # Dave activates
    for admin, tenant in ((ALICE, "acme"), (GINA, "globex")):
        await log_in_as(client, deps, portal_dsn, admin)
        audit = (await (await client.get(f"/api/v1/tenants/{tenant}/audit")).json())["audit"]
        seen = {(a["action"], a["target"]) for a in audit}
        assert {("invite", DAVE), ("activate", DAVE)} <= seen, (tenant, seen)


# -- resets and one's own password ---------------------------------------------------------------


async def test_a_reset_link_sets_a_new_password_and_ends_every_session_and_token(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await log_in_as(client, deps, portal_dsn, BOB)
    created = await client.post(
        "/api/v1/tokens", json={"name": "script"}, headers={"X-CSRF-Token": csrf}
    )
    token = (await created.json())["token"]
    with connect(portal_dsn) as conn:
        link = issue_reset(
            conn, BOB, base_url="http://portal.test", state=deps.state, admins=deps.admins
        )
    new_password = "a brand new passphrase"
    assert await take_over(client, link.url, new_password) == 200
    assert (await client.get("/api/v1/me")).status == 401  # the old session ended
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=bearer)).status == 401
    assert await password_works(client, BOB, new_password)
    assert not await password_works(client, BOB, PASSWORD)
    # single use: the used link's page says the account is active (410), with no form
    assert await take_over(client, link.url, "yet another passphrase") == 410
    with connect(portal_dsn) as conn:
        actions = [(a.action, a.tenant_ids) for a in read_audit(conn) if a.target == BOB]
    assert ("reset", ("acme",)) in actions and ("reset_issue", ("acme",)) in actions


async def test_a_reset_keeps_the_authenticator_and_asks_for_its_code(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    assert secret is not None
    with connect(portal_dsn) as conn:
        link = issue_reset(conn, SUPER, base_url="http://portal.test", admins=deps.admins)
        allow_code_reuse(conn, SUPER)
    path = link.url.split("portal.test", 1)[1]
    page = await client.get(path)
    assert 'name="code"' in await page.text() and "otpauth" not in await page.text()
    form = {
        "csrf": csrf_of(await page.text()),
        "password": "a brand new passphrase",
        "confirmation": "a brand new passphrase",
    }
    assert (await client.post(path, data={**form, "code": "000000"})).status == 400
    ok = await client.post(path, data={**form, "code": pyotp.TOTP(secret).now()})
    assert ok.status == 200
    with connect(portal_dsn) as conn:
        account = read_account(conn, SUPER)
    assert account is not None and account.totp_secret == secret


async def test_changing_ones_password_needs_the_current_one_and_ends_other_sessions_and_tokens(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    other = await login(client, BOB)  # a second browser, then this one
    other_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pbx_session"]
    client.session.cookie_jar.clear()
    csrf = await login(client, BOB)
    assert other != csrf
    created = await client.post(
        "/api/v1/tokens", json={"name": "s"}, headers={"X-CSRF-Token": csrf}
    )
    token = (await created.json())["token"]
    new = "a brand new passphrase"
    form = {"csrf": csrf, "current": "wrong password!!", "password": new, "confirmation": new}
    refused = await client.post("/account/password", data=form)
    assert refused.status == 400 and "not valid" in await refused.text()
    done = await client.post("/account/password", data={**form, "current": PASSWORD})
    assert done.status == 200 and "1 other session(s)" in await done.text()
    assert (await client.get("/api/v1/me")).status == 200  # this session stays
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=bearer)).status == 401
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"pbx_session": other_cookie.value})
    assert (await client.get("/api/v1/me")).status == 401
    assert await password_works(client, BOB, new)


# -- API tokens ----------------------------------------------------------------------------------


async def bob_token(client: TestClient, deps: FakePortalDeps, dsn: str, **body: object) -> str:
    csrf = await log_in_as(client, deps, dsn, BOB)
    created = await client.post(
        "/api/v1/tokens", json={"name": "script", **body}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status == 201, await created.text()
    return str((await created.json())["token"])


async def test_a_bearer_token_cannot_mint_tokens_or_invitations(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, ALICE)
    csrf = await log_in_as(client, deps, portal_dsn, ALICE)
    created = await client.post(
        "/api/v1/tokens", json={"name": "s"}, headers={"X-CSRF-Token": csrf}
    )
    bearer = {"Authorization": f"Bearer {(await created.json())['token']}"}
    client.session.cookie_jar.clear()
    more = await client.post("/api/v1/tokens", json={"name": "more"}, headers=bearer)
    invite = await client.post("/api/v1/invitations", json={"email": CAROL}, headers=bearer)
    assert more.status == invite.status == 403
    assert (await client.get("/api/v1/tokens", headers=bearer)).status == 200


async def test_tokens_expire(client: TestClient, deps: FakePortalDeps, portal_dsn: str) -> None:
    token = await bob_token(client, deps, portal_dsn)
    listed = (await (await client.get("/api/v1/tokens")).json())["tokens"]
    assert listed[0]["expires_at"] is not None
    with connect(portal_dsn) as conn:
        days = conn.execute(
            "SELECT extract(day FROM expires_at - created_at) FROM pbx.portal_api_tokens"
        ).fetchone()
        assert days is not None and int(days[0]) in (89, 90)
        conn.execute("UPDATE pbx.portal_api_tokens SET expires_at = now() - interval '1 second'")
    client.session.cookie_jar.clear()
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


async def test_a_token_lifetime_beyond_the_maximum_is_refused(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await log_in_as(client, deps, portal_dsn, BOB)
    for days in (0, 91, "ten"):
        response = await client.post(
            "/api/v1/tokens", json={"name": "s", "days": days}, headers={"X-CSRF-Token": csrf}
        )
        assert response.status == 400, days
    ok = await client.post(
        "/api/v1/tokens", json={"name": "s", "days": 7}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status == 201


async def test_super_admins_list_and_revoke_anyones_tokens_and_end_everything_of_a_person(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    token = await bob_token(client, deps, portal_dsn)
    bob_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pbx_session"]
    assert (await client.get("/api/v1/tokens?all=true")).status == 404  # not for Bob
    csrf = await log_in_as(client, deps, portal_dsn, SUPER)
    tokens = (await (await client.get("/api/v1/tokens?all=true")).json())["tokens"]
    assert [t["email"] for t in tokens] == [BOB]
    page = await client.get("/platform/sessions")
    assert "End everything" in await page.text() and "script" in await page.text()
    revoked = await client.post(
        "/api/v1/revocations", json={"email": BOB}, headers={"X-CSRF-Token": csrf}
    )
    assert await revoked.json() == {"sessions": 1, "tokens": 1, "invitations": 0}
    client.session.cookie_jar.clear()
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status == 401
    client.session.cookie_jar.update_cookies({"pbx_session": bob_cookie.value})
    assert (await client.get("/api/v1/me")).status == 401
    with connect(portal_dsn) as conn:
        rows = [(a.action, a.tenant_ids) for a in read_audit(conn) if a.target == BOB]
    assert ("revoke_all", ("acme",)) in rows


async def test_a_super_admin_revokes_one_token_of_someone_else(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    token = await bob_token(client, deps, portal_dsn)
    csrf = await log_in_as(client, deps, portal_dsn, SUPER)
    (listed,) = (await (await client.get("/api/v1/tokens?all=true")).json())["tokens"]
    response = await client.delete(f"/api/v1/tokens/{listed['id']}", headers={"X-CSRF-Token": csrf})
    assert response.status == 204
    client.session.cookie_jar.clear()
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status == 401


async def test_nobody_but_a_super_admin_ends_someone_elses_things(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    csrf = await log_in_as(client, deps, portal_dsn, ALICE)
    response = await client.post(
        "/api/v1/revocations", json={"email": BOB}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 404
    mine = await client.post(
        "/api/v1/revocations", json={"email": ALICE}, headers={"X-CSRF-Token": csrf}
    )
    assert mine.status == 200 and (await mine.json())["sessions"] == 1
    assert (await client.get("/api/v1/me")).status == 401


@pytest.mark.parametrize("path", ["/account", "/platform/sessions"])
async def test_the_account_pages_render(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, path: str
) -> None:
    await log_in_as(client, deps, portal_dsn, SUPER)
    response = await client.get(path)
    assert response.status == 200


async def test_without_mail_the_portal_hands_no_reset_link_to_anyone(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    csrf = await log_in_as(client, deps, portal_dsn, ALICE)
    response = await client.post(
        "/api/v1/resets", json={"email": BOB}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 400 and "pbx users reset" in await response.text()
    client.session.cookie_jar.clear()
    page = await client.get("/login/reset")
    assert "pbx users reset" in await page.text()
    with connect(portal_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pbx.portal_invitations WHERE used_at IS NULL"
        ).fetchone() == (0,)

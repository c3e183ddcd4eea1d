"""What a day of using the portal found, over HTTP: a status the switch did not take is an
error a page and a script notice, a tenant admin sets any agent's status (audited with who),
rotating asks first, times say they are UTC, the live dot says what it means, a person
removed from git is told why, a reloaded activation link says the account is active, and
the login returns to the page asked for (only ours)."""

from __future__ import annotations

import re
from dataclasses import replace

import pyotp
import pytest
from aiohttp.test_utils import TestClient

from reconciler.core.plan_text import stored_change_line
from reconciler.store import connect
from reconciler.web.context import PORTAL_KEY
from reconciler.web.entitlement import revoke_unentitled
from reconciler.web.filters import when
from reconciler.web.invitations import activate, invite
from tests.fakes.portal import PASSWORD, SUPER, FakePortalDeps, history_entry
from tests.web.support import csrf_of, make_account
from tests.web.test_http import ALICE, BOB, CAROL, as_user, audit_rows


async def test_a_status_no_switch_took_is_an_error_for_the_page_and_the_api(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, BOB)
    deps.presence.fail_nodes = {"fs1"}
    response = await client.put(
        "/api/v1/tenants/acme/agents/bob/status",
        json={"status": "On Break"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["code"] == "switch_unavailable" and "0 of 1 switches" in error["message"]
    page = await client.post("/t/acme/agents/bob/status", data={"csrf": csrf, "status": "On Break"})
    assert page.status == 502
    assert 'role="alert"' in (html := await page.text()) and "0 of 1 switches" in html
    deps.presence.nodes = ()
    response = await client.put(
        "/api/v1/tenants/acme/agents/bob/status",
        json={"status": "Available"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 502
    assert "no switch is connected" in (await response.json())["error"]["message"]
    assert [r[2] for r in audit_rows(portal_dsn) if r[1] == "set_status"] == ["failed"] * 3


async def test_a_tenant_admin_sets_any_agent_status_and_is_audited_as_the_actor(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, ALICE)
    response = await client.put(
        "/api/v1/tenants/acme/agents/bob/status",
        json={"status": "On Break"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 200
    assert deps.presence.status_calls == [("bob@acme.example.com", "On Break")]
    assert (ALICE, "set_status", "ok", "bob") in audit_rows(portal_dsn)
    page = await client.get("/t/acme")
    assert 'action="/t/acme/agents/bob/status"' in await page.text()


async def test_rotating_from_the_page_asks_first(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    url = "/t/acme/extensions/1010/rotate"
    page = await client.post(url, data={"csrf": csrf}, allow_redirects=False)
    assert page.status == 200 and deps.rotations == []
    html = await page.text()
    assert "logs out every phone" in html and "Yes, rotate the password" in html
    done = await client.post(url, data={"csrf": csrf, "confirmed": "1"}, allow_redirects=False)
    assert done.status == 303 and deps.rotations == [("acme", "1010")]


async def test_the_live_dot_says_it_is_the_live_stream_and_switches_are_their_own_fact(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    html = await (await client.get("/t/acme")).text()
    assert 'class="live-dot" role="img" title="live updates: not connected"' in html
    assert "1/1 switches connected" in html and "switch nodes connected" not in html


def test_times_are_utc_and_say_so() -> None:
    rendered = str(when("2026-03-01T10:05:09+01:00"))
    assert 'datetime="2026-03-01T09:05:09+00:00"' in rendered
    assert ">2026-03-01 09:05 UTC</time>" in rendered
    assert "never" in str(when(None))


async def test_someone_removed_from_git_is_told_why_on_the_login_page(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    acme = deps.state["acme"]
    users = {k: v for k, v in acme.users.items() if k != BOB}
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    response = await client.get("/t/acme", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?removed=1"
    page = await client.get("/login?removed=1")
    assert page.status == 200 and "your access to this portal was removed" in await page.text()
    with connect(portal_dsn) as conn:  # the useless session ended; no loop back to a page
        assert conn.execute("SELECT count(*) FROM pbx.portal_sessions").fetchone() == (0,)
    plain = await (await client.get("/login")).text()
    assert "was removed" not in plain


async def test_told_why_even_after_the_daemon_revoked_the_session(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """The usual order: a pass ends the sessions of people git dropped before they come back;
    their next page still says why (a digest of the ended session is kept), and the API says
    ``access_removed``. A session that merely expired or logged out gets no such notice."""
    await as_user(client, deps, portal_dsn, BOB)
    acme = deps.state["acme"]
    users = {k: v for k, v in acme.users.items() if k != BOB}
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    with connect(portal_dsn) as conn:
        assert revoke_unentitled(conn, deps.state, deps.admins).sessions == 1
    client.app[PORTAL_KEY].sessions.forget(email=BOB)  # what the daemon's revocation does
    api = await client.get("/api/v1/me")
    assert api.status == 401 and (await api.json())["error"]["code"] == "access_removed"
    response = await client.get("/t/acme", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?removed=1"
    client.session.cookie_jar.update_cookies({"pbx_session": "never-a-session"})
    unknown = await client.get("/t/acme", allow_redirects=False)
    assert unknown.status == 303 and "removed" not in unknown.headers["Location"]


async def test_every_request_in_flight_of_a_removed_person_is_told_why(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """A page's live stream may reach the server before the page itself: the first request
    ends the session, and the page that follows with the same cookie must still say why."""
    await as_user(client, deps, portal_dsn, BOB)
    cookie = {
        k: m.value
        for k, m in client.session.cookie_jar.filter_cookies(client.make_url("/")).items()
    }
    acme = deps.state["acme"]
    users = {k: v for k, v in acme.users.items() if k != BOB}
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    first = await client.get("/t/acme", allow_redirects=False)
    assert first.headers["Location"] == "/login?removed=1"
    client.session.cookie_jar.update_cookies(cookie)  # the same cookie, from another request
    second = await client.get("/t/acme", allow_redirects=False)
    assert second.status == 303 and second.headers["Location"] == "/login?removed=1"


async def test_a_reloaded_activation_page_says_the_account_is_active(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    with connect(portal_dsn) as conn:
        link = invite(conn, CAROL, base_url="http://portal.test", state=deps.state, admins={})
        token = link.url.rsplit("/", 1)[1]
        activate(conn, token, password=PASSWORD, confirmation=PASSWORD)
    page = await client.get(f"/activate/{token}")
    html = await page.text()
    assert page.status == 410 and "already been used: its account is active" in html
    assert 'href="/login"' in html and CAROL not in html
    unknown = await client.get("/activate/" + "x" * 43)
    assert unknown.status == 404


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("/t/acme/extensions/1010?x=1", "/t/acme/extensions/1010?x=1"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\\\evil.example", "/"),
        ("/t/acme\\\\..", "/"),
        ("javascript:alert(1)", "/"),
        ("/t/acme\\r\\nSet-Cookie: x", "/"),
    ],
)
async def test_after_logging_in_you_land_on_the_page_you_asked_for_if_it_is_ours(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, asked: str, lands: str
) -> None:
    make_account(portal_dsn, deps, CAROL)
    first = await client.get("/t/acme/extensions/1010?x=1", allow_redirects=False)
    assert first.headers["Location"] == "/login?next=%2Ft%2Facme%2Fextensions%2F1010%3Fx%3D1"
    page = await client.get("/login", params={"next": asked})
    form = {
        "csrf": csrf_of(await page.text()),
        "email": CAROL,
        "password": PASSWORD,
        "next": asked,
    }
    response = await client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == lands


async def test_people_shows_who_is_active_invited_until_when_and_last_login(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, BOB)
    await as_user(client, deps, portal_dsn, ALICE)  # alice logs in: active, with a login
    with connect(portal_dsn) as conn:
        invite(conn, CAROL, base_url="http://portal.test", state=deps.state, admins={})
        invite(conn, "dave@example.org", base_url="http://portal.test", state=deps.state, admins={})
        conn.execute(
            "UPDATE pbx.portal_invitations SET expires_at = now() - interval '1 hour'"
            " WHERE email = 'dave@example.org'"
        )
    response = await client.get("/api/v1/tenants/acme/people")
    assert response.status == 200
    people = {p["email"]: p for p in (await response.json())["people"]}
    assert people[ALICE]["standing"] == "active" and people[ALICE]["last_login_at"]
    assert people[BOB]["standing"] == "active" and people[BOB]["last_login_at"] is None
    assert people[CAROL]["standing"] == "invited" and people[CAROL]["invitation_expires_at"]
    assert people["dave@example.org"]["standing"] == "invitation expired"
    page = await client.get("/t/acme/people")
    html = await page.text()
    assert page.status == 200 and "invitation expired" in html and "expires <time" in html


async def test_people_is_for_admins_only(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    assert (await client.get("/t/acme/people")).status == 404
    assert (await client.get("/api/v1/tenants/acme/people")).status == 404


async def _login_form(client: TestClient, **fields: str) -> tuple[int, str]:
    page = await client.get("/login")
    form = {"csrf": csrf_of(await page.text()), **fields}
    response = await client.post("/login", data=form, allow_redirects=False)
    return response.status, await response.text()


async def test_the_code_is_asked_only_after_the_right_password_of_an_account_with_one(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    assert secret is not None
    make_account(portal_dsn, deps, CAROL)
    first = await _login_form(client)
    assert 'name="code"' not in first[1]  # the first step has no code field for anyone
    for email, password in ((SUPER, "wrong password!"), ("nobody@x.org", PASSWORD)):
        status, html = await _login_form(
            client, email=email, password=PASSWORD if email == "nobody@x.org" else password
        )
        assert status == 401 and 'name="code"' not in html
    status, html = await _login_form(client, email=SUPER, password=PASSWORD)
    assert status == 200 and 'name="code"' in html and PASSWORD not in html
    proof = re.search(r'name="proof" value="([^"]+)"', html)
    assert proof is not None
    forged = proof.group(1)[:-1] + ("0" if proof.group(1)[-1] != "0" else "1")
    code = pyotp.TOTP(secret).now()
    status, _ = await _login_form(client, email=SUPER, proof=forged, code=code)
    assert status == 401
    status, _ = await _login_form(client, email=CAROL, proof=proof.group(1), code=code)
    assert status == 401  # bound to its email
    status, _ = await _login_form(client, email=SUPER, proof=proof.group(1), code=code)
    assert status == 303
    await client.post(
        "/logout", data={"csrf": csrf_of(await (await client.get("/account")).text())}
    )
    status, html = await _login_form(client, email=CAROL, password=PASSWORD)
    assert status == 303  # no authenticator: one step


def test_a_stored_change_reads_like_the_plan_with_secrets_masked() -> None:
    update = {
        "kind": "queue",
        "key": "support",
        "action": "update",
        "changed": {"strategy": {"old": "ring-all", "new": "longest-idle-agent"}},
    }
    assert stored_change_line(update) == (
        'update queue support: strategy: "ring-all" -> "longest-idle-agent"'
    )
    create = {"kind": "extension", "key": "1001", "action": "create", "credentials": "(s)"}
    assert stored_change_line(create) == "create extension 1001 credentials=(sensitive, generated)"
    leaky = {
        "kind": "x",
        "key": "k",
        "action": "update",
        "changed": {"sip_password": {"old": "a", "new": "hunter2"}},
    }
    assert "hunter2" not in stored_change_line(leaky)
    assert stored_change_line({"kind": "agent", "key": "bob", "action": "delete"}) == (
        "delete agent bob"
    )


async def test_activity_lists_what_each_apply_changed(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    entry = history_entry("acme", 1)
    changes = [
        {
            "kind": "queue",
            "key": "support",
            "action": "update",
            "changed": {"strategy": {"old": "ring-all", "new": "top-down"}},
        },
        {"kind": "extension", "key": "1011", "action": "create", "credentials": "x"},
    ]
    deps.history_rows = [replace(entry, changes=changes)]
    await as_user(client, deps, portal_dsn, ALICE)
    html = await (await client.get("/t/acme/activity")).text()
    assert "update queue support: strategy: &#34;ring-all&#34; -&gt; &#34;top-down&#34;" in html
    assert "create extension 1011 credentials=(sensitive, generated)" in html

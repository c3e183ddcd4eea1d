"""The portal over HTTP (pages and JSON API) on a real database: CSRF, headers, JSON errors,
tenant isolation, the audited writes, API tokens and server-sent events."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient

from reconciler.store import connect
from reconciler.store.accounts import read_audit
from reconciler.web.middleware import CSP
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.support import login, make_account

ALICE, BOB, CAROL, GINA = (
    "alice@acme.example.com",
    "bob@acme.example.com",
    "carol@acme.example.com",
    "gina@globex.example.com",
)


async def as_user(client: TestClient, deps: FakePortalDeps, dsn: str, email: str) -> str:
    secret = make_account(dsn, deps, email)
    return await login(client, email, secret=secret, dsn=dsn)


def audit_rows(dsn: str) -> list[tuple[str | None, str, str, str | None]]:
    with connect(dsn) as conn:
        return [(a.actor, a.action, a.result, a.target) for a in read_audit(conn)]


async def test_pages_carry_strict_security_headers(client: TestClient) -> None:
    response = await client.get("/login")
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in await response.text()


async def test_a_post_without_csrf_token_is_refused(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    response = await client.post("/t/acme/agents/bob/status", data={"status": "On Break"})
    assert response.status == 403
    response = await client.put(
        "/api/v1/tenants/acme/agents/bob/status", json={"status": "On Break"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf"
    response = await client.post("/login", data={"email": BOB, "password": "x"})
    assert response.status == 403  # the login form has its own double-submit token
    assert deps.presence.status_calls == []


async def test_agent_sets_own_status_through_the_page_and_it_reaches_the_switch(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, BOB)
    response = await client.post(
        "/t/acme/agents/bob/status",
        data={"csrf": csrf, "status": "On Break"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert deps.presence.status_calls == [("bob@acme.example.com", "On Break")]
    response = await client.put(
        "/api/v1/tenants/acme/agents/bob2/status",
        json={"status": "Available"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 200
    assert (await response.json())["results"] == [{"node": "fs1", "ok": True, "error": None}]
    assert ("bob@acme.example.com", "set_status", "ok", "bob2") in audit_rows(portal_dsn)


@pytest.mark.parametrize(
    ("agent", "status", "code"),
    [
        ("alice", "On Break", 404),
        ("bob", "Available (On Demand)", 400),
        ("nosuch", "On Break", 404),
    ],
)
async def test_status_changes_are_validated_against_the_applied_state(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, agent: str, status: str, code: int
) -> None:
    csrf = await as_user(client, deps, portal_dsn, BOB)
    response = await client.put(
        f"/api/v1/tenants/acme/agents/{agent}/status",
        json={"status": status},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == code
    assert deps.presence.status_calls == []


@pytest.mark.parametrize(
    "path",
    [
        "/t/globex",
        "/t/globex/extensions/2001",
        "/api/v1/tenants/globex",
        "/api/v1/tenants/globex/extensions/2001",
        "/api/v1/tenants/globex/agents",
        "/api/v1/tenants/acme/extensions/1010",
        "/api/v1/tenants/acme/queues",
    ],
)
async def test_other_tenants_and_invisible_ids_answer_404_like_unknown_ones(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, path: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    foreign = await client.get(path)
    unknown = await client.get(
        path.replace("globex", "nosuch").replace("1010", "9999").replace("queues", "nosuch")
    )
    assert foreign.status == unknown.status == 404
    if path.startswith("/api/"):
        body = await foreign.json()
        assert body["error"]["code"] == "not_found"
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}


async def test_cross_tenant_writes_answer_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, ALICE)
    headers = {"X-CSRF-Token": csrf}
    for response in (
        await client.post(
            "/api/v1/tenants/globex/extensions/2001/credentials/reveal", headers=headers
        ),
        await client.post(
            "/api/v1/tenants/globex/extensions/2001/credentials/rotate", headers=headers
        ),
        await client.put(
            "/api/v1/tenants/globex/agents/gina/status",
            json={"status": "On Break"},
            headers=headers,
        ),
    ):
        assert response.status == 404
    assert deps.rotations == [] and deps.presence.status_calls == []


async def test_member_reveals_own_credentials_once_per_click_and_each_reveal_is_audited(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    for _ in range(2):
        response = await client.post("/t/acme/extensions/1010/reveal", data={"csrf": csrf})
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert deps.passwords["acme", "1010"] in await response.text()
    reveals = [r for r in audit_rows(portal_dsn) if r[1] == "reveal"]
    assert reveals == [(CAROL, "reveal", "ok", "1010")] * 2
    page = await client.get("/t/acme/extensions/1010")
    assert deps.passwords["acme", "1010"] not in await page.text()


async def test_member_rotates_own_credentials(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    before = deps.passwords["acme", "1010"]
    response = await client.post(
        "/api/v1/tenants/acme/extensions/1010/credentials/rotate", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 200 and deps.passwords["acme", "1010"] != before
    assert (CAROL, "rotate", "ok", "1010") in audit_rows(portal_dsn)


async def test_super_admin_sees_but_does_not_reveal_and_the_denial_is_audited(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, SUPER)
    assert (await client.get("/api/v1/tenants/globex/extensions/2001")).status == 200
    response = await client.post(
        "/api/v1/tenants/globex/extensions/2001/credentials/reveal", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    assert (SUPER, "reveal", "denied", "2001") in audit_rows(portal_dsn)


async def test_each_role_sees_exactly_its_data_in_the_api(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    detail = await (await client.get("/api/v1/tenants/acme")).json()
    assert [e["number"] for e in detail["extensions"]] == ["1002", "1003"]
    assert [a["name"] for a in detail["agents"]] == ["bob", "bob2"]
    assert "queues" not in detail and "inbound_numbers" not in detail
    listing = await (await client.get("/api/v1/tenants")).json()
    assert [t["id"] for t in listing["tenants"]] == ["acme"]
    assert (await client.get("/api/v1/nodes")).status == 404
    assert (await client.get("/api/v1/audit")).status == 404


async def test_super_admin_overview_lists_every_tenant_with_sync_state(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    from dataclasses import replace

    deps.sync["globex"] = replace(
        deps.sync["globex"], spec_errors=("tenants.d/globex.yaml:12:5: users.0.role: bad",)
    )
    await as_user(client, deps, portal_dsn, SUPER)
    listing = await (await client.get("/api/v1/tenants")).json()
    assert {t["id"]: t["sync"] for t in listing["tenants"]} == {
        "acme": "synced",
        "globex": "invalid",
        "initech": "suspended",
    }
    page = await (await client.get("/platform")).text()
    assert "tenants.d/globex.yaml:12:5" in page
    nodes = await (await client.get("/api/v1/nodes")).json()
    assert nodes["nodes"][0]["unmanaged"] == ["1000@default"]


@pytest.mark.parametrize(("email", "sees"), [(BOB, False), (CAROL, False), (ALICE, True)])
async def test_only_admins_see_a_tenants_spec_errors_and_last_error(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, email: str, sees: bool
) -> None:
    """Agents and members see that a tenant is out of sync, never what its files say."""
    from dataclasses import replace

    deps.sync["acme"] = replace(
        deps.sync["acme"],
        spec_errors=("acme.yaml:12:5: users[0].role: bad",),
        last_error="tenant acme: apply failed",
    )
    await as_user(client, deps, portal_dsn, email)
    detail = (await (await client.get("/api/v1/tenants/acme")).json())["tenant"]
    listing = (await (await client.get("/api/v1/tenants")).json())["tenants"]
    (row,) = [t for t in listing if t["id"] == "acme"]
    for shown in (detail, row):
        assert shown["sync"] == "invalid"
        assert bool(shown["spec_errors"]) is sees
        assert (shown["last_error"] is not None) is sees
    page = await (await client.get("/t/acme")).text()
    assert ("acme.yaml:12:5" in page) is sees


async def test_bearer_tokens_work_without_csrf_and_stop_when_revoked(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, BOB)
    created = await client.post(
        "/api/v1/tokens", json={"name": "wallboard"}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status == 201
    body = await created.json()
    token, token_id = body["token"], body["id"]
    with connect(portal_dsn) as conn:
        stored = conn.execute("SELECT token_hash FROM pbx.portal_api_tokens").fetchone()
    assert stored is not None and token.encode() not in bytes(stored[0])
    client.session.cookie_jar.clear()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=auth)).status == 200
    response = await client.put(
        "/api/v1/tenants/acme/agents/bob/status", json={"status": "Logged Out"}, headers=auth
    )
    assert response.status == 200
    assert (await client.delete(f"/api/v1/tokens/{token_id}", headers=auth)).status == 204
    response = await client.get("/api/v1/me", headers=auth)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"


async def test_admin_invites_own_tenant_user_but_not_another_tenants(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, ALICE)
    headers = {"X-CSRF-Token": csrf}
    ok = await client.post("/api/v1/invitations", json={"email": CAROL}, headers=headers)
    assert ok.status == 201
    assert (await ok.json())["url"].startswith("http://portal.test/activate/")
    refused = await client.post("/api/v1/invitations", json={"email": GINA}, headers=headers)
    unknown = await client.post("/api/v1/invitations", json={"email": "x@y.org"}, headers=headers)
    assert refused.status == unknown.status == 400
    assert (await refused.json())["error"]["message"].replace(GINA, "E") == (await unknown.json())[
        "error"
    ]["message"].replace("x@y.org", "E")


async def test_super_admin_revokes_another_persons_session(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    bob_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pbx_session"]
    client.session.cookie_jar.clear()
    csrf = await as_user(client, deps, portal_dsn, SUPER)
    sessions = (await (await client.get("/api/v1/sessions?all=true")).json())["sessions"]
    bob_session = next(s for s in sessions if s["email"] == BOB)
    response = await client.delete(
        f"/api/v1/sessions/{bob_session['id']}", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 204
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"pbx_session": bob_cookie.value})
    assert (await client.get("/api/v1/me")).status == 401
    assert any(r[1] == "session_revoke" for r in audit_rows(portal_dsn))


async def test_json_errors_for_bad_input(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, BOB)
    headers = {"X-CSRF-Token": csrf}
    for response in (
        await client.get("/api/v1/tenants?limit=0"),
        await client.put(
            "/api/v1/tenants/acme/agents/bob/status", data="not json", headers=headers
        ),
        await client.put("/api/v1/tenants/acme/agents/bob/status", json=["x"], headers=headers),
    ):
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_request"
    assert (await client.get("/api/v1/nothing/here")).status == 404


async def test_database_not_ready_answers_503(deps: FakePortalDeps) -> None:
    from aiohttp.test_utils import TestServer

    from reconciler.web import PortalConfig, make_portal_app

    deps.dsn = None
    app = make_portal_app(deps, PortalConfig(public_url="http://portal.test"))
    async with TestClient(TestServer(app)) as fresh:
        fresh.session.cookie_jar.update_cookies({"pbx_session": "whatever"})
        response = await fresh.get("/api/v1/me")
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "unavailable"


async def test_live_events_push_registrations_and_agent_status(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    response = await client.get("/t/acme/live")
    assert response.headers["Content-Type"].startswith("text/event-stream")

    async def next_fragments() -> dict[str, str]:
        found: dict[str, str] = {}
        while len(found) < 3:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                message = json.loads(line[6:])
                found[message["id"]] = message["html"]
        return found

    first = await asyncio.wait_for(next_fragments(), 5)
    assert "not registered" in first["live-extensions"]
    deps.presence.register("acme.example.com", "1001", user_agent="Zoiper rv2.10")
    deps.presence.caller("acme.example.com", "support", "+14155550199", "Caller One")
    update = await asyncio.wait_for(next_fragments(), 5)
    assert "Zoiper rv2.10" in update["live-extensions"]
    assert "+14155550199" in update["live-queues"] or "1 waiting" in update["live-queues"]
    response.close()


async def test_live_events_refuse_other_tenants(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    assert (await client.get("/t/globex/live")).status == 404


async def test_the_invite_form_is_only_for_admins(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    assert (await client.get("/invite")).status == 404
    assert "/invite" not in await (await client.get("/t/acme")).text()


async def test_a_person_of_several_tenants_picks_one(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, "dave@example.org")
    page = await (await client.get("/")).text()
    assert 'href="/t/acme"' in page and 'href="/t/globex"' in page
    assert "your role: agent" in page and "your role: member" in page
    me = await (await client.get("/api/v1/me")).json()
    assert [(t["id"], t["role"]) for t in me["tenants"]] == [
        ("acme", "agent"),
        ("globex", "member"),
    ]


async def test_control_characters_are_refused_before_the_database(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """Found by schemathesis: a NUL in a token name reached PostgreSQL (500)."""
    csrf = await as_user(client, deps, portal_dsn, BOB)
    response = await client.post(
        "/api/v1/tokens", json={"name": "a\x00b"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 400
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    from tests.web.support import csrf_of

    response = await client.post(
        "/login",
        data={
            "csrf": csrf_of(await page.text()),
            "email": "bob\x00@acme.example.com",
            "password": "whatever it is",
        },
    )
    assert response.status == 401


@pytest.mark.parametrize("query", ["limit=²", "limit=-1", "offset=x", "limit=501"])
async def test_odd_numbers_in_queries_are_bad_requests(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, query: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    response = await client.get(f"/api/v1/tenants?{query}")
    assert response.status == 400


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        (SUPER, "/platform/activity", 200),
        (SUPER, "/t/globex/activity", 200),
        (ALICE, "/t/acme/activity", 200),
        (ALICE, "/platform/activity", 404),
        (ALICE, "/t/globex/activity", 404),
        (BOB, "/t/acme/activity", 404),
    ],
)
async def test_activity_pages_show_history_and_audit_to_admins_only(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, who: str, path: str, status: int
) -> None:
    from tests.fakes.portal import history_entry

    deps.history_rows = [history_entry("acme", 1), history_entry("globex", 2, "failed", "boom")]
    await as_user(client, deps, portal_dsn, who)
    response = await client.get(path)
    assert response.status == status
    if status == 200:
        page = await response.text()
        assert ("boom" in page) == (path != "/t/acme/activity")  # globex's failed apply
        assert ("0000001abc" in page) == (path != "/t/globex/activity")  # acme's apply
        if who == SUPER and path == "/platform/activity":
            assert ">login<" in page  # the audit trail shows this very login


async def test_the_voicemail_pin_is_revealed_and_rotated_by_its_owner_and_audited(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    headers = {"X-CSRF-Token": csrf}
    pin_path = "/api/v1/tenants/acme/extensions/1010/voicemail-pin"
    shown = await (await client.post(pin_path + "/reveal", headers=headers)).json()
    assert shown == {"extension": "1010", "pin": deps.pins["acme", "1010"]}
    rotated = await client.post(pin_path + "/rotate", headers=headers)
    assert rotated.status == 200 and deps.pin_rotations == [("acme", "1010")]
    rows = audit_rows(portal_dsn)
    assert (CAROL, "reveal_pin", "ok", "1010") in rows
    assert (CAROL, "rotate_pin", "ok", "1010") in rows
    # another tenant's box is 404 like an unknown one; nothing rotated there
    for path in ("/api/v1/tenants/globex/extensions/2001", "/api/v1/tenants/acme/extensions/9999"):
        response = await client.post(path + "/voicemail-pin/rotate", headers=headers)
        assert response.status == 404
    assert deps.pin_rotations == [("acme", "1010")]

"""What a day of using the portal found, over HTTP: a status the switch did not take is an
error a page and a script notice, a tenant admin sets any agent's status (audited with who),
rotating asks first, times say they are UTC, the live dot says what it means."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from reconciler.web.filters import when
from tests.fakes.portal import FakePortalDeps
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

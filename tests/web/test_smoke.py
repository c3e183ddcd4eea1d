from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.support import login, make_account


async def test_each_role_gets_a_page(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    secret = make_account(portal_dsn, deps, SUPER)
    await login(client, SUPER, secret=secret, dsn=portal_dsn)
    for path in (
        "/platform",
        "/t/acme",
        "/platform/search?q=bob",
        "/platform/sessions",
        "/invite",
        "/account",
        "/t/acme/extensions/1001",
    ):
        r = await client.get(path)
        assert r.status == 200, (path, await r.text())
    make_account(portal_dsn, deps, "bob@acme.example.com")
    client.session.cookie_jar.clear()
    await login(client, "bob@acme.example.com")
    r = await client.get("/t/acme")
    assert r.status == 200, await r.text()
    r = await client.get("/t/globex")
    assert r.status == 404

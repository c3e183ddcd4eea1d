"""The portal over real tenant schemas: credentials revealed and rotated through
``StoreCalls`` (the store's own functions), history read from ``pbx.apply_history``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.store import a1_hash, connect, read_a1_hashes, show_credentials
from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.store_calls import StoreCalls
from tests.fakes.portal import FakePortalDeps, demo_state
from tests.store.test_support import converge
from tests.web.support import login, make_account

CAROL = "carol@acme.example.com"


class StoreBackedDeps(FakePortalDeps):
    """The fake daemon, but credentials and history come from the real store."""

    calls: StoreCalls

    async def history(self, tenant_id, limit):  # type: ignore[no-untyped-def]
        return await self.calls.history(tenant_id, limit)

    async def show_credentials(self, tenant_id, extension):  # type: ignore[no-untyped-def]
        return await self.calls.show_credentials(tenant_id, extension)

    async def rotate_credentials(self, tenant_id, extension):  # type: ignore[no-untyped-def]
        await self.calls.rotate_credentials(tenant_id, extension)


@pytest.fixture
async def store_client(portal_dsn: str) -> AsyncIterator[tuple[TestClient, StoreBackedDeps]]:
    state = demo_state()
    with connect(portal_dsn) as conn:
        assert converge(conn, state).ok
    deps = StoreBackedDeps(dsn=portal_dsn, state=state)
    deps.calls = StoreCalls(lambda: portal_dsn)
    app = make_portal_app(deps, PortalConfig(public_url="http://portal.test"))
    async with TestClient(TestServer(app)) as client:
        yield client, deps
    await deps.calls.close()


async def test_reveal_and_rotate_go_through_the_store(
    store_client: tuple[TestClient, StoreBackedDeps], portal_dsn: str
) -> None:
    client, deps = store_client
    make_account(portal_dsn, deps, CAROL)
    csrf = await login(client, CAROL)
    headers = {"X-CSRF-Token": csrf}
    url = "/api/v1/tenants/acme/extensions/1010/credentials"
    revealed = await (await client.post(url + "/reveal", headers=headers)).json()
    with connect(portal_dsn) as conn:
        stored = show_credentials(conn, "acme", "1010")
    assert revealed == stored.to_dict()
    assert (await client.post(url + "/rotate", headers=headers)).status == 200
    after = await (await client.post(url + "/reveal", headers=headers)).json()
    assert after["password"] != revealed["password"]
    with connect(portal_dsn) as conn:
        assert read_a1_hashes(conn)["acme", "1010"] == a1_hash(
            "1010", "acme.example.com", after["password"]
        )
    history = await (await client.get("/api/v1/tenants/acme/history")).json()
    assert history == {"error": {"code": "not_found", "message": "not found"}}


async def test_admin_sees_the_real_apply_history(
    store_client: tuple[TestClient, StoreBackedDeps], portal_dsn: str
) -> None:
    client, deps = store_client
    make_account(portal_dsn, deps, "alice@acme.example.com")
    await login(client, "alice@acme.example.com")
    history = (await (await client.get("/api/v1/tenants/acme/history")).json())["history"]
    assert [(h["tenant"], h["action"], h["result"]) for h in history] == [
        ("acme", "apply", "applied")
    ]
    assert history[0]["changes"] > 0

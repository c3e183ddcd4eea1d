"""The super admins' Carrier gateways page and API: declared gateways with their live state
per switch; unknown (404) to a tenant's admin; never a credential."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.gateways import GATEWAYS
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.support import login, make_account

ALICE = "alice@acme.example.com"
DOCUMENT: Mapping[str, Any] = {
    "declared": {
        "carrier1": {
            "managed": True,
            "proxy": "sip.carrier1.example:5061",
            "register": True,
            "transport": "tls",
            "nodes": "all",
            "error": None,
        },
        "carrier9": {
            "managed": True,
            "proxy": "sip.c9.example",
            "register": True,
            "transport": "udp",
            "nodes": "all",
            "error": "no password for gateway 'carrier9': set PBX_GATEWAY_CARRIER9_PASSWORD",
        },
        "legacy": {
            "managed": False,
            "proxy": None,
            "register": False,
            "transport": "udp",
            "nodes": "all",
            "error": None,
        },
    },
    "nodes": {
        "127.0.0.1:8021": {
            "connected": True,
            "errors": {"carrier9": "no password for gateway 'carrier9'"},
            "live": {
                "carrier1": {
                    "state": "REGED",
                    "status": "UP",
                    "ping_ms": 12.5,
                    "uptime_seconds": 30.0,
                    "calls_in": 2,
                    "calls_out": 7,
                    "failed_calls_in": 0,
                    "failed_calls_out": 1,
                },
            },
        }
    },
}


class Gateways:
    def gateways(self) -> Mapping[str, Any]:
        return DOCUMENT


@pytest.fixture
async def gateway_client(deps: FakePortalDeps, config: PortalConfig) -> AsyncIterator[TestClient]:
    app = make_portal_app(deps, config, ports={GATEWAYS: Gateways()})
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_super_admins_see_gateways_and_their_live_state(
    gateway_client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await login(gateway_client, SUPER, secret=make_account(portal_dsn, deps, SUPER), dsn=portal_dsn)
    response = await gateway_client.get("/platform/gateways")
    assert response.status == 200
    page = await response.text()
    assert "carrier1" in page and "REGED" in page and "sip.carrier1.example:5061" in page
    assert "calls in 2 / out 7" in page
    assert "managed outside" in page
    assert "PBX_GATEWAY_CARRIER9_PASSWORD" in page  # what to do, never a value
    rows = (await (await gateway_client.get("/api/v1/gateways")).json())["gateways"]
    assert [r["name"] for r in rows] == ["carrier1", "carrier9", "legacy"]
    assert rows[0]["nodes"][0]["live"]["state"] == "REGED"


async def test_tenant_admins_never_see_gateways(
    gateway_client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await login(gateway_client, ALICE, secret=make_account(portal_dsn, deps, ALICE), dsn=portal_dsn)
    assert (await gateway_client.get("/platform/gateways")).status == 404
    assert (await gateway_client.get("/api/v1/gateways")).status == 404
    home = await (await gateway_client.get("/t/acme")).text()
    assert "/platform/gateways" not in home

"""The tenant admin's read-only view of outbound calling: routes in the order numbers meet
them, each extension's calling right, the limits; nobody else of the tenant sees it, and
no other tenant's admin."""

from __future__ import annotations

from dataclasses import replace

from aiohttp.test_utils import TestClient

from reconciler.core.model import Outbound, OutboundRoute
from tests.fakes.portal import FakePortalDeps
from tests.web.test_http import ALICE, CAROL, as_user


def _with_outbound(deps: FakePortalDeps) -> None:
    acme = deps.state["acme"]
    extensions = dict(acme.extensions)
    first = min(extensions)
    extensions[first] = replace(extensions[first], calling_right="national")
    deps.state["acme"] = replace(
        acme,
        extensions=extensions,
        outbound={"outbound": Outbound("US", "+14155550100", "Acme", area_code="415")},
        outbound_routes={
            "national": OutboundRoute("national", ("carrier1", "carrier2")),
            "+44": OutboundRoute("+44", ("london",)),
            "emergency": OutboundRoute("emergency", ("carrier1",)),
        },
    )


async def test_a_tenant_admin_sees_routes_rights_and_limits(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    _with_outbound(deps)
    await as_user(client, deps, portal_dsn, ALICE)
    response = await client.get("/api/v1/tenants/acme/outbound")
    assert response.status == 200, await response.text()
    view = await response.json()
    assert [r["match"] for r in view["routes"]] == ["+44", "emergency", "national"]
    assert view["routes"][2]["gateways"] == ["carrier1", "carrier2"]
    assert view["limits"] == {"max_concurrent": 2, "calls_per_minute": 5, "international": False}
    assert view["emergency_numbers"] == ["911"]
    rights = {r["extension"]: r["calling_right"] for r in view["rights"]}
    assert rights[min(rights)] == "national" and set(rights.values()) == {"national", "internal"}
    page = await client.get("/t/acme/outbound")
    html = await page.text()
    assert page.status == 200
    assert "carrier1 → carrier2" in html and "+14155550100" in html and "refused" in html
    assert "change it in git" in html


async def test_members_and_other_tenants_get_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    _with_outbound(deps)
    await as_user(client, deps, portal_dsn, CAROL)
    assert (await client.get("/t/acme/outbound")).status == 404
    assert (await client.get("/api/v1/tenants/acme/outbound")).status == 404
    await as_user(client, deps, portal_dsn, ALICE)
    assert (await client.get("/api/v1/tenants/globex/outbound")).status == 404


async def test_a_tenant_without_outbound_says_so(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    view = await (await client.get("/api/v1/tenants/acme/outbound")).json()
    assert view["enabled"] is False and all(
        r["calling_right"] == "internal" for r in view["rights"]
    )
    assert "declares no" in await (await client.get("/t/acme/outbound")).text()

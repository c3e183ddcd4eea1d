"""The portal grows by adding a feature module: a toy feature defined here (its own port, a
page, an API operation, a header link) is served, linked and documented by handing it to
``make_portal_app``, with no other module touched; and the assembled OpenAPI document
matches the routes the app serves, operation for operation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.access import Principal
from reconciler.web.context import port_of, principal, scope
from reconciler.web.feature import Feature, NavEntry, api_paths
from reconciler.web.features import FEATURES, openapi_document
from reconciler.web.openapi import TENANT, array, obj, operation, string
from reconciler.web.ports import PortKey
from tests.fakes.portal import FakePortalDeps
from tests.web.support import login, make_account

ALICE = "alice@acme.example.com"


class Fax(Protocol):
    """The toy feature's own port: nothing in PortalDeps, the daemon or the fake knows it."""

    def messages(self, tenant_id: str, email: str) -> Sequence[str]: ...


FAX = PortKey[Fax]("fax line")


class FakeFax:
    def messages(self, tenant_id: str, email: str) -> Sequence[str]:
        return [f"{tenant_id}: hello {email}"]


toy_routes = web.RouteTableDef()


@toy_routes.get("/fax")
async def fax_page(request: web.Request) -> web.StreamResponse:
    me = principal(request)
    return web.Response(text=f"fax of {me.email}")


@toy_routes.get("/api/v1/tenants/{tenant}/fax")
async def fax_api(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    box = port_of(request, FAX)
    return web.json_response(
        {"messages": list(box.messages(sc.tenant_id, principal(request).email))}
    )


def toy_nav(who: Principal) -> Sequence[NavEntry]:
    return [NavEntry("Fax", "/fax")] if who.tenant_ids else []


def toy_paths() -> dict[str, Any]:
    return {
        "/tenants/{tenant}/fax": {
            "get": operation(
                "your fax", obj(["messages"], messages=array(string())), params=[TENANT]
            )
        }
    }


TOY = Feature(name="fax", routes=(toy_routes,), nav=toy_nav, openapi_paths=toy_paths, ports=(FAX,))


@pytest.fixture
async def toy_client(deps: FakePortalDeps, config: PortalConfig) -> AsyncIterator[TestClient]:
    app = make_portal_app(deps, config, (*FEATURES, TOY), ports={FAX: FakeFax()})
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_new_feature_module_brings_its_route_nav_entry_and_openapi_path(
    toy_client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    make_account(portal_dsn, deps, ALICE)
    await login(toy_client, ALICE)
    page = await toy_client.get("/fax")
    assert page.status == 200 and await page.text() == f"fax of {ALICE}"
    api = await toy_client.get("/api/v1/tenants/acme/fax")
    assert await api.json() == {"messages": [f"acme: hello {ALICE}"]}
    assert (await toy_client.get("/api/v1/tenants/globex/fax")).status == 404
    header = await (await toy_client.get("/account")).text()
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', header.split("</nav>")[0])
    assert links[-2:] == [("/account", "Account"), ("/fax", "Fax")]
    document = await (await toy_client.get("/api/v1/openapi.json")).json()
    assert document["paths"]["/tenants/{tenant}/fax"] == toy_paths()["/tenants/{tenant}/fax"]
    # the feature's login gate is the portal's: nothing to add for it
    toy_client.session.cookie_jar.clear()
    assert (await toy_client.get("/fax", allow_redirects=False)).status in (303, 401)


def test_a_feature_without_its_port_is_refused_at_startup(
    deps: FakePortalDeps, config: PortalConfig
) -> None:
    with pytest.raises(ValueError, match="fax: fax line"):
        make_portal_app(deps, config, (*FEATURES, TOY))


def test_two_features_cannot_document_one_path() -> None:
    twin = Feature(name="twin", routes=(), openapi_paths=toy_paths)
    with pytest.raises(ValueError, match="declared twice"):
        api_paths((TOY, twin))


def test_the_header_keeps_its_links_in_feature_order(deps: FakePortalDeps) -> None:
    from reconciler.web.access import principal_for
    from reconciler.web.feature import nav_entries
    from tests.fakes.portal import SUPER

    admin = principal_for(ALICE, deps.applied_state(), deps.platform_admins())
    assert admin is not None
    assert [(e.label, e.href) for e in nav_entries(FEATURES, admin)] == [
        ("acme", "/t/acme"),
        ("Phone", "/phone"),
        ("Calls", "/t/acme/calls"),
        ("Invite", "/invite"),
        ("Account", "/account"),
    ]
    root = principal_for(SUPER, deps.applied_state(), deps.platform_admins())
    assert root is not None
    assert [e.label for e in nav_entries(FEATURES, root)] == [
        "Platform",
        "Calls",
        "Invite",
        "Account",
    ]


def _served_api_operations(app: web.Application) -> set[tuple[str, str]]:
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/") and route.method != "HEAD":
            documented = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path[len("/api/v1") :])
            served.add((documented, route.method.lower()))
    return served


def test_the_openapi_document_covers_every_api_route_and_nothing_else(
    deps: FakePortalDeps, config: PortalConfig
) -> None:
    app = make_portal_app(deps, config)
    paths = openapi_document("http://portal.test")["paths"]
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert documented == _served_api_operations(app)

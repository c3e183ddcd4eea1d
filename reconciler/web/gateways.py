"""Carrier gateways, for super admins: what ``_platform.yaml`` declares and each switch's
live view of them (registered, failed, trying, pinging; calls in and out), as a page and as
``GET /api/v1/gateways``. Unknown (404) to everybody else: tenant admins never see a
carrier's settings, and nobody sees a credential (the daemon holds only whether the host
has one; the switch reports a password as yes/no, which is not shown either)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from reconciler.web.context import port_of, render
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, ok, require_super
from reconciler.web.openapi import obj, operation, string
from reconciler.web.ports import PortKey

routes = web.RouteTableDef()


class GatewaysView(Protocol):
    def gateways(self) -> Mapping[str, Any]:
        """``/status``'s ``gateways``: ``declared`` (by name: managed, proxy, register,
        transport, nodes, error) and ``nodes`` (by node: ``live`` by gateway, ``errors``)."""
        ...


class NoGateways:
    """A portal whose daemon gives no gateway view (tests of other features)."""

    def gateways(self) -> Mapping[str, Any]:
        return {"declared": {}, "nodes": {}}


GATEWAYS = PortKey[GatewaysView]("carrier gateways")


def gateway_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per declared gateway with its state on each node (``-`` where a node does
    not report it), then gateways a node carries that git does not declare."""
    declared: Mapping[str, Any] = document.get("declared", {})
    nodes: Mapping[str, Any] = document.get("nodes", {})
    names = list(declared) + sorted(
        {g for n in nodes.values() for g in n.get("live", {})} - set(declared)
    )
    rows = []
    for name in names:
        spec = declared.get(name)
        per_node = []
        for node, report in nodes.items():
            live = report.get("live", {}).get(name)
            error = report.get("errors", {}).get(name)
            per_node.append({"node": node, "live": live, "error": error})
        rows.append({"name": name, "declared": spec, "nodes": per_node})
    return rows


@routes.get("/platform/gateways")
async def gateways_page(request: web.Request) -> web.StreamResponse:
    require_super(request)
    document = port_of(request, GATEWAYS).gateways()
    nodes = document.get("nodes", {})
    node_errors = {n: r.get("errors", {}).get("") for n, r in nodes.items()}
    return render(
        request,
        "gateways.html",
        rows=gateway_rows(document),
        node_names=list(nodes),
        node_errors={n: e for n, e in node_errors.items() if e},
    )


@routes.get(V1 + "/gateways")
async def api_gateways(request: web.Request) -> web.StreamResponse:
    require_super(request)
    return ok({"gateways": gateway_rows(port_of(request, GATEWAYS).gateways())})


def _paths() -> dict[str, Any]:
    return {
        "/gateways": {
            "get": operation(
                "carrier gateways and their live state per switch (super admins)",
                obj(
                    ["gateways"], gateways={"type": "array", "items": obj(["name"], name=string())}
                ),
            )
        }
    }


FEATURE = Feature(
    name="gateways",
    routes=(routes,),
    openapi_paths=_paths,
    ports=(GATEWAYS,),
)

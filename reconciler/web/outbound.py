"""Outbound calling, read-only, for a tenant's admins: how the tenant calls outside numbers
(``/t/{tenant}/outbound`` and ``/api/v1/tenants/{tenant}/outbound``).

Git is the only place where this changes: the page shows what was applied (routes in the
order a number is matched, each extension's calling right, the toll-fraud limits) and says
which file to edit. Members, agents and super admins who are no admin of the tenant get 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from reconciler.core.model import Outbound, OutboundRoute, TenantState
from reconciler.web.access import TenantScope
from reconciler.web.context import render, scope
from reconciler.web.errors import NotFound
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, ok
from reconciler.web.openapi import TENANT, array, boolean, integer, obj, operation, string
from specs_schema.numbering import COUNTRIES

routes = web.RouteTableDef()
API = V1 + "/tenants/{tenant}/outbound"


def _admin_scope(request: web.Request) -> TenantScope:
    sc = scope(request, request.match_info["tenant"])
    if not sc.sees_all:
        raise NotFound("not found")
    return sc


def route_order(routes: Mapping[str, OutboundRoute]) -> list[OutboundRoute]:
    """Routes as a number meets them: E.164 prefixes, longest first, then the classes."""
    prefixes = sorted((r for r in routes.values() if r.match.startswith("+")),
                      key=lambda r: (-len(r.match), r.match))  # fmt: skip
    order = ("emergency", "local", "national", "international")
    classes = sorted((r for r in routes.values() if not r.match.startswith("+")),
                     key=lambda r: order.index(r.match) if r.match in order else len(order))  # fmt: skip
    return prefixes + classes


def outbound_view(state: TenantState) -> dict[str, Any]:
    """What the page and the API show: nothing secret (no carrier credential is a record)."""
    settings: Outbound | None = next(iter(state.outbound.values()), None)
    rights = [
        {"extension": e.number, "name": e.name, "calling_right": e.calling_right}
        for e in sorted(state.extensions.values(), key=lambda e: e.number)
    ]
    if settings is None:
        return {"enabled": False, "rights": rights}
    country = COUNTRIES.get(settings.country)
    return {
        "enabled": True,
        "country": settings.country,
        "country_name": country.name if country else settings.country,
        "area_code": settings.area_code,
        "caller_id_number": settings.caller_id_number,
        "caller_id_name": settings.caller_id_name,
        "emergency_caller_id_number": settings.emergency_caller_id_number
        or settings.caller_id_number,
        "emergency_numbers": list(
            settings.emergency_numbers or (country.emergency if country else ())
        ),
        "routes": [
            {"match": r.match, "gateways": list(r.gateways)}
            for r in route_order(state.outbound_routes)
        ],
        "limits": {
            "max_concurrent": settings.max_concurrent,
            "calls_per_minute": settings.calls_per_minute,
            "international": settings.international,
        },
        "rights": rights,
    }


@routes.get("/t/{tenant}/outbound")
async def outbound_page(request: web.Request) -> web.StreamResponse:
    sc = _admin_scope(request)
    return render(
        request, "outbound.html", tenant=sc.state.tenant, outbound=outbound_view(sc.state)
    )


@routes.get(API)
async def api_outbound(request: web.Request) -> web.StreamResponse:
    sc = _admin_scope(request)
    return ok(outbound_view(sc.state))


def _paths() -> dict[str, Any]:
    text, maybe = string(), string(True)
    schema = obj(
        ["enabled", "rights"],
        enabled=boolean(), country=text, country_name=text, area_code=maybe,
        caller_id_number=text, caller_id_name=maybe, emergency_caller_id_number=text,
        emergency_numbers=array(text),
        routes=array(obj(["match", "gateways"], match=text, gateways=array(text))),
        limits=obj(["max_concurrent", "calls_per_minute", "international"],
                   max_concurrent=integer(), calls_per_minute=integer(), international=boolean()),
        rights=array(obj(["extension", "calling_right"], extension=text, name=text,
                         calling_right=string(enum=["internal", "local", "national", "international"]))),
    )  # fmt: skip
    return {
        "/tenants/{tenant}/outbound": {
            "get": operation(
                "Outbound calling of a tenant (its admins): routes, rights, limits; read-only",
                schema,
                params=[TENANT],
            )
        }
    }


FEATURE = Feature(name="outbound calling", routes=(routes,), openapi_paths=_paths)

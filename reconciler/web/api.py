"""The JSON API, ``/api/v1``: the same answers as the pages (built by ``views``), the same
authorization (session cookie + ``X-CSRF-Token`` for writes, or ``Authorization: Bearer``),
errors as ``{"error": {"code", "message"}}`` with the codes of ``errors``. Each feature
serves its own operations; this module serves who is calling (``/me``) and the OpenAPI
document assembled from every feature's paths (``/openapi.json``), which the tests hold the
handlers to."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.web import views
from reconciler.web.context import features_of, portal_of, principal
from reconciler.web.feature import Feature, api_paths
from reconciler.web.handling import V1, ok
from reconciler.web.openapi import document, operation, ref

routes = web.RouteTableDef()


@routes.get(V1 + "/openapi.json")
async def openapi(request: web.Request) -> web.StreamResponse:
    paths = api_paths(features_of(request))
    return ok(document(portal_of(request).config.base_url, paths))


@routes.get(V1 + "/me")
async def me(request: web.Request) -> web.StreamResponse:
    return ok(views.me_view(principal(request), portal_of(request).deps.applied_state()))


def _paths() -> dict[str, Any]:
    return {
        "/openapi.json": {"get": operation("this document", {"type": "object"}, public=True)},
        "/me": {"get": operation("who am I, and my tenants", ref("Me"))},
    }


FEATURE = Feature(name="api", routes=(routes,), openapi_paths=_paths)

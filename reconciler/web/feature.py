"""What one portal feature declares, so the portal grows by adding a module: its routes, its
navigation entries for a given person, its OpenAPI paths and the ports it reads.

``server.make_portal_app`` builds the application from a list of ``Feature`` values
(``features.FEATURES`` by default): it adds every feature's routes, checks that every port a
feature needs was given, and the page header and ``/api/v1/openapi.json`` are assembled from
the features' ``nav`` and ``openapi_paths``. No other module names a feature.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from reconciler.web.access import Principal
from reconciler.web.ports import PortKey


@dataclass(frozen=True, slots=True)
class NavEntry:
    """One link of the page header. ``prefix``: highlighted on every page under ``href``
    (else only on ``href`` itself)."""

    label: str
    href: str
    prefix: bool = False

    def on(self, path: str) -> bool:
        return path.startswith(self.href) if self.prefix else path == self.href


def no_nav(_who: Principal) -> Sequence[NavEntry]:
    return ()


def no_paths() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Feature:
    """``routes``: the feature's route tables (pages, API, streams). ``nav(who)``: the header
    links this person gets (none when the feature is not theirs). ``openapi_paths()``: its
    ``/api/v1`` operations, keyed by the path below ``/api/v1`` (built with ``openapi``'s
    helpers). ``ports``: the keys of the ports its handlers read with ``context.port_of``;
    the app refuses to start without them. ``lifetime``: aiohttp cleanup contexts, for
    what a feature runs beside its requests (started with the app, ended at shutdown)."""

    name: str
    routes: tuple[web.RouteTableDef, ...]
    nav: Callable[[Principal], Sequence[NavEntry]] = no_nav
    openapi_paths: Callable[[], Mapping[str, Any]] = no_paths
    ports: tuple[PortKey[Any], ...] = field(default=())
    lifetime: tuple[Callable[[web.Application], AsyncIterator[None]], ...] = ()


def nav_entries(features: Sequence[Feature], who: Principal) -> list[NavEntry]:
    """The header of ``who``'s pages, in the features' order."""
    return [entry for feature in features for entry in feature.nav(who)]


def api_paths(features: Sequence[Feature]) -> dict[str, Any]:
    """Every feature's OpenAPI paths; a path two features both declare is a mistake."""
    paths: dict[str, Any] = {}
    for feature in features:
        for path, operations in feature.openapi_paths().items():
            if path in paths:
                raise ValueError(f"OpenAPI path {path} declared twice (feature {feature.name})")
            paths[path] = operations
    return paths

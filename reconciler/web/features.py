"""The portal's features, in the order of the page header: the one list a new feature
module is added to (``feature.Feature``)."""

from __future__ import annotations

from typing import Any

from reconciler.web import (
    account,
    activity,
    api,
    calls,
    gateways,
    invites,
    lockouts,
    login_pages,
    outbound,
    people,
    platform,
    recordings,
    softphone,
    tenants,
    voicemail,
    wallboard,
)
from reconciler.web.feature import Feature, api_paths
from reconciler.web.openapi import document

FEATURES: tuple[Feature, ...] = (
    login_pages.FEATURE,
    api.FEATURE,
    platform.FEATURE,
    gateways.FEATURE,
    tenants.FEATURE,
    softphone.FEATURE,
    activity.FEATURE,
    wallboard.FEATURE,
    people.FEATURE,
    calls.FEATURE,
    outbound.FEATURE,
    recordings.FEATURE,
    voicemail.FEATURE,
    invites.FEATURE,
    account.FEATURE,
    lockouts.FEATURE,
)


def openapi_document(base_url: str, features: tuple[Feature, ...] = FEATURES) -> dict[str, Any]:
    """The ``/api/v1`` document of ``features`` (what ``/api/v1/openapi.json`` serves)."""
    return document(base_url, api_paths(features))

"""Rules of a tenant's ``outbound:`` that a single field cannot express.

Pure functions over raw YAML data, ``(loc, message)`` findings like ``specs_schema.rules``.
``outbound_findings`` needs only the tenant file; ``outbound_platform_findings`` checks it
against ``_platform.yaml``: routes name declared gateways, and every caller id presented is
one of the tenant's own DIDs or a number the platform allows it (no tenant may present
another tenant's number).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from specs_schema.numbering import COUNTRIES, CallingRight, NumberClass
from specs_schema.positions import Loc, shown

Finding = tuple[Loc, str]

_EMERGENCY_CARRIERS = (NumberClass.EMERGENCY, NumberClass.LOCAL, NumberClass.NATIONAL)
"""Routes an emergency call may take, in order (a local or national route carries it when
no route names emergency)."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def outbound_findings(data: Mapping[str, Any]) -> list[Finding]:
    """Rights need ``outbound:``; international needs ``limits.international``; routes are
    distinct and carry emergency calls; emergency numbers are the country's own."""
    outbound = data.get("outbound")
    findings: list[Finding] = []
    extensions = [(i, _mapping(e)) for i, e in enumerate(_list(data.get("extensions")))]
    rights = [(i, e.get("calling_right")) for i, e in extensions if "calling_right" in e]
    if not isinstance(outbound, Mapping):
        for i, right in rights:
            if right not in (None, CallingRight.INTERNAL.value):
                findings.append(
                    (
                        ("extensions", i, "calling_right"),
                        "a calling right beyond internal needs the tenant's `outbound:` "
                        "(country, routes, caller id)",
                    )
                )
        return findings
    international = _mapping(outbound.get("limits")).get("international") is True
    if not international:
        where: list[tuple[Loc, object]] = [
            (("outbound", "default_calling_right"), outbound.get("default_calling_right"))
        ]
        where += [(("extensions", i, "calling_right"), right) for i, right in rights]
        for loc, right in where:
            if right == CallingRight.INTERNATIONAL.value:
                findings.append(
                    (
                        loc,
                        "international calls are off for this tenant: declare "
                        "outbound.limits.international: true to grant this right",
                    )
                )
    findings += _route_findings(outbound)
    findings += _emergency_findings(outbound)
    findings += _emergency_clashes(data, outbound)
    if not _mapping(outbound.get("caller_id")).get("number") and not _mapping(
        _mapping(data.get("settings")).get("outbound_caller_id")
    ).get("number"):
        findings.append(
            (
                ("outbound",),
                "no caller id to present: declare outbound.caller_id.number (one of this "
                "tenant's DIDs) or settings.outbound_caller_id",
            )
        )
    return findings


def _route_findings(outbound: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[str] = set()
    for i, route in enumerate(_list(outbound.get("routes"))):
        match = _mapping(route).get("match")
        if not isinstance(match, str):
            continue
        if match in seen:
            findings.append((("outbound", "routes", i, "match"), f"{shown(match)} is routed twice"))
        seen.add(match)
    if not seen.intersection(_EMERGENCY_CARRIERS):
        findings.append(
            (
                ("outbound", "routes"),
                "emergency calls need a route: add one matching emergency (or local or "
                "national, which then carries them)",
            )
        )
    return findings


def _emergency_findings(outbound: Mapping[str, Any]) -> list[Finding]:
    country = COUNTRIES.get(str(outbound.get("country")))
    numbers = _mapping(outbound.get("emergency")).get("numbers")
    if country is None or not isinstance(numbers, list):
        return []
    return [
        (
            ("outbound", "emergency", "numbers", i),
            f"{shown(str(number))} is not an emergency number of {country.name} "
            f"({', '.join(country.emergency)}): it would bypass calling rights and limits",
        )
        for i, number in enumerate(numbers)
        if number not in country.emergency
    ]


def _emergency_clashes(data: Mapping[str, Any], outbound: Mapping[str, Any]) -> list[Finding]:
    """No extension or queue takes an emergency number: its own number would win over the
    outside call, and a person dialling 911 would reach a desk phone."""
    country = COUNTRIES.get(str(outbound.get("country")))
    if country is None:
        return []
    return [
        (
            (field, i, "number"),
            f"{shown(str(number))} is an emergency number of {country.name}: dialled, it must "
            "reach the emergency services",
        )
        for field in ("extensions", "queues")
        for i, item in enumerate(_list(data.get(field)))
        if (number := _mapping(item).get("number")) in country.emergency
    ]


def gateway_problem(
    gateway: object, gateways: Collection[str] | None, platform_file: str
) -> str | None:
    """Why a reference to ``gateway`` is wrong (``_platform.yaml`` does not declare it, or
    cannot be read), or None; a value of the wrong shape is left to model validation."""
    if not isinstance(gateway, str):
        return None
    if gateways is None:
        return f"gateway {shown(gateway)} cannot be checked: {platform_file} is invalid"
    if gateway not in gateways:
        declared = ", ".join(sorted(gateways))
        return f"gateway {shown(gateway)} is not declared in _platform.yaml gateways: [{declared}]"
    return None


def outbound_platform_findings(
    data: Mapping[str, Any],
    gateways: Collection[str] | None,
    allowed_caller_ids: Collection[str] | None,
    platform_file: str,
) -> list[Finding]:
    """Routes name gateways of ``_platform.yaml``; each caller id presented is an own DID
    or a number the platform allows this tenant. ``None``: the platform file is invalid,
    so nothing can be checked, and each reference is an error (the tenant stays frozen)."""
    outbound = data.get("outbound")
    if not isinstance(outbound, Mapping):
        return []
    findings: list[Finding] = []
    for i, route in enumerate(_list(outbound.get("routes"))):
        for j, gateway in enumerate(_list(_mapping(route).get("gateways"))):
            problem = gateway_problem(gateway, gateways, platform_file)
            if problem is not None:
                findings.append((("outbound", "routes", i, "gateways", j), problem))
    own = {
        n
        for d in _list(data.get("inbound_numbers"))
        if isinstance(n := _mapping(d).get("number"), str)
    }
    for loc, number in _caller_ids(data, outbound):
        if allowed_caller_ids is None:
            findings.append(
                (loc, f"caller id {shown(number)} cannot be checked: {platform_file} is invalid")
            )
        elif number not in own and number not in allowed_caller_ids:
            findings.append(
                (
                    loc,
                    f"caller id {shown(number)} is neither one of this tenant's inbound_numbers "
                    "nor allowed to it in _platform.yaml outbound_caller_ids: a tenant presents "
                    "only its own numbers",
                )
            )
    return findings


def _caller_ids(data: Mapping[str, Any], outbound: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Every caller id number outside calls would present, where it is written."""
    found: list[tuple[Loc, str]] = []
    number = _mapping(outbound.get("caller_id")).get("number")
    if isinstance(number, str):
        found.append((("outbound", "caller_id", "number"), number))
    else:
        fallback = _mapping(_mapping(data.get("settings")).get("outbound_caller_id")).get("number")
        if isinstance(fallback, str):
            found.append((("settings", "outbound_caller_id", "number"), fallback))
    emergency = _mapping(outbound.get("emergency")).get("caller_id")
    if isinstance(emergency, str):
        found.append((("outbound", "emergency", "caller_id"), emergency))
    return found

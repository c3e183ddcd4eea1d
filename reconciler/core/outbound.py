"""Deciding one outside call: normalise, classify, check the caller's right, pick the route.

Pure, and quick enough for the xml_curl hot path (string operations and a few dict hits):
``decide(policy, right, dialled)`` is called when a number dialled in a tenant's context is
none of its extensions, queues or codes. It returns the call to place (E.164 number, the
gateways in failover order, the caller id, whether the toll-fraud limits apply) or why it is
refused; None when the number is no outside number at all (then the call is unallocated, as
before outbound calling existed).

Only the tenant's own policy is ever read: the snapshot hands each tenant's policy to its
own context, so a number dialled in one tenant can never take another's route or caller id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from reconciler.core.model import Outbound, OutboundRoute
from specs_schema.numbering import (
    COUNTRIES,
    CallingRight,
    NumberClass,
    allows,
    classify,
)

# A route of a narrower class carries wider calls only in this direction: a national route
# also carries local calls, and emergency calls take any route of the country.
_ROUTE_FALLBACK: dict[NumberClass, tuple[str, ...]] = {
    NumberClass.EMERGENCY: ("emergency", "local", "national"),
    NumberClass.LOCAL: ("local", "national"),
    NumberClass.NATIONAL: ("national",),
    NumberClass.INTERNATIONAL: ("international",),
}


class Refusal(StrEnum):
    """Why an outside call is refused, as the CDR's ``pbx_outbound_refused`` says it."""

    NO_RIGHT = "no_right"  # the caller's calling right is below the number's class
    INTERNATIONAL_OFF = "international_off"  # the tenant has not declared international
    NO_ROUTE = "no_route"  # no route of the tenant carries this number


REFUSAL_CAUSE = {
    Refusal.NO_RIGHT: "OUTGOING_CALL_BARRED",
    Refusal.INTERNATIONAL_OFF: "OUTGOING_CALL_BARRED",
    Refusal.NO_ROUTE: "NO_ROUTE_DESTINATION",
}
"""The hangup cause a refused call ends with (SIP 403 for barred, 404 for no route)."""

LIMIT_CAUSE = "CALL_REJECTED"
"""The hangup cause of a call over the tenant's concurrency or rate limit (SIP 603)."""


class OutboundPolicy(NamedTuple):
    """A tenant's outbound settings and routes as served (routes sorted by match)."""

    settings: Outbound
    routes: tuple[OutboundRoute, ...]


class OutboundCall(NamedTuple):
    """A call to place: ``number`` is E.164, or the emergency number itself."""

    number: str
    number_class: NumberClass
    gateways: tuple[str, ...]
    caller_id_number: str
    caller_id_name: str | None
    limited: bool  # the tenant's concurrency and rate limits apply (not to emergency calls)


class Refused(NamedTuple):
    number: str
    number_class: NumberClass
    reason: Refusal

    @property
    def cause(self) -> str:
        return REFUSAL_CAUSE[self.reason]


def decide(policy: OutboundPolicy, right: str, dialled: str) -> OutboundCall | Refused | None:
    """The call ``dialled`` by an extension with calling ``right`` makes, or why not."""
    settings = policy.settings
    country = COUNTRIES.get(settings.country)
    if country is None:
        return None
    area = settings.area_code or ""
    classified = classify(dialled, country, area)
    if classified is None:
        return None
    number, number_class = classified
    if number_class is NumberClass.EMERGENCY:
        if settings.emergency_numbers and number not in settings.emergency_numbers:
            return None
    elif number_class is NumberClass.INTERNATIONAL and not settings.international:
        return Refused(number, number_class, Refusal.INTERNATIONAL_OFF)
    elif not allows(right, number_class):
        return Refused(number, number_class, Refusal.NO_RIGHT)
    gateways = route_for(policy.routes, number, number_class)
    if not gateways:
        return Refused(number, number_class, Refusal.NO_ROUTE)
    emergency = number_class is NumberClass.EMERGENCY
    caller_id = (emergency and settings.emergency_caller_id_number) or settings.caller_id_number
    return OutboundCall(
        number, number_class, gateways, caller_id, settings.caller_id_name, not emergency
    )


def route_for(
    routes: tuple[OutboundRoute, ...], number: str, number_class: NumberClass
) -> tuple[str, ...]:
    """The gateways of the longest E.164 prefix route matching ``number``, else of the
    route of its class (or the wider class that carries it); () when none does."""
    by_match = {r.match: r.gateways for r in routes}
    if number_class is not NumberClass.EMERGENCY:
        prefixes = [
            r.match for r in routes if r.match.startswith("+") and number.startswith(r.match)
        ]
        if prefixes:
            return by_match[max(prefixes, key=len)]
    for match in _ROUTE_FALLBACK[number_class]:
        if match in by_match:
            return by_match[match]
    return ()


def right_of(value: str) -> CallingRight:
    """A stored right as the enum; anything unknown is the narrowest right."""
    try:
        return CallingRight(value)
    except ValueError:
        return CallingRight.INTERNAL

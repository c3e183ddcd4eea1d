"""``sofia xmlstatus gateway``: every gateway of every running profile, as FreeSWITCH 1.10
writes it (``mod_sofia.c``'s ``xml_gateway_status``; captured in
``tests/fakes/freeswitch/captures/sofia_gateways``), parsed into ``LiveGateway``s.

The reply is ISO-8859-1 XML with the password reduced to ``yes``/``no`` by the switch
itself, so nothing secret ever crosses here. A reply that is not this document is an
error (``GatewayListingError``), never "no gateways" (which would read as drift to repair
on every gateway at once).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from reconciler.core.errors import Permanent


class GatewayListingError(Permanent):
    """``sofia xmlstatus gateway`` answered something that is not the gateway list."""


@dataclass(frozen=True, slots=True)
class LiveGateway:
    """One gateway as the switch reports it. ``state``: the registration state (``REGED``,
    ``NOREG``, ``TRYING``, ``FAILED``, ``FAIL_WAIT``, ``UNREGED``, ...); ``status``: ``UP``
    or ``DOWN`` (the OPTIONS ping's verdict; ``UP`` without ping)."""

    name: str
    profile: str
    realm: str
    username: str
    password: bool
    proxy: str
    expires: str
    ping_seconds: int
    state: str
    status: str
    pinging: bool
    ping_ms: float
    uptime_seconds: float
    calls_in: int
    calls_out: int
    failed_calls_in: int
    failed_calls_out: int

    @property
    def registered(self) -> bool:
        return self.state == "REGED"

    def to_dict(self) -> dict[str, object]:
        """For /status and the portal: what an operator reads (no secret exists here)."""
        return {
            "state": self.state,
            "status": self.status,
            "ping_ms": self.ping_ms,
            "uptime_seconds": round(self.uptime_seconds, 1),
            "calls_in": self.calls_in,
            "calls_out": self.calls_out,
            "failed_calls_in": self.failed_calls_in,
            "failed_calls_out": self.failed_calls_out,
        }


def parse_gateway_list(reply: str) -> dict[str, LiveGateway]:
    """Every gateway of ``sofia xmlstatus gateway``, by name."""
    body = reply.strip()
    if not body.startswith("<?xml"):
        raise GatewayListingError(f"not a gateway list: {body[:80]!r}")
    if "<!DOCTYPE" in body or "<!ENTITY" in body:
        raise GatewayListingError("gateway list with a DOCTYPE: refused")
    try:
        root = ET.fromstring(body.encode("latin-1", "replace"))  # noqa: S314 -- no DOCTYPE
    except ET.ParseError as exc:
        raise GatewayListingError(f"unreadable gateway list: {exc}") from exc
    if root.tag != "gateways":
        raise GatewayListingError(f"not a gateway list: <{root.tag}>")
    gateways: dict[str, LiveGateway] = {}
    for element in root.findall("gateway"):
        gateway = _gateway(element)
        # newest first: a gateway killed and started again is listed twice until sofia
        # reaps the killed one (seen: within ~3 s); the first is the live one
        gateways.setdefault(gateway.name, gateway)
    return gateways


def _gateway(element: ET.Element) -> LiveGateway:
    def text(tag: str) -> str:
        return element.findtext(tag) or ""

    def number(tag: str) -> int:
        value = text(tag)
        return int(value) if value.lstrip("-").isdigit() else 0

    try:
        ping_ms = float(text("pingtime") or 0)
    except ValueError:
        ping_ms = 0.0
    return LiveGateway(
        name=text("name"),
        profile=text("profile"),
        realm=text("realm"),
        username=text("username"),
        password=text("password") == "yes",
        proxy=text("proxy"),
        expires=text("expires"),
        ping_seconds=number("pingfreq"),
        state=text("state"),
        status=text("status"),
        pinging=number("pinging") != 0,
        ping_ms=ping_ms,
        uptime_seconds=number("uptime-usec") / 1_000_000,
        calls_in=number("calls-in"),
        calls_out=number("calls-out"),
        failed_calls_in=number("failed-calls-in"),
        failed_calls_out=number("failed-calls-out"),
    )

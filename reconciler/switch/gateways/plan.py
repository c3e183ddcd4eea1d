"""What one switch's ``carriers`` profile must do to hold exactly its declared gateways:
pure, from the applied gateways, the live listing and what this node was last given.

* declared here, not on the switch (new, or killed by hand, or a restarted switch):
  ``start`` (``startgw``: the switch fetches it over xml_curl);
* on the switch but different from what was declared: ``restart`` (``killgw`` then
  ``startgw``; sofia replaces a gateway marked deleted at once). Different means either
  the record changed since this node last started it (``started``: settings, nodes or
  the credentials marker, so a new password is picked up) or what the switch reports
  disagrees with the record (changed by hand: realm, user name, password present, expiry,
  ping interval, proxy);
* on the carriers profile and not declared at all: ``kill``. A gateway declared by name
  only is managed outside and never touched; other profiles are never touched.
* a gateway whose password this host does not hold (``missing_reason``, or a record
  planned ``missing``) is neither started nor changed; it is reported (an error of that
  gateway only).

Nothing here restarts a profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.core.model import Gateway
from reconciler.switch.gateways.listing import LiveGateway

CARRIERS_PROFILE = "carriers"
MISSING = "missing"


class GatewayAction(StrEnum):
    START = "start"
    RESTART = "restart"
    KILL = "kill"


@dataclass(frozen=True, slots=True)
class GatewayStep:
    action: GatewayAction
    name: str
    reason: str


@dataclass(frozen=True)
class GatewayPlan:
    steps: tuple[GatewayStep, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    """Declared gateways this node cannot carry now, and why (no password on the host)."""

    @property
    def empty(self) -> bool:
        return not self.steps


def carried_here(gateways: Mapping[str, Gateway], node: str, host: str) -> dict[str, Gateway]:
    """The managed gateways ``node`` carries (``nodes:`` empty: every node)."""
    return {n: g for n, g in gateways.items() if g.managed and g.carried_by(node, host)}


def plan_gateways(
    declared: Mapping[str, Gateway],
    carried: Mapping[str, Gateway],
    live: Mapping[str, LiveGateway],
    started: Mapping[str, Gateway],
    missing_reason: Mapping[str, str] | None = None,
) -> GatewayPlan:
    """``declared``: every gateway of the applied platform (managed or not); ``carried``:
    those this node carries; ``started``: the record this node was last started with,
    per gateway (this daemon's memory)."""
    steps: list[GatewayStep] = []
    errors: dict[str, str] = {}
    reasons = missing_reason or {}
    for name, gateway in sorted(carried.items()):
        if gateway.credentials == MISSING or name in reasons:
            errors[name] = reasons.get(name) or f"no password for gateway '{name}'"
            continue
        on_switch = live.get(name)
        if on_switch is None:
            steps.append(GatewayStep(GatewayAction.START, name, "not on the switch"))
            continue
        if on_switch.profile != CARRIERS_PROFILE:
            errors[name] = f"gateway '{name}' is defined on profile {on_switch.profile!r}"
            continue
        before = started.get(name)
        if before is not None and before != gateway:
            steps.append(GatewayStep(GatewayAction.RESTART, name, "declaration changed"))
            continue
        drift = differences(gateway, on_switch)
        if drift:
            steps.append(
                GatewayStep(GatewayAction.RESTART, name, "changed on the switch: " + drift)
            )
    for name, on_switch in sorted(live.items()):
        if on_switch.profile != CARRIERS_PROFILE or name in carried:
            continue
        known = declared.get(name)
        if known is not None and not known.managed:
            continue  # managed outside
        reason = "not declared" if known is None else "declared for other nodes"
        steps.append(GatewayStep(GatewayAction.KILL, name, reason))
    return GatewayPlan(tuple(steps), errors)


def differences(gateway: Gateway, live: LiveGateway) -> str:
    """What the switch reports that the declaration does not say (comma-separated field
    names; empty when they agree)."""
    expected = {
        "realm": gateway.realm,
        "username": gateway.username or "FreeSWITCH",
        "password": gateway.credentials not in ("none", MISSING),
        "expires": str(gateway.expire_seconds),
        "ping_seconds": gateway.ping_seconds,
    }
    seen = {
        "realm": live.realm,
        "username": live.username,
        "password": live.password,
        "expires": live.expires,
        "ping_seconds": live.ping_seconds,
    }
    fields = [k for k, v in expected.items() if seen[k] != v]
    if gateway.registrar not in live.proxy:
        fields.append("proxy")
    return ", ".join(fields)

"""The gateway engine: one switch's carrier gateways kept equal to the applied platform
state over ESL, and their live state read back (registration, ping, calls) for /status,
metrics and the portal.

An ``Engine`` on the COMMANDS lane (``runs = LEADER``: every daemon reads, only the leader
is given a desired state and writes). On every (re)connect it runs a pass at once (a
restarted switch comes back without our gateways: they are started again), then one every
``poll_seconds`` for the connection's life: read ``sofia xmlstatus gateway``, plan
(``plan``), send ``startgw``/``killgw`` (``commands``); a gateway killed or changed by hand
is repaired by the next poll, like mod_callcenter drift. Passes on a node are serialized;
nothing raises out of a pass (``GatewayReport.errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.core.errors import Permanent
from reconciler.core.model import Gateway
from reconciler.esl import EslConnection
from reconciler.switch.api import Api, connection_api
from reconciler.switch.errors import NodeTimeout, NodeUnreachable, UnsafeArgument
from reconciler.switch.gateways.listing import LiveGateway, parse_gateway_list
from reconciler.switch.gateways.plan import (
    CARRIERS_PROFILE,
    GatewayAction,
    GatewayPlan,
    GatewayStep,
    carried_here,
    plan_gateways,
)
from reconciler.switch.leader_engine import LeaderEngine
from reconciler.switch.session import NodeSession
from specs_schema.shapes import GATEWAY_PATTERN

log = logging.getLogger(__name__)

LIST_COMMAND = "sofia xmlstatus gateway"


def gateway_command(action: str, name: str) -> str:
    """``sofia profile carriers startgw|killgw <name>``: the name is a gateway slug, checked
    again here (it is an argument of a command the switch runs)."""
    if not re.fullmatch(GATEWAY_PATTERN, name):
        raise UnsafeArgument(f"not a gateway name: {name!r}")
    return f"sofia profile {CARRIERS_PROFILE} {action} {name}"


@dataclass(frozen=True)
class GatewayReport:
    """One pass on one node: what was done, what is live, what is wrong."""

    node: str
    connected: bool
    trigger: str
    live: Mapping[str, LiveGateway] = field(default_factory=dict)
    done: tuple[str, ...] = ()
    """``<action> <gateway>: <reason>`` for every step sent and accepted."""
    repaired: tuple[str, ...] = ()
    """Gateways put back after a change on the switch (drift), by name."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """By gateway name, or ``""`` for the node as a whole."""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "trigger": self.trigger,
            "at": self.at.isoformat(timespec="seconds"),
            "done": list(self.done),
            "errors": dict(self.errors),
            "live": {name: g.to_dict() for name, g in sorted(self.live.items())},
        }


@dataclass(frozen=True)
class DesiredGateways:
    """The applied platform's gateways (``declared``) and why any lacks its password."""

    declared: Mapping[str, Gateway]
    missing_reason: Mapping[str, str] = field(default_factory=dict)


class GatewayEngine(LeaderEngine[DesiredGateways, GatewayReport]):
    """One node's carrier gateways (see the module docstring)."""

    activity = "gateway"

    def __init__(
        self,
        session: NodeSession,
        *,
        poll_seconds: float = 10.0,
        api_timeout: float = 30.0,
        on_report: Callable[[GatewayReport], None] | None = None,
    ) -> None:
        self.poll_seconds = poll_seconds
        self._started: dict[str, Gateway] = {}
        self._ever_started: set[str] = set()
        """Gateways this daemon put on this node: one missing later was removed by hand."""
        super().__init__(session, api_timeout=api_timeout, on_report=on_report)

    def set_desired(self, desired: DesiredGateways) -> None:
        self._desired = desired

    async def reconcile(self, desired: DesiredGateways) -> GatewayReport:
        self.set_desired(desired)
        return await self._pass("reconcile", None)

    async def on_connect(self, conn: EslConnection) -> None:
        """A pass at once, then one per ``poll_seconds`` while the connection lives."""
        while not conn.closed:
            report = await self._pass("connect" if self.pass_count == 0 else "poll", conn)
            if not report.connected:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await conn.wait_closed()

    # -- internals ------------------------------------------------------------------------

    def _crash_report(self, trigger: str, exc: Exception) -> GatewayReport:
        return GatewayReport(
            self.name, self.connected, trigger, errors={"": f"internal error: {exc!r}"}
        )

    async def _guarded_pass(self, trigger: str, conn: EslConnection | None) -> GatewayReport:
        conn = conn or self.client.connection
        if conn is None or conn.closed:
            return GatewayReport(self.name, False, trigger, errors={"": "not connected"})
        api = connection_api(conn, self.name, self._api_timeout)
        try:
            live = parse_gateway_list(await api(LIST_COMMAND))
            desired = self._desired
            if desired is None:
                return GatewayReport(self.name, True, trigger, live=live)
            spec = self.session.spec
            carried = carried_here(desired.declared, spec.name, spec.host)
            plan = plan_gateways(
                desired.declared, carried, live, self._started, desired.missing_reason
            )
            self._started = {n: g for n, g in self._started.items() if n in carried}
            done, errors = await self._apply(api, plan, carried)
            if done:
                live = parse_gateway_list(await api(LIST_COMMAND))
                errors.update(_not_taken(plan, live))
        except NodeUnreachable as exc:
            return GatewayReport(self.name, False, trigger, errors={"": f"connection lost: {exc}"})
        except (NodeTimeout, Permanent) as exc:
            return GatewayReport(self.name, True, trigger, errors={"": str(exc)})
        repaired = tuple(
            s.name
            for s in plan.steps
            if s.reason.startswith("changed on the switch")
            or (s.action is GatewayAction.START and s.name in self._ever_started)
        )
        self._ever_started.update(n for n in live if n in carried)
        report = GatewayReport(
            self.name,
            True,
            trigger,
            live=live,
            done=done,
            repaired=repaired,
            errors={**plan.errors, **errors},
        )
        for line in done:
            log.info("gateway %s", line, extra={"fields": {"node": self.name}})
        return report

    async def _apply(
        self, api: Api, plan: GatewayPlan, carried: Mapping[str, Gateway]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        done: list[str] = []
        errors: dict[str, str] = {}
        for step in plan.steps:
            error = await self._step(api, step)
            if error is not None:
                errors[step.name] = error
                continue
            done.append(f"{step.action.value} {step.name}: {step.reason}")
            if step.action is GatewayAction.KILL:
                self._started.pop(step.name, None)
            else:
                self._started[step.name] = carried[step.name]
        return tuple(done), errors

    async def _step(self, api: Api, step: GatewayStep) -> str | None:
        """Send one step; the switch's refusal as text, or None."""
        if step.action in (GatewayAction.KILL, GatewayAction.RESTART):
            reply = await api(gateway_command("killgw", step.name))
            gone = reply.startswith(("+OK", "-ERR no such gateway"))  # reaped meanwhile
            if not gone and step.action is GatewayAction.KILL:
                return f"killgw refused: {reply.strip()[:200]}"
        if step.action in (GatewayAction.START, GatewayAction.RESTART):
            reply = await api(gateway_command("startgw", step.name))
            if "+OK" not in reply:
                return f"startgw refused: {_last_line(reply)}"
        return None


def _not_taken(plan: GatewayPlan, live: Mapping[str, LiveGateway]) -> dict[str, str]:
    """Gateways started but not listed: sofia answers ``+OK`` to any ``startgw``, even when
    xml_curl had nothing for it (captured), so only the listing tells."""
    return {
        s.name: "the switch did not take it: xml_curl did not answer it (is its password "
        "on the host that serves xml_curl, and xml_curl auth set?)"
        for s in plan.steps
        if s.action is not GatewayAction.KILL and s.name not in live
    }


def _last_line(reply: str) -> str:
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no reply)"

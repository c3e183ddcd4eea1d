"""One switch's carriers profile planned to hold exactly its declared gateways: start the
missing, restart the changed (declaration or by hand), kill the undeclared; never touch a
gateway managed outside or another profile; a gateway without its password is its own
error."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.model import Gateway
from reconciler.switch.gateways.listing import LiveGateway
from reconciler.switch.gateways.plan import GatewayAction, carried_here, plan_gateways

C1 = Gateway(
    "carrier1", "sip.c1.example:5060", "sip.c1.example:5060", "c1.example", "u1",
    True, "udp", 600, 30, 0, True, "", "", "pbkdf2:aaaaaaaaaaaaaaaa",
)  # fmt: skip
C2 = replace(C1, name="carrier2", username=None, register=False, credentials="none")
OUTSIDE = Gateway("legacy", "", "", "", None, False, "udp", 3600, 30, 0, True, "", "", "none")


def live(g: Gateway, **changes: object) -> LiveGateway:
    base = LiveGateway(
        name=g.name, profile="carriers", realm=g.realm, username=g.username or "FreeSWITCH",
        password=g.credentials.startswith("pbkdf2"), proxy=f"sip:{g.registrar}",
        expires=str(g.expire_seconds), ping_seconds=g.ping_seconds, state="REGED",
        status="UP", pinging=False, ping_ms=0.0, uptime_seconds=1.0, calls_in=0,
        calls_out=0, failed_calls_in=0, failed_calls_out=0,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def actions(plan: object) -> list[tuple[str, str]]:
    return [(s.action.value, s.name) for s in plan.steps]  # type: ignore[attr-defined]


DECLARED = {"carrier1": C1, "carrier2": C2, "legacy": OUTSIDE}


def test_in_sync_plans_nothing() -> None:
    carried = carried_here(DECLARED, "fs1:8021", "fs1")
    assert set(carried) == {"carrier1", "carrier2"}
    on_switch = {"carrier1": live(C1), "carrier2": live(C2), "legacy": live(OUTSIDE)}
    assert plan_gateways(DECLARED, carried, on_switch, {}).empty


def test_missing_gateways_are_started() -> None:
    carried = carried_here(DECLARED, "fs1:8021", "fs1")
    plan = plan_gateways(DECLARED, carried, {"carrier1": live(C1)}, {})
    assert actions(plan) == [("start", "carrier2")]


def test_a_changed_declaration_restarts_the_gateway() -> None:
    new = replace(C1, credentials="pbkdf2:bbbbbbbbbbbbbbbb")
    declared = {**DECLARED, "carrier1": new}
    carried = carried_here(declared, "fs1:8021", "fs1")
    plan = plan_gateways(
        declared, carried, {"carrier1": live(C1), "carrier2": live(C2)}, {"carrier1": C1}
    )
    assert actions(plan) == [("restart", "carrier1")]


def test_a_gateway_changed_by_hand_is_restarted() -> None:
    carried = carried_here(DECLARED, "fs1:8021", "fs1")
    on_switch = {"carrier1": live(C1, realm="evil.example"), "carrier2": live(C2, expires="60")}
    plan = plan_gateways(DECLARED, carried, on_switch, {})
    assert actions(plan) == [("restart", "carrier1"), ("restart", "carrier2")]
    assert "realm" in plan.steps[0].reason and "expires" in plan.steps[1].reason


def test_undeclared_gateways_on_carriers_are_killed_others_left_alone() -> None:
    carried = carried_here(DECLARED, "fs1:8021", "fs1")
    on_switch = {
        "carrier1": live(C1),
        "carrier2": live(C2),
        "legacy": live(OUTSIDE),
        "stray": live(replace(C2, name="stray")),
        "elsewhere": live(replace(C2, name="elsewhere"), profile="tenants"),
    }
    assert actions(plan_gateways(DECLARED, carried, on_switch, {})) == [("kill", "stray")]


def test_a_gateway_for_other_nodes_is_not_carried_here() -> None:
    pinned = replace(C2, nodes="fs2:8021")
    declared = {**DECLARED, "carrier2": pinned}
    assert "carrier2" not in carried_here(declared, "fs1:8021", "fs1")
    assert "carrier2" in carried_here(declared, "fs2:8021", "fs2")
    carried = carried_here(declared, "fs1:8021", "fs1")
    plan = plan_gateways(declared, carried, {"carrier1": live(C1), "carrier2": live(pinned)}, {})
    assert actions(plan) == [("kill", "carrier2")]


def test_a_missing_password_is_an_error_of_that_gateway_only() -> None:
    declared = {**DECLARED, "carrier1": replace(C1, credentials="missing")}
    carried = carried_here(declared, "fs1:8021", "fs1")
    plan = plan_gateways(declared, carried, {}, {}, {"carrier1": "no password for 'carrier1'"})
    assert actions(plan) == [("start", "carrier2")]
    assert plan.errors == {"carrier1": "no password for 'carrier1'"}
    assert GatewayAction.KILL not in {s.action for s in plan.steps}

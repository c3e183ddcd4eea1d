"""Outbound calls in the call history: a leg that left through a carrier gateway (or was
refused on the way out) is outbound, and names the gateway. The records are captured real
posts (``tests/fakes/cdr``) with the outbound variables put in where the switch writes them."""

from __future__ import annotations

from reconciler.core.call_record import Direction
from reconciler.core.cdr import read_cdr
from tests.core.test_cdr import captured


def _outbound(last_arg: str, extra: str = "") -> str:
    text = captured("ext_answered_a").replace(
        "<last_arg>user/1003%40acme.example.com</last_arg>", f"<last_arg>{last_arg}</last_arg>"
    )
    assert last_arg in text
    return text.replace("<variables>", f"<variables>{extra}", 1)


def test_a_leg_bridged_through_a_gateway_is_outbound_and_names_it() -> None:
    record = read_cdr(_outbound("sofia/gateway/carrier2/%2B12125550123"))
    assert record.direction is Direction.OUTBOUND and record.gateway == "carrier2"


def test_a_refused_outside_call_is_outbound_without_a_gateway() -> None:
    refused = "<pbx_outbound_class>international</pbx_outbound_class>"
    record = read_cdr(_outbound("OUTGOING_CALL_BARRED", refused))
    assert record.direction is Direction.OUTBOUND and record.gateway is None


def test_a_call_between_extensions_names_no_gateway() -> None:
    record = read_cdr(captured("ext_answered_a"))
    assert record.direction is Direction.INTERNAL and record.gateway is None

"""Outbound calls in the call history, read from real FreeSWITCH 1.10.12 posts captured
from ``tests/realswitch/test_outbound.py`` (PBX_REALSWITCH_CDR_CAPTURE): a call that failed
over from a carrier answering 503 to the next gateway, one refused for want of the right,
one over the tenant's concurrency limit."""

from __future__ import annotations

from reconciler.core.call_record import Direction, Leg, Outcome
from reconciler.core.cdr import read_cdr
from tests.core.test_cdr import captured


def test_a_failed_over_call_is_outbound_through_the_gateway_that_answered() -> None:
    a = read_cdr(captured("outbound_failover_a"))
    assert (a.leg, a.direction, a.outcome) == (Leg.A, Direction.OUTBOUND, Outcome.ANSWERED)
    assert (a.gateway, a.from_extension, a.to_number) == ("out_up", "3001", "4155550123")
    assert a.domain == "outco.example.com"
    down = read_cdr(captured("outbound_failover_b_down"))
    up = read_cdr(captured("outbound_failover_b_up"))
    assert (down.leg, down.call_uuid, down.gateway) == (Leg.B, a.uuid, "out_down")
    assert down.hangup_cause == "NORMAL_TEMPORARY_FAILURE"
    assert (up.leg, up.call_uuid, up.gateway, up.outcome) == (
        Leg.B,
        a.uuid,
        "out_up",
        Outcome.ANSWERED,
    )


def test_a_refused_outside_call_is_outbound_without_a_gateway() -> None:
    barred = read_cdr(captured("outbound_barred_a"))
    assert (barred.direction, barred.gateway) == (Direction.OUTBOUND, None)
    assert barred.hangup_cause == "OUTGOING_CALL_BARRED" and barred.outcome is Outcome.FAILED
    limited = read_cdr(captured("outbound_limit_a"))
    assert (limited.direction, limited.gateway) == (Direction.OUTBOUND, None)
    assert limited.hangup_cause == "CALL_REJECTED"


def test_a_call_between_extensions_names_no_gateway() -> None:
    record = read_cdr(captured("ext_answered_a"))
    assert record.direction is Direction.INTERNAL and record.gateway is None

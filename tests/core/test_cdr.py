"""Reading mod_xml_cdr's records: the fixtures are real FreeSWITCH 1.10.12 posts (captured
with PBX_REALSWITCH_CDR_CAPTURE from the real-switch tier), one per call shape."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from reconciler.core.call_record import Direction, Leg, Outcome
from reconciler.core.cdr import CdrError, read_cdr

CAPTURED = Path(__file__).resolve().parents[1] / "fakes" / "cdr"


def captured(name: str) -> str:
    return (CAPTURED / f"{name}.cdr.xml").read_text()


def test_answered_call_between_extensions() -> None:
    a = read_cdr(captured("ext_answered_a"))
    assert (a.leg, a.direction, a.outcome) == (Leg.A, Direction.INTERNAL, Outcome.ANSWERED)
    assert (a.domain, a.from_extension, a.to_extension) == ("acme.example.com", "1002", "1003")
    assert a.call_uuid == a.uuid and a.answered_at is not None and a.node == "realswitch"
    b = read_cdr(captured("ext_answered_b"))
    assert (b.leg, b.call_uuid, b.bridge_uuid) == (Leg.B, a.uuid, a.uuid)
    assert b.to_extension == "1003" and b.outcome is Outcome.ANSWERED


def test_busy_callee_is_busy_on_both_legs() -> None:
    a, b = read_cdr(captured("ext_busy_a")), read_cdr(captured("ext_busy_b"))
    assert a.outcome is Outcome.BUSY and a.hangup_cause == "USER_BUSY"
    assert a.answered_at is None and a.talk_seconds == 0
    assert b.outcome is Outcome.BUSY and b.call_uuid == a.uuid


def test_did_into_a_queue_answered_by_an_agent() -> None:
    a = read_cdr(captured("did_queue_answered_a"))
    assert (a.direction, a.outcome, a.did) == (Direction.INBOUND, Outcome.ANSWERED, "+14155550101")
    assert (a.queue, a.agent, a.domain) == ("support", "alice", "acme.example.com")
    assert a.from_number == "+14155559998" and a.from_extension is None
    # it waited from joining the queue until alice answered: 6 s in the captured call
    assert a.ring_seconds == 6 and a.answered_at is not None
    agent = read_cdr(captured("did_queue_answered_agent"))
    assert (agent.leg, agent.call_uuid, agent.to_extension) == (Leg.B, a.uuid, "1004")
    assert agent.domain == "acme.example.com"  # from dialed_domain: its context is "default"


def test_caller_leaving_the_queue_is_abandoned() -> None:
    a = read_cdr(captured("did_queue_abandoned_a"))
    assert (a.outcome, a.queue, a.agent) == (Outcome.ABANDONED, "backoffice", None)
    assert a.answered_at is None and a.talk_seconds == 0 and a.ring_seconds == 3


def test_internal_queue_call_answered() -> None:
    a = read_cdr(captured("queue_answered_a"))
    assert (a.direction, a.outcome, a.from_extension) == (
        Direction.INTERNAL,
        Outcome.ANSWERED,
        "1002",
    )
    assert read_cdr(captured("queue_answered_agent")).call_uuid == a.uuid


def test_did_to_an_unregistered_extension_failed() -> None:
    a = read_cdr(captured("did_unregistered_a"))
    assert (a.outcome, a.hangup_cause, a.to_extension) == (
        Outcome.FAILED,
        "USER_NOT_REGISTERED",
        "1005",
    )


def test_caller_controlled_names_are_data_bounded_and_without_controls() -> None:
    text = captured("ext_answered_a").replace(
        "<caller_id_name>1002</caller_id_name>",
        "<caller_id_name>&lt;script&gt;x&lt;/script&gt;\t" + "A" * 500 + "</caller_id_name>",
        1,
    )
    record = read_cdr(text)
    assert record.from_name.startswith("<script>x</script>A")  # kept as text, escaped when shown
    assert "\t" not in record.from_name and len(record.from_name) == 120


def test_the_tenant_comes_from_the_switch_not_the_callers_headers() -> None:
    text = captured("did_queue_abandoned_a")
    spoofed = text.replace("<sip_from_host>", "<sip_from_host>globex.example.com", 1)
    assert read_cdr(spoofed).domain == "acme.example.com"


@pytest.mark.parametrize(
    "text",
    [
        "not xml",
        "<other/>",
        '<!DOCTYPE cdr [<!ENTITY x "y">]><cdr>&x;</cdr>',
        "<cdr><variables><uuid>" + quote("../../etc") + "</uuid></variables></cdr>",
    ],
)
def test_what_is_not_a_record_is_refused(text: str) -> None:
    with pytest.raises(CdrError):
        read_cdr(text)

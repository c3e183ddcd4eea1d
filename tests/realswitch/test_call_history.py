"""Call history from the real switch: every call's legs reach the tenant's own schema once,
with the outcome and durations FreeSWITCH saw, through mod_xml_cdr's posts, and through its
error directory when the daemon was down at hang-up. Waits poll; nothing is timed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.realswitch.conftest import ACME, Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import Sipp
from tests.realswitch.switch import missing_module_reason
from tests.realswitch.test_realswitch import _listed, call, register, registered_phone

CARRIER = "carrier.example.net"

if (_reason := missing_module_reason("mod_xml_cdr")) is not None:
    pytest.skip(_reason, allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(240)]


def calls(
    node: Node, where: str, *params: Any, schema: str = "tenant_acme"
) -> list[dict[str, Any]]:
    with psycopg.connect(node.env["PBX_DATABASE_URL"], autocommit=True) as conn:
        cur = conn.execute(f"SELECT * FROM {schema}.calls WHERE {where}", params)
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def a_leg(node: Node, since: datetime, **match: str) -> dict[str, Any]:
    """The one a leg since ``since`` matching ``match``, waited for (posted at hang-up)."""
    where = " AND ".join(["leg = 'a'", "started_at >= %s", *(f"{k} = %s" for k in match)])
    params = (since, *match.values())
    wait_for(lambda: calls(node, where, *params), f"the call record {match}", timeout=90,
             detail=node.logs)  # fmt: skip
    rows = calls(node, where, *params)
    assert len(rows) == 1, rows
    return rows[0]


def legs_of(node: Node, call_uuid: str) -> list[dict[str, Any]]:
    return calls(node, "call_uuid = %s ORDER BY leg", call_uuid)


def nowhere_else(node: Node, call_uuid: str) -> None:
    assert calls(node, "call_uuid = %s", call_uuid, schema="tenant_globex") == []


@contextlib.contextmanager
def phone(
    node: Node, extension: str, scenario: str = "uas.xml", pause_ms: int = 2000
) -> Iterator[Sipp]:
    """``extension`` registered on a sipp UAS (answers, talks ``pause_ms``, hangs up; or
    ``uas_busy.xml``: 486), unregistered afterwards."""
    # no voicemail box: no message-waiting NOTIFY at registration to mistake for a call
    uas = node.sipp(f"hist-{extension}", scenario, target=None, extra=["-d", str(pause_ms)])
    uas.start().wait_listening()
    secret = node.credentials("acme", extension)["password"]
    try:
        reg = register(node, f"hist-reg-{extension}", extension, ACME, secret, uas.port)
        assert reg.final_status("REGISTER") == 200, reg.describe() + node.logs()
        yield uas
    finally:
        uas.close()
        register(node, f"hist-unreg-{extension}", extension, ACME, secret, uas.port, expires=0)


def started() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


def test_answered_call_between_extensions_is_recorded_once(node: Node) -> None:
    since = started()
    with phone(node, "1021"):
        caller = call(node, "hist-answered", "1020", "1021")
        caller.wait()
        assert caller.final_status("INVITE") == 200, caller.describe()
    row = a_leg(node, since, from_extension="1020", to_extension="1021")
    assert (row["outcome"], row["direction"], row["hangup_cause"]) == (
        "answered",
        "internal",
        "NORMAL_CLEARING",
    )
    assert row["answered_at"] is not None and 1 <= row["talk_seconds"] <= 3
    assert row["node"] == "realswitch"
    legs = legs_of(node, row["uuid"])
    wait_for(lambda: len(legs_of(node, row["uuid"])) == 2, "the callee's leg", detail=node.logs)
    legs = legs_of(node, row["uuid"])
    assert [leg["leg"] for leg in legs] == ["a", "b"]
    assert legs[1]["to_extension"] == "1021" and legs[1]["bridge_uuid"] == row["uuid"]
    nowhere_else(node, row["uuid"])


def test_busy_extension_is_recorded_busy(node: Node) -> None:
    since = started()
    with phone(node, "1021", scenario="uas_busy.xml"):
        caller = call(node, "hist-busy", "1020", "1021")
        caller.wait()
        assert caller.final_status("INVITE") == 486, caller.describe()
    row = a_leg(node, since, from_extension="1020", outcome="busy")
    assert row["to_extension"] == "1021" and row["hangup_cause"] == "USER_BUSY"
    assert row["answered_at"] is None and row["talk_seconds"] == 0
    nowhere_else(node, row["uuid"])


def carrier_call(
    node: Node, name: str, did: str, caller: str, scenario: str = "call_carrier.xml"
) -> Sipp:
    return node.sipp(
        name, scenario, target=node.carrier_target,
        variables={"user": caller, "domain": CARRIER, "to_domain": CARRIER},
        extra=["-s", did],
    ).start()  # fmt: skip


def test_did_call_into_a_queue_answered_by_an_agent(node: Node) -> None:
    wait_for(lambda: _listed(node, "callcenter_config agent list", f"alice@{ACME}"),
             "agent alice loaded", detail=node.logs)  # fmt: skip
    since = started()
    with registered_phone(node, "acme", ACME, "1004") as agent_phone:
        carrier = carrier_call(node, "hist-did-queue", "+14155550101", "+14155551111")
        agent_phone.wait_for_invite()
        carrier.wait()
    row = a_leg(node, since, from_number="+14155551111")
    assert (row["direction"], row["outcome"]) == ("inbound", "answered")
    assert (row["did"], row["queue"], row["agent"]) == ("+14155550101", "support", "alice")
    assert row["answered_at"] is not None and row["ring_seconds"] >= 0
    wait_for(lambda: len(legs_of(node, row["uuid"])) == 2, "the agent's leg", detail=node.logs)
    agent_leg = legs_of(node, row["uuid"])[1]
    assert (agent_leg["leg"], agent_leg["to_extension"]) == ("b", "1004")
    nowhere_else(node, row["uuid"])


def test_caller_who_leaves_the_queue_is_recorded_abandoned(node: Node) -> None:
    since = started()
    carrier = carrier_call(node, "hist-abandon", "+14155550102", "+14155552222",
                           scenario="call_carrier_hangup.xml")  # fmt: skip
    carrier.wait()
    row = a_leg(node, since, from_number="+14155552222")
    assert (row["direction"], row["outcome"], row["queue"]) == (
        "inbound",
        "abandoned",
        "backoffice",
    )
    assert row["agent"] is None and row["answered_at"] is None and row["talk_seconds"] == 0
    assert row["ring_seconds"] >= 2  # it waited in the queue before giving up
    assert legs_of(node, row["uuid"]) == [row]


def test_call_that_ends_while_the_daemon_is_down_is_filed_after_it_starts(node: Node) -> None:
    since = started()
    with phone(node, "1021", pause_ms=6000) as callee:
        caller = call(node, "hist-down", "1020", "1021")
        callee.wait_for_invite()
        node.stop_daemon()  # the call is up; it ends while nothing answers mod_xml_cdr
        try:
            caller.wait()
            wait_for(lambda: any(node.cdr_err_dir.glob("a_*.cdr.xml")),
                     "the node keeping the record in its error directory", timeout=90,
                     detail=node.logs)  # fmt: skip
        finally:
            node.start_daemon()
    row = a_leg(node, since, from_extension="1020", to_extension="1021")
    assert row["outcome"] == "answered"
    wait_for(lambda: not any(node.cdr_err_dir.rglob("*.cdr.xml")),
             "the collected files deleted", detail=node.logs)  # fmt: skip
    assert len(legs_of(node, row["uuid"])) == 2

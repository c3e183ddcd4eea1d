"""Outside calls on the real switch: an extension dials a national number, the carrier (a
sipp UAS behind a gateway of the carriers profile) receives the INVITE with the number in
E.164 and the tenant's caller id; the first gateway answering 503 fails over to the second;
a call beyond the extension's right, or over the tenant's concurrency limit, is refused and
no carrier sees it; an emergency number passes from an ``internal`` extension; an
extension with the international right reaches the carrier in E.164 once the tenant allows
international calls; a gateway removed from git leaves the switch while a call through
another one stays up.

The carriers' gateways are the product's: declared in the test's ``_platform.yaml`` (proxy
= the sipp carrier, no registration), carried onto the switch by the daemon (``startgw``,
answered over xml_curl). That their password reaches no log, /status, /metrics or plan is
``test_gateways``'s."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.realswitch.conftest import Node
from tests.realswitch.processes import free_port, wait_for
from tests.realswitch.sipp import Sipp
from tests.realswitch.switch import missing_module_reason, missing_reason
from tests.realswitch.test_gateways import status
from tests.realswitch.test_realswitch import call

if (_reason := missing_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(240)]

TENANT = "outco"
DOMAIN = "outco.example.com"
DID = "+14155550170"
PLATFORM = """\
gateways:
  - {{name: out_down, proxy: '127.0.0.1:{down}', register: false}}
  - {{name: out_up, proxy: '127.0.0.1:{up}', register: false}}
  - {{name: out_spare, proxy: '127.0.0.1:{spare}', register: false}}
"""
TENANT_FILE = f"""\
id: {TENANT}
domain: {DOMAIN}
name: Out Co
extensions:
  - {{number: "3001", name: National caller, calling_right: national}}
  - {{number: "3002", name: Lobby}}
  - {{number: "3003", name: Second caller, calling_right: national}}
  - {{number: "3004", name: World caller, calling_right: international}}
inbound_numbers:
  - {{number: "{DID}", destination: {{extension: "3001"}}}}
outbound:
  country: US
  area_code: "415"
  caller_id: {{name: Out Co, number: "{DID}"}}
  routes:
    - {{match: national, gateways: [out_down, out_up]}}
    - {{match: emergency, gateways: [out_up]}}
    - {{match: international, gateways: [out_up]}}
  limits: {{max_concurrent: 1, calls_per_minute: 60, international: true}}
"""
GATEWAYS = ("out_down", "out_spare", "out_up")


@dataclass
class Carriers:
    down: int  # answers 503
    up: int  # answers the call
    spare: int  # nothing listens: a gateway no route uses, removed from git mid-call


def _applied(node: Node) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "credentials", "show", TENANT, "3001",
         "--output", "json", "--tenants", str(node.tenants_dir)],
        env=node.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode == 0


def _on_switch(node: Node) -> str:
    """The carriers profile's gateways as the switch lists them."""
    return node.esl.try_api("sofia xmlstatus gateway")


def _gateway_names(node: Node) -> set[str]:
    return set(re.findall(r"<name>([a-z0-9_]+)</name>", _on_switch(node)))


@pytest.fixture(scope="module")
def carriers(node: Node) -> Iterator[Carriers]:
    ports = Carriers(down=free_port(), up=free_port(), spare=free_port())
    platform = node.tenants_dir / "_platform.yaml"
    platform.write_text(PLATFORM.format(down=ports.down, up=ports.up, spare=ports.spare))
    wait_for(lambda: set(GATEWAYS) <= _gateway_names(node),
             "the declared gateways carried onto the switch", timeout=90,
             detail=lambda: f"{_on_switch(node)}\n{node.logs()}")  # fmt: skip
    (node.tenants_dir / f"{TENANT}.yaml").write_text(TENANT_FILE)
    wait_for(lambda: _applied(node), "the outbound tenant applied", timeout=90, detail=node.logs)
    yield ports
    # the routes go first (a route naming an undeclared gateway is the tenant's error), and
    # the rights beyond internal with them (they need an ``outbound:``)
    internal = re.sub(r", calling_right: \w+", "", TENANT_FILE.partition("outbound:")[0])
    (node.tenants_dir / f"{TENANT}.yaml").write_text(internal)
    platform.write_text("gateways: []\n")
    wait_for(lambda: not _gateway_names(node) & set(GATEWAYS), "the test gateways removed",
             timeout=90, detail=lambda: f"{_on_switch(node)}\n{node.logs()}")  # fmt: skip
    wait_for(lambda: status(node)["last_pass"]["result"] == "ok", "every tenant valid again",
             timeout=90, detail=node.logs)  # fmt: skip


def _history(node: Node, since: datetime, **match: str) -> dict[str, Any] | None:
    """The call history's a leg since ``since`` matching ``match`` (posted at hang-up by
    mod_xml_cdr), waited for; None when this build has no mod_xml_cdr."""
    if missing_module_reason("mod_xml_cdr") is not None:
        return None
    where = " AND ".join(["leg = 'a'", "started_at >= %s", *(f"{k} = %s" for k in match)])
    query = f"SELECT * FROM tenant_{TENANT}.calls WHERE {where}"

    def rows() -> list[dict[str, Any]]:
        with psycopg.connect(node.env["PBX_DATABASE_URL"], autocommit=True) as conn:
            cur = conn.execute(query, (since, *match.values()))
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    found = wait_for(rows, f"the call record {match}", timeout=90, detail=node.logs)
    return found[0]  # type: ignore[no-any-return,index]


@contextmanager
def _carrier(node: Node, name: str, scenario: str, port: int, *extra: str) -> Iterator[Sipp]:
    """A carrier (a sipp UAS) listening on ``port`` for the test's length."""
    uas = node.sipp(name, scenario, target=None, port=port, extra=list(extra))
    try:
        yield uas.start().wait_listening()
    finally:
        uas.close()


def _reached(node: Node, up: Sipp, caller: Sipp, e164: str) -> str:
    """The caller's call reached carrier ``up`` as ``INVITE sip:<e164>@`` from the tenant's
    number and was answered; the INVITE's From, for what else a test checks of it."""
    caller.wait()
    invite = up.wait_for_invite()
    assert invite.first_line.startswith(f"INVITE sip:{e164}@"), invite.first_line
    sender = invite.header("From") or ""
    assert f"<sip:{DID}@" in sender, sender
    assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()
    return sender


def _call(node: Node, name: str, caller: str, number: str) -> Sipp:
    return call(node, name, caller, number, to_domain=DOMAIN, tenant=TENANT, domain=DOMAIN)


def test_a_national_call_fails_over_and_reaches_the_carrier_in_e164_with_the_tenants_caller_id(
    node: Node, carriers: Carriers
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    with (
        _carrier(node, "carrier-down", "uas_unavailable.xml", carriers.down) as down,
        _carrier(node, "carrier-up", "uas.xml", carriers.up, "-d", "500") as up,
    ):
        caller = _call(node, "out-national", "3001", "4155550123")
        sender = _reached(node, up, caller, "+14155550123")
        assert "Out Co" in sender, sender
        refused = down.wait_for_invite()
        assert refused.first_line.startswith("INVITE sip:+14155550123@"), refused.first_line
        record = _history(node, since, from_extension="3001", to_number="4155550123")
        if record is not None:  # the call history: outbound, through the gateway that answered
            assert (record["direction"], record["gateway"]) == ("outbound", "out_up"), record
            assert record["outcome"] == "answered"


def test_a_call_beyond_the_callers_right_is_refused_and_no_carrier_sees_it(
    node: Node, carriers: Carriers
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    with _carrier(node, "carrier-idle", "uas.xml", carriers.up, "-d", "500") as up:
        lobby = _call(node, "out-no-right", "3002", "4155550123")
        lobby.wait()
        assert lobby.final_status("INVITE") == 403, lobby.describe() + node.logs()
        international = _call(node, "out-international", "3001", "011442079460000")
        international.wait()
        assert international.final_status("INVITE") == 403, international.describe()
        assert up.received("INVITE") == []
        record = _history(node, since, from_extension="3002")
        if record is not None:  # refused on the way out: outbound, barred, no gateway
            assert record["direction"] == "outbound" and record["gateway"] is None, record
            assert record["hangup_cause"] == "OUTGOING_CALL_BARRED"


def test_an_emergency_number_passes_from_an_internal_extension(
    node: Node, carriers: Carriers
) -> None:
    with _carrier(node, "carrier-911", "uas.xml", carriers.up, "-d", "500") as up:
        _reached(node, up, _call(node, "out-911", "3002", "911"), "911")


def test_a_call_over_the_concurrency_limit_is_refused(node: Node, carriers: Carriers) -> None:
    with _carrier(node, "carrier-busy-line", "uas_until_bye.xml", carriers.up) as up:
        first = _call(node, "out-first", "3001", "2125550123")
        up.wait_for_invite()
        wait_for(
            lambda: node.esl.try_api("limit_usage hash pbx_outbound outco").strip() == "1",
            "the first call counted",
            timeout=30,
            detail=node.logs,
        )
        second = _call(node, "out-second", "3003", "2125550124")
        second.wait()
        assert second.final_status("INVITE") == 603, second.describe() + node.logs()
        assert len(up.received("INVITE")) == 1
        node.esl.api("hupall NORMAL_CLEARING pbx_outbound_number +12125550123")
        first.wait()


def test_an_international_call_with_the_right_reaches_the_carrier_in_e164(
    node: Node, carriers: Carriers
) -> None:
    with _carrier(node, "carrier-world", "uas.xml", carriers.up, "-d", "500") as up:
        caller = _call(node, "out-world", "3004", "011442079460000")
        sender = _reached(node, up, caller, "+442079460000")
        assert "Out Co" in sender, sender


def test_a_gateway_removed_from_git_leaves_while_a_call_through_another_stays_up(
    node: Node, carriers: Carriers
) -> None:
    with _carrier(node, "carrier-stays", "uas_until_bye.xml", carriers.up) as up:
        caller = _call(node, "out-stays", "3004", "011442079460001")
        up.wait_for_invite()
        wait_for(lambda: up.received("ACK"), "the carrier's call answered", timeout=30,
                 detail=lambda: caller.describe() + up.describe())  # fmt: skip
        # the switch's call list is written behind the call (its core database)
        wait_for(lambda: "+442079460001" in node.esl.try_api("show calls"),
                 "the call listed by the switch", timeout=30)  # fmt: skip

        kept = PLATFORM.format(down=carriers.down, up=carriers.up, spare=carriers.spare)
        kept = "".join(line for line in kept.splitlines(True) if "out_spare" not in line)
        (node.tenants_dir / "_platform.yaml").write_text(kept)
        wait_for(lambda: "out_spare" not in _gateway_names(node), "out_spare removed",
                 timeout=60, detail=lambda: f"{_on_switch(node)}\n{node.logs()}")  # fmt: skip

        # the removal is applied: the call through out_up is still up, on both sides
        assert {"out_down", "out_up"} <= _gateway_names(node)
        assert "+442079460001" in node.esl.api("show calls")
        assert caller.proc is not None and caller.proc.poll() is None, caller.describe()
        assert up.received("BYE") == [], up.describe()

        node.esl.api("hupall NORMAL_CLEARING pbx_outbound_number +442079460001")
        caller.wait()
        assert caller.final_status("INVITE") == 200, caller.describe()
        wait_for(lambda: up.received("BYE"), "the carrier's leg hung up by the switch",
                 timeout=30, detail=up.describe)  # fmt: skip

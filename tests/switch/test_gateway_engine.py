"""The gateway engine against the fake switch, which speaks the captured sofia gateway
commands and fetches gateways through the real xml_curl answer: declared -> started with
its password; changed -> killgw + startgw; removed -> killgw; killed by hand -> started
again; a missing password -> that gateway's error only; a restart -> back on reconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.core.model import Gateway
from reconciler.serve.snapshot import build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import answer
from reconciler.switch import NodeSession, NodeSpec, ReconnectPolicy
from reconciler.switch.gateways.engine import DesiredGateways, GatewayEngine
from reconciler.switch.gateways.listing import parse_gateway_list
from tests.fakes.freeswitch import FakeFreeSwitch

CAPTURES = Path(__file__).resolve().parents[1] / "fakes/freeswitch/captures/sofia_gateways"
FAST = ReconnectPolicy(probe_base=0.02, probe_cap=0.1, probe_floor=0.01, auth_base=0.02)
TEMPLATES = load_templates()
C1 = Gateway(
    "carrier1", "sip.c1.example:5060", "sip.c1.example:5060", "c1.example", "4415550100",
    True, "udp", 600, 30, 0, True, "PCMU", "", "pbkdf2:aaaaaaaaaaaaaaaa",
)  # fmt: skip
C2 = Gateway(
    "carrier2", "192.0.2.7", "192.0.2.7", "192.0.2.7", None,
    False, "udp", 3600, 30, 20, True, "", "", "none",
)  # fmt: skip


class World:
    """What the switch fetches: the applied gateways as xml_curl answers them."""

    def __init__(self) -> None:
        self.gateways: list[Gateway] = [C1, C2]
        self.passwords: dict[str, str] = {"carrier1": "Right-Pass-1"}

    def fetch(self, form: Mapping[str, str]) -> str | None:
        snapshot = build_snapshot({}, {}, gateways=self.gateways)
        result = answer(snapshot, form, TEMPLATES, self.passwords.get)
        return result.body if result.result == "found" else None

    def desired(self) -> DesiredGateways:
        return DesiredGateways({g.name: g for g in self.gateways})


@pytest.fixture
async def setup() -> AsyncIterator[tuple[FakeFreeSwitch, World, GatewayEngine]]:
    world = World()
    async with FakeFreeSwitch() as fs:
        fs.sofia.gateways.fetch = world.fetch
        fs.sofia.gateways.accept_password = "Right-Pass-1"
        session = NodeSession(NodeSpec(fs.host, fs.port, fs.password), reconnect=FAST)
        engine = GatewayEngine(session, poll_seconds=3600)
        await session.start()
        await engine.wait_pass(0, timeout=10)  # connected: its first pass only read
        try:
            yield fs, world, engine
        finally:
            await session.stop()


def test_the_parser_reads_the_real_captures() -> None:
    every = parse_gateway_list((CAPTURES / "xmlstatus_gateway_all.txt").read_text())
    assert [g.name for g in every.values()] == ["pinged", "wrongpw", "carrier1"]
    carrier = every["carrier1"]
    seen = (carrier.state, carrier.status, carrier.realm, carrier.username)
    assert seen == ("REGED", "UP", "carrier.test", "4415550100")
    assert carrier.password and carrier.expires == "600"
    assert every["pinged"].ping_seconds == 5 and every["pinged"].status == "DOWN"
    assert parse_gateway_list((CAPTURES / "xmlstatus_gateway_none.txt").read_text()) == {}
    both = parse_gateway_list((CAPTURES / "xmlstatus_after_kill_start.txt").read_text())
    assert both["carrier1"].state == "UNREGED"  # the new one, not the killed one after it


async def test_declared_gateways_are_started_with_their_password(
    setup: tuple[FakeFreeSwitch, World, GatewayEngine],
) -> None:
    fs, world, engine = setup
    report = await engine.reconcile(world.desired())
    assert report.errors == {}
    assert set(report.live) == {"carrier1", "carrier2"}
    assert report.live["carrier1"].state == "REGED"  # the registrar took the password
    started = fs.sofia.gateways.live("carrier1")
    assert started is not None and started.params["password"] == "Right-Pass-1"
    assert started.params["expire-seconds"] == "600"
    assert (await engine.reconcile(world.desired())).done == ()  # in sync: nothing sent


async def test_changed_removed_and_hand_made_drift(
    setup: tuple[FakeFreeSwitch, World, GatewayEngine],
) -> None:
    fs, world, engine = setup
    await engine.reconcile(world.desired())
    gateways = fs.sofia.gateways

    world.gateways = [replace(C1, expire_seconds=900), C2]  # changed in git
    report = await engine.reconcile(world.desired())
    assert report.done == ("restart carrier1: declaration changed",)
    assert gateways.commands[-2:] == [
        "profile carriers killgw carrier1",
        "profile carriers startgw carrier1",
    ]
    live = gateways.live("carrier1")
    assert live is not None and live.params["expire-seconds"] == "900"
    gateways.reap()

    gateways.api(["profile", "carriers", "killgw", "carrier2"])  # by hand
    gateways.reap()
    gateways.add("stray", {"proxy": "203.0.113.9"})  # a gateway git does not declare
    gateways.add("tenantside", {"proxy": "203.0.113.9"}, profile="tenants")
    report = await engine.reconcile(world.desired())
    assert sorted(report.done) == [
        "kill stray: not declared",
        "start carrier2: not on the switch",
    ]
    assert report.repaired == ("carrier2",)
    assert gateways.live("tenantside") is not None  # another profile: never touched
    gateways.reap()

    world.gateways = [replace(C1, expire_seconds=900)]  # carrier2 removed from git
    report = await engine.reconcile(world.desired())
    assert report.done == ("kill carrier2: not declared",)


async def test_a_missing_password_is_that_gateways_error_only(
    setup: tuple[FakeFreeSwitch, World, GatewayEngine],
) -> None:
    _, world, engine = setup
    world.gateways = [replace(C1, credentials="missing"), C2]
    desired = DesiredGateways(
        {g.name: g for g in world.gateways}, {"carrier1": "no password for gateway 'carrier1'"}
    )
    report = await engine.reconcile(desired)
    assert report.errors == {"carrier1": "no password for gateway 'carrier1'"}
    assert set(report.live) == {"carrier2"}


async def test_a_gateway_xml_curl_does_not_answer_is_reported(
    setup: tuple[FakeFreeSwitch, World, GatewayEngine],
) -> None:
    _, world, engine = setup
    world.passwords = {}  # the serving host lacks it: startgw says +OK, nothing is added
    report = await engine.reconcile(world.desired())
    assert "did not take it" in report.errors["carrier1"]
    assert set(report.live) == {"carrier2"}


async def test_a_restarted_switch_gets_its_gateways_back_on_reconnect(
    setup: tuple[FakeFreeSwitch, World, GatewayEngine],
) -> None:
    fs, world, engine = setup
    await engine.reconcile(world.desired())
    passes = engine.pass_count
    fs.sofia.gateways.gateways.clear()  # a restart: the node's files have no gateway
    await fs.restart()
    report = await engine.wait_pass(passes, timeout=10)
    while set(report.live) != {"carrier1", "carrier2"}:
        report = await engine.wait_pass(engine.pass_count, timeout=10)
    assert report.errors == {}

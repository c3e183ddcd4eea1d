"""The presence cache: built from what the switch lists, kept fresh by events, dropped when
a node goes away; a status change reaches every node as the exact command; a read of one
domain does not walk the others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from reconciler.core.model import Agent, Queue, Tenant, TenantState, Tier
from reconciler.core.presence import AgentPresence
from reconciler.switch import (
    DesiredLive,
    NodeSpec,
    PresenceCache,
    ReconnectPolicy,
    UnknownAgent,
    UnsafeArgument,
    desired_live,
)
from reconciler.switch.presence.facts import DomainFacts
from reconciler.switch.presence.registrations import (
    parse_core_registrations,
    parse_sofia_registrations,
)
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.live.test_fake_people import (
    ACME,
    ALICE,
    LIVE_DIR,
    SUPPORT,
    capture_switch,
    register_alice,
)

pytestmark = pytest.mark.skipif(not LIVE_DIR.is_dir(), reason=f"no transcripts at {LIVE_DIR}")

FAST = ReconnectPolicy(probe_base=0.02, probe_cap=0.1, probe_floor=0.01)
BOB = f"bob@{ACME}"


def body(name: str) -> str:
    recv = json.loads((LIVE_DIR / f"{name}.json").read_text())["recv"]
    return recv.partition("\n\n")[2]


def declared() -> DesiredLive:
    agents = [
        Agent(n, "Callback", f"user/{x}@{ACME}", x)
        for n, x in (("alice", "1001"), ("bob", "1002"), ("carol", "1004"))
    ]
    return desired_live(
        {
            "acme": TenantState(
                tenant=Tenant(id="acme", domain=ACME, name="Acme", status="active"),
                agents={a.key: a for a in agents},
                queues={"support": Queue("support", "7000")},
                tiers={"support/alice": Tier("support", "alice")},
            )
        }
    )


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def fs() -> AsyncIterator[FakeFreeSwitch]:
    async with capture_switch() as switch:
        yield switch


@pytest.fixture
async def cache(fs: FakeFreeSwitch) -> AsyncIterator[PresenceCache]:
    presence = PresenceCache([NodeSpec(fs.host, fs.port, fs.password)], reconnect=FAST)
    presence.set_managed(declared())
    async with presence:
        await eventually(lambda: presence.nodes[0].reads > 0)
        yield presence


# --- built from the captured listings ----------------------------------------------------


def test_registrations_read_from_the_captured_listings() -> None:
    core = parse_core_registrations(body("show_registrations_json"), "fs1")
    (profile, from_core) = core["1-2367@127.0.0.1"]
    assert profile == "internal"
    assert (from_core.user, from_core.domain, from_core.status) == ("1001", ACME, "Registered(UDP)")
    assert from_core.expires_at == datetime.fromtimestamp(1796226078, UTC)
    now = datetime(2026, 12, 2, 15, 38, 21, tzinfo=UTC)
    sofia = parse_sofia_registrations(body("sofia_xmlstatus_profile_reg"), "fs1", now)
    reg = sofia["1-2367@127.0.0.1"]
    assert reg.contact == '"" <sip:1001@127.0.0.1:5381;transport=UDP>'
    assert (reg.user, reg.domain, reg.user_agent) == ("1001", ACME, "SIPp register test")
    assert (reg.network_ip, reg.network_port) == ("127.0.0.1", 5382)
    assert (reg.status, reg.ping_status) == ("Registered(UDP)", "Reachable")
    assert reg.expires_at == datetime(2026, 12, 2, 15, 41, 18, tzinfo=UTC)


async def test_the_cache_is_built_from_what_the_switch_lists(fs: FakeFreeSwitch) -> None:
    register_alice(fs)  # at the capture's clock
    member = fs.members.enter(SUPPORT, "1002", member_uuid="e7bbe661")
    fs.agents[ALICE].status, fs.agents[ALICE].calls_answered = "Available", 1
    fs.agents[ALICE].last_status_change = 1796225897
    fs.members.answer(member.uuid, ALICE)
    presence = PresenceCache([NodeSpec(fs.host, fs.port, fs.password)], reconnect=FAST)
    presence.set_managed(declared())
    async with presence:
        await eventually(lambda: presence.nodes[0].reads > 0)
        view = presence.domain(ACME.upper())
    (reg,) = view.registrations
    assert (reg.user, reg.user_agent, reg.ping_status) == (
        "1001",
        "SIPp register test",
        "Reachable",
    )
    assert reg.contact == '"" <sip:1001@127.0.0.1:5381;transport=UDP>'
    (alice,) = view.agents[ALICE]
    assert alice == AgentPresence(
        fs.host + f":{fs.port}",
        ALICE,
        "Available",
        "In a queue call",
        calls_answered=1,
        last_status_change=datetime.fromtimestamp(1796225897, UTC),
    )
    (caller,) = view.members[SUPPORT]
    assert (caller.uuid, caller.caller_number, caller.state) == ("e7bbe661", "1002", "Answered")
    assert caller.serving_agent == ALICE
    assert (view.nodes_connected, view.nodes_total) == (1, 1)


# --- kept fresh by events ----------------------------------------------------------------


async def test_phones_registering_and_leaving_update_it(
    fs: FakeFreeSwitch, cache: PresenceCache
) -> None:
    one = fs.sofia.register("1001", ACME, call_id="a@1", user_agent="Yealink T46U")
    two = fs.sofia.register("1002", ACME, call_id="b@1")
    await eventually(lambda: len(cache.domain(ACME).registrations) == 2)
    assert cache.domain(ACME).registrations[0].user_agent == "Yealink T46U"
    fs.sofia.unregister(one.call_id)
    await eventually(lambda: [r.user for r in cache.domain(ACME).registrations] == ["1002"])
    fs.sofia.expire(two.call_id)
    await eventually(lambda: cache.domain(ACME).registrations == ())


async def test_a_caller_waiting_answered_and_gone_update_it(
    fs: FakeFreeSwitch, cache: PresenceCache
) -> None:
    def members() -> list[tuple[str, str | None]]:
        return [(m.state, m.serving_agent) for m in cache.domain(ACME).members.get(SUPPORT, ())]

    member = fs.members.enter(SUPPORT, "1002", "Bob desk phone")
    await eventually(lambda: members() == [("Waiting", None)])
    fs.members.answer(member.uuid, ALICE)
    await eventually(lambda: members() == [("Answered", ALICE)])
    assert cache.domain(ACME).agents[ALICE][0].state == "In a queue call"
    fs.members.leave(member.uuid)
    await eventually(lambda: members() == [])
    assert cache.domain(ACME).agents[ALICE][0].state == "Waiting"
    waiting = fs.members.enter(SUPPORT, "1003")
    await eventually(lambda: len(members()) == 1)
    fs.members.leave(waiting.uuid)  # hung up while waiting
    await eventually(lambda: members() == [])


async def test_a_members_count_that_disagrees_rereads_the_queue(
    fs: FakeFreeSwitch, cache: PresenceCache
) -> None:
    """An event lost on the way (here: never sent) is healed by the next members-count."""
    member = fs.members.enter(SUPPORT, "1002")
    await eventually(lambda: SUPPORT in cache.domain(ACME).members)
    extra = type(member)(**{**vars(member), "uuid": "silent-1", "cid_number": "1009"})
    fs.members.members[extra.uuid] = extra
    fs.members._members_count(SUPPORT)  # says 2, the events built 1
    await eventually(lambda: len(cache.domain(ACME).members[SUPPORT]) == 2)


async def test_status_changes_by_anyone_update_it(fs: FakeFreeSwitch, cache: PresenceCache) -> None:
    await fs.run_api(f"callcenter_config agent set status {BOB} 'On Break'")
    await eventually(lambda: cache.domain(ACME).agents[BOB][0].status == "On Break")
    assert cache.domain(ACME).agents[BOB][0].last_status_change is not None


async def test_a_disconnected_node_has_its_facts_dropped(
    fs: FakeFreeSwitch, cache: PresenceCache
) -> None:
    fs.sofia.register("1001", ACME, call_id="a@1")
    await eventually(lambda: len(cache.domain(ACME).registrations) == 1)
    version = cache.version
    await fs.go_down()
    assert await cache.changed(version, timeout=2) > version
    await eventually(lambda: cache.domain(ACME) == cache.domain("nowhere.example"))
    assert cache.domain(ACME).nodes_connected == 0
    await fs.go_up()  # back: read again (the fake kept the phone)
    await eventually(lambda: len(cache.domain(ACME).registrations) == 1)


# --- the one write -----------------------------------------------------------------------


async def test_set_agent_status_sends_the_exact_command(
    fs: FakeFreeSwitch, cache: PresenceCache
) -> None:
    (result,) = await cache.set_agent_status(ALICE, "On Break")
    assert result.ok and result.error is None
    assert fs.api_log[-1] == f"callcenter_config agent set status {ALICE} 'On Break'"
    assert fs.agents[ALICE].status == "On Break"
    await eventually(lambda: cache.domain(ACME).agents[ALICE][0].status == "On Break")
    (result,) = await cache.set_agent_status(BOB, "Available")
    assert fs.api_log[-1] == f"callcenter_config agent set status {BOB} 'Available'"


@pytest.mark.parametrize(
    ("agent", "status", "error"),
    [
        (ALICE, "on break", UnsafeArgument),  # the switch would store the wrong spelling
        (ALICE, "Busy", UnsafeArgument),
        (ALICE, "Available' x", UnsafeArgument),
        (f"mallory@{ACME}", "Available", UnknownAgent),
        ("1000@default", "Available", UnknownAgent),
    ],
)
async def test_set_agent_status_refuses_what_is_not_ours_to_send(
    fs: FakeFreeSwitch, cache: PresenceCache, agent: str, status: str, error: type[Exception]
) -> None:
    sent = len(fs.api_log)
    with pytest.raises(error):
        await cache.set_agent_status(agent, status)
    assert len(fs.api_log) == sent


async def test_set_agent_status_on_a_down_node_says_so(
    fs: FakeFreeSwitch, cache: PresenceCache
) -> None:
    await fs.go_down()
    await eventually(lambda: not cache.nodes[0].connected)
    (result,) = await cache.set_agent_status(ALICE, "Available")
    assert not result.ok and result.error == "not connected"


async def test_the_presence_connection_is_its_own(fs: FakeFreeSwitch, cache: PresenceCache) -> None:
    """One socket subscribed to events and reading; reconcile passes use another."""
    assert fs.authenticated_count == 1
    subscribe = [c for c in fs.command_log if c.startswith("event ")]
    assert subscribe == [
        "event plain CUSTOM sofia::register sofia::unregister sofia::expire callcenter::info"
    ]


# --- reads are O(domain) -----------------------------------------------------------------


class Untouchable(DomainFacts):
    def __getattribute__(self, name: str) -> object:
        raise AssertionError("a read walked another domain")


def test_a_read_of_one_domain_among_a_thousand_touches_only_that_domain() -> None:
    presence = PresenceCache([NodeSpec("fs1", 8021, "pw"), NodeSpec("fs2", 8021, "pw")])
    for node in presence.nodes:
        for i in range(1000):
            node.facts.by_domain[f"t{i}.example.com"] = Untouchable()
        mine = node.facts.by_domain["t500.example.com"] = DomainFacts()
        mine.agents["a@t500.example.com"] = AgentPresence(
            node.name, "a@t500.example.com", "Available", "Waiting"
        )
    view = presence.domain("t500.example.com")
    assert [a.node for a in view.agents["a@t500.example.com"]] == ["fs1:8021", "fs2:8021"]

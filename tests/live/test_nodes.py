"""Live reconciliation against the fake FreeSWITCH (ESL + mod_callcenter) and a real xml_curl
endpoint serving callcenter.conf from a snapshot of the same applied state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web

from reconciler.core.model import Agent, Queue, State, Tenant, TenantState, Tier
from reconciler.serve import XML_PATH, make_app
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.switch import (
    CallcenterEngine,
    CallcenterEngines,
    NodeReport,
    NodeSession,
    NodeSpec,
    NodeSpecError,
    ReconnectPolicy,
    desired_live,
    managed_domains,
    parse_node_spec,
    parse_node_specs,
)
from tests.fakes.freeswitch import VANILLA_CALLCENTER_QUEUES, FakeFreeSwitch

ACME = "acme.example.com"
GLOBEX = "globex.example.com"
CC = "callcenter_config"
ALICE = f"alice@{ACME}"
BOB = f"bob@{ACME}"
SUPPORT = f"support@{ACME}"
SALES = f"sales@{ACME}"
# Reconnect within tens of ms: the tests drill drops and restarts many times.
FAST = ReconnectPolicy(probe_base=0.02, probe_cap=0.1, probe_floor=0.01, auth_base=0.02)
LISTS = {f"{CC} agent list", f"{CC} tier list", f"{CC} queue list"}

# --- the world: applied state, the xml_curl endpoint serving it, fake switches --------


def acme(
    *,
    status: str = "active",
    agents: Iterable[Agent] | None = None,
    queues: Iterable[Queue] | None = None,
    tiers: Iterable[Tier] | None = None,
) -> TenantState:
    if agents is None:
        agents = [
            Agent("alice", "Callback", f"user/1001@{ACME}", "1001", initial_status="Available"),
            Agent("bob", "Callback", f"user/1002@{ACME}", "1002", wrap_up_time=5),
        ]
    if queues is None:
        queues = [
            Queue("support", "7000", moh_sound="local_stream://moh", max_wait_time=300),
            Queue("sales", "7001", strategy="ring-all"),
        ]
    if tiers is None:
        tiers = [Tier("support", "alice", 1, 1), Tier("support", "bob", 2, 1)]
        tiers += [Tier("sales", "bob", 1, 1)]
    return TenantState(
        tenant=Tenant(id="acme", domain=ACME, name="Acme", status=status),
        agents={a.key: a for a in agents},
        queues={q.key: q for q in queues},
        tiers={t.key: t for t in tiers},
    )


def globex() -> TenantState:
    return TenantState(
        tenant=Tenant(id="globex", domain=GLOBEX, name="Globex", status="active"),
        agents={"gina": Agent("gina", "uuid-standby", f"user/2001@{GLOBEX}", "2001")},
        queues={"help": Queue("help", "7100")},
        tiers={"help/gina": Tier("help", "gina")},
    )


@dataclass
class World:
    """The applied state, as the daemon would hold it after a pass."""

    state: State = field(default_factory=lambda: {"acme": acme(), "globex": globex()})
    snapshot: Snapshot = field(default_factory=Snapshot)
    url: str = ""

    def apply(self, state: State | None = None) -> None:
        """Swap in new applied state: the endpoint serves it from now on."""
        if state is not None:
            self.state = state
        self.snapshot = build_snapshot(self.state, {})

    @property
    def desired(self):  # type: ignore[no-untyped-def]
        return desired_live(self.state)

    @property
    def domains(self) -> frozenset[str]:
        return managed_domains(self.state)

    async def reconcile(self, node: CallcenterEngine) -> NodeReport:
        return await node.reconcile(self.desired, self.domains)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    w.apply()
    app = make_app(lambda: w.snapshot, load_templates(), auth=None)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    w.url = f"http://{host}:{port}{XML_PATH}"
    try:
        yield w
    finally:
        await runner.cleanup()


@pytest.fixture
async def fs(world: World) -> AsyncIterator[FakeFreeSwitch]:
    async with FakeFreeSwitch(xml_curl_url=world.url) as switch:
        yield switch


def node_for(switch: FakeFreeSwitch, **options: object) -> CallcenterEngine:
    return CallcenterEngine(
        NodeSession(
            NodeSpec(switch.host, switch.port, switch.password),
            connect_timeout=1.0,
            reconnect=FAST,
        ),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def node(fs: FakeFreeSwitch) -> AsyncIterator[CallcenterEngine]:
    n = node_for(fs)
    await n.start()
    await n.client.wait_connected(timeout=2)
    try:
        yield n
    finally:
        await n.stop()


def mutating(switch: FakeFreeSwitch, since: int = 0) -> list[str]:
    return [c for c in switch.api_log[since:] if c not in LISTS]


def assert_matches_declaration(switch: FakeFreeSwitch, world: World) -> None:
    """The switch holds exactly the declared objects of the managed domains."""
    desired = world.desired
    ours = {n for n in switch.agents if n.rpartition("@")[2] in world.domains}
    assert ours == set(desired.agents)
    for want in desired.agents.values():
        have = switch.agents[want.name]
        assert (have.type, have.contact, have.wrap_up_time, have.no_answer_delay_time) == (
            want.type,
            want.contact,
            want.wrap_up_time,
            want.no_answer_delay_time,
        )
    our_queues = {n for n in switch.queues if n.rpartition("@")[2] in world.domains}
    assert our_queues == set(desired.queues)
    our_tiers = {k for k in switch.tiers if k[0].rpartition("@")[2] in world.domains}
    assert our_tiers == set(desired.tiers)
    for key, want_tier in desired.tiers.items():
        assert (switch.tiers[key].level, switch.tiers[key].position) == (
            want_tier.level,
            want_tier.position,
        )


# --- first sync and no-op -------------------------------------------------------------


async def test_first_sync_pushes_queues_agents_tiers_and_initial_status(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    report = await world.reconcile(node)
    assert report.ok, report.errors
    assert report.planned == {"add": 10, "change": 0, "destroy": 0}
    assert report.applied == 10
    assert_matches_declaration(fs, world)
    assert fs.agents[ALICE].status == "Available"
    assert fs.agents[BOB].status == "Logged Out"  # no initial status declared
    assert fs.queues[SUPPORT].max_wait_time == 300
    assert fs.queues[SUPPORT].moh_sound == "local_stream://moh"
    assert {r.queue for r in fs.xml_curl_log} == {SUPPORT, SALES, f"help@{GLOBEX}"}
    assert all(r.status == 200 for r in fs.xml_curl_log)
    assert report.last_sync is not None


async def test_declared_state_is_pushed_on_connect_without_the_daemon(
    world: World, fs: FakeFreeSwitch
) -> None:
    n = node_for(fs)
    n.set_desired(world.desired, world.domains)
    await n.start()
    try:
        report = await n.wait_pass(0, timeout=3)
        assert report.trigger == "connect" and report.ok, report.errors
        assert_matches_declaration(fs, world)
    finally:
        await n.stop()


async def test_second_pass_sends_zero_mutating_commands(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    mutations, log_at, fetches = fs.mutation_count, len(fs.api_log), len(fs.xml_curl_log)
    report = await world.reconcile(node)
    assert report.ok and report.changes == 0 and report.commands_sent == 0
    assert fs.mutation_count == mutations
    assert sorted(fs.api_log[log_at:]) == sorted(LISTS)
    assert len(fs.xml_curl_log) == fetches


# --- drift ----------------------------------------------------------------------------


async def test_agent_deleted_with_fs_cli_is_recreated_with_its_tiers(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    assert await fs.run_api(f"{CC} agent del {BOB}") == "+OK\n"
    assert (SUPPORT, BOB) not in fs.tiers
    at = len(fs.api_log)
    report = await world.reconcile(node)
    assert report.ok
    assert set(report.repaired) == {f"agent:{BOB}", f"tier:{SUPPORT} {BOB}", f"tier:{SALES} {BOB}"}
    assert f"{CC} agent add {BOB} Callback" in mutating(fs, at)
    assert_matches_declaration(fs, world)


async def test_tier_level_changed_by_hand_is_set_back(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    assert await fs.run_api(f"{CC} tier set level {SUPPORT} {BOB} 9") == "+OK\n"
    at = len(fs.api_log)
    report = await world.reconcile(node)
    assert mutating(fs, at) == [f"{CC} tier set level {SUPPORT} {BOB} 2"]
    assert report.repaired == (f"tier:{SUPPORT} {BOB}",)
    assert fs.tiers[(SUPPORT, BOB)].level == 2


async def test_contact_changed_by_hand_is_set_back(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    await fs.run_api(f"{CC} agent set contact {ALICE} user/9999@{ACME}")
    fs.agents[BOB].type = "callback"
    at = len(fs.api_log)
    await world.reconcile(node)
    assert sorted(mutating(fs, at)) == [
        f"{CC} agent set contact {ALICE} user/1001@{ACME}",
        f"{CC} agent set type {BOB} Callback",
    ]
    assert_matches_declaration(fs, world)


async def test_runtime_status_set_by_a_person_survives_reconcile(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    assert await fs.run_api(f"{CC} agent set status {ALICE} 'On Break'") == "+OK\n"
    await fs.run_api(f"{CC} agent set state {BOB} 'In a queue call'")
    await fs.run_api(f"{CC} tier set state {SUPPORT} {BOB} Offering")
    at = len(fs.api_log)
    report = await world.reconcile(node)
    assert report.ok and report.changes == 0
    assert mutating(fs, at) == []
    assert fs.agents[ALICE].status == "On Break"
    assert fs.agents[BOB].state == "In a queue call"
    assert fs.tiers[(SUPPORT, BOB)].state == "Offering"


async def test_unmanaged_agents_queues_and_tiers_are_left_alone(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    fs.static_queues.update(VANILLA_CALLCENTER_QUEUES)
    fs.load_queue("support@default", VANILLA_CALLCENTER_QUEUES["support@default"])
    fs.add_agent("1000@default", contact="user/1000@default", status="Available")
    fs.add_agent("operator")
    fs.add_tier("support@default", "1000@default")
    report = await world.reconcile(node)
    assert report.ok
    assert report.unmanaged == ("1000@default", "operator", "support@default")
    assert not [c for c in fs.api_log if "default" in c or "operator" in c]
    assert "support@default" in fs.queues and ("support@default", "1000@default") in fs.tiers
    assert fs.agents["1000@default"].status == "Available"


async def test_announce_sound_change_reloads_the_queue(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    """announce-sound is not in `queue list`: the digest of what was loaded tells."""
    await world.reconcile(node)
    support = world.state["acme"].queues["support"]
    changed = replace(support, announce_sound="ivr/ivr-please_hold.wav", announce_frequency=30)
    world.apply(
        {
            **world.state,
            "acme": replace(
                world.state["acme"], queues={**world.state["acme"].queues, "support": changed}
            ),
        }
    )
    at = len(fs.api_log)
    report = await world.reconcile(node)
    assert mutating(fs, at) == [f"{CC} queue reload {SUPPORT}"]
    assert report.ok
    assert fs.queues[SUPPORT].announce_sound == "ivr/ivr-please_hold.wav"
    assert fs.queues[SUPPORT].announce_frequency == 30
    assert (await world.reconcile(node)).changes == 0


async def test_queue_param_changed_in_spec_reloads_without_touching_agents(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    await fs.run_api(f"{CC} agent set status {BOB} Available")
    sales = replace(world.state["acme"].queues["sales"], max_wait_time=60)
    world.apply(
        {
            **world.state,
            "acme": replace(
                world.state["acme"], queues={**world.state["acme"].queues, "sales": sales}
            ),
        }
    )
    at = len(fs.api_log)
    await world.reconcile(node)
    assert mutating(fs, at) == [f"{CC} queue reload {SALES}"]
    assert fs.queues[SALES].max_wait_time == 60
    assert fs.agents[BOB].status == "Available"


# --- removal --------------------------------------------------------------------------


async def test_removed_queue_is_unloaded_after_its_tiers_and_never_comes_back(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    tenant = world.state["acme"]
    world.apply(
        {
            **world.state,
            "acme": replace(
                tenant,
                queues={k: v for k, v in tenant.queues.items() if k != "sales"},
                tiers={k: v for k, v in tenant.tiers.items() if v.queue != "sales"},
            ),
        }
    )
    at = len(fs.api_log)
    report = await world.reconcile(node)
    assert report.ok
    assert mutating(fs, at) == [f"{CC} tier del {SALES} {BOB}", f"{CC} queue unload {SALES}"]
    assert SALES not in fs.queues
    # Anything that would lazily load it (a tier add, the callcenter app) gets "not found".
    assert await fs.run_api(f"{CC} tier add {SALES} {BOB}") == "-ERR Queue not found!\n"
    assert await fs.run_api(f"{CC} queue load {SALES}") == "-ERR Invalid Queue not found!\n"
    assert SALES not in fs.queues
    assert fs.xml_curl_log[-1].queue == SALES and "not found" in (
        fs.xml_curl_log[-1].response or ""
    )
    assert (await world.reconcile(node)).changes == 0


async def test_suspended_tenant_is_removed_from_the_switch(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    world.apply({**world.state, "acme": acme(status="suspended")})
    report = await world.reconcile(node)
    assert report.ok
    assert report.planned == {"add": 0, "change": 0, "destroy": 7}
    assert not [n for n in fs.agents if n.endswith(ACME)]
    assert not [n for n in fs.queues if n.endswith(ACME)]
    assert not [k for k in fs.tiers if k[0].endswith(ACME)]
    assert f"gina@{GLOBEX}" in fs.agents  # the other tenant is untouched


# --- restarts, reconnects, several nodes ---------------------------------------------


@pytest.mark.parametrize("wipe", [False, True], ids=["state-kept", "state-wiped"])
async def test_freeswitch_restart_is_resynced_right_after_reconnect(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine, wipe: bool
) -> None:
    await world.reconcile(node)
    await fs.run_api(f"{CC} agent set status {BOB} 'On Break'")
    passes = node.pass_count
    await fs.restart(wipe=wipe)
    report = await node.wait_pass(passes, timeout=3)
    assert report.trigger == "connect" and report.ok, report.errors
    assert_matches_declaration(fs, world)
    if wipe:  # a fresh database: the agents are created again, initial status included
        assert fs.agents[ALICE].status == "Available"
        assert report.planned["add"] == 10
    else:  # only the queues (memory) were lost; people's statuses are kept
        assert fs.agents[BOB].status == "On Break"
        assert report.planned == {"add": 3, "change": 0, "destroy": 0}


async def test_initial_status_lost_to_a_drop_after_the_add_is_set_by_the_resync(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    """The connection dies after alice's `agent add` ran but before her `agent set status`:
    the node remembers it created her, so the reconnect's resync sets her initial status
    (once, she is still Logged Out), and the pass after that sends nothing."""
    status_set = f"{CC} agent set status {ALICE} Available"
    passes = node.pass_count
    fs.reply_delay = 0.05  # six sets follow the add, one round trip each: time to cut
    first = asyncio.create_task(world.reconcile(node))
    for _ in range(1500):  # up to 3 s, polled far more often than a round trip
        if ALICE in fs.agents:
            break
        await asyncio.sleep(0.002)
    else:
        pytest.fail("alice was never added")
    fs.drop_connections()  # right after her add ran, before her sets
    fs.reply_delay = 0.0
    cut = await first
    assert not cut.ok and any("connection lost" in e for e in cut.errors)
    assert f"api {status_set}" not in fs.command_log, "the cut came too late: nothing drilled"
    assert fs.agents[ALICE].status == "Logged Out"

    report = await node.wait_pass(passes + 1, timeout=3)
    assert report.trigger == "connect" and report.ok, report.errors
    assert f"agent:{ALICE}" in report.repaired
    assert fs.agents[ALICE].status == "Available"
    assert fs.agents[BOB].status == "Logged Out"  # no initial status declared: none given
    assert_matches_declaration(fs, world)
    assert fs.api_log.count(status_set) == 1

    mutations = fs.mutation_count
    again = await world.reconcile(node)
    assert again.ok and again.changes == 0 and again.commands_sent == 0
    assert fs.mutation_count == mutations


async def test_dropped_connection_reconnects_and_repairs_drift_made_meanwhile(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await world.reconcile(node)
    passes = node.pass_count
    fs.drop_connections()
    fs.remove_agent(ALICE)
    report = await node.wait_pass(passes, timeout=3)
    assert report.trigger == "connect" and report.ok
    assert f"agent:{ALICE}" in report.repaired
    assert_matches_declaration(fs, world)
    assert node.client.connect_count == 2


async def test_disconnected_node_reports_it_and_resyncs_when_it_comes_back(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    await fs.go_down()
    await asyncio.sleep(0.05)
    report = await world.reconcile(node)
    assert not report.connected and not report.ok
    assert report.errors[0].startswith("not connected")
    passes = node.pass_count
    await fs.go_up()
    report = await node.wait_pass(passes, timeout=3)
    assert report.ok
    assert_matches_declaration(fs, world)


async def test_two_nodes_one_down_the_other_proceeds(world: World, fs: FakeFreeSwitch) -> None:
    async with FakeFreeSwitch(xml_curl_url=world.url) as fs2:
        await fs2.go_down()
        live = CallcenterEngines(
            [NodeSpec(s.host, s.port, s.password) for s in (fs, fs2)],
            connect_timeout=0.5,
            reconnect=FAST,
        )
        async with live:
            await live.nodes[0].client.wait_connected(timeout=2)
            up, down = await live.reconcile(world.desired, world.domains)
            assert up.ok and up.applied == 10
            assert not down.connected and down.errors
            assert_matches_declaration(fs, world)
            assert fs2.agents == {}
            passes = live.nodes[1].pass_count
            await fs2.go_up()
            report = await live.nodes[1].wait_pass(passes, timeout=3)
            assert report.ok and report.trigger == "connect"
            assert_matches_declaration(fs2, world)


async def test_plan_only_reads_and_plans_but_never_writes(world: World, fs: FakeFreeSwitch) -> None:
    live = CallcenterEngines([NodeSpec(fs.host, fs.port, fs.password)])  # not started
    (report,) = await live.plan_only(world.desired, world.domains, connect_timeout=1)
    assert report.connected and report.ok
    assert report.planned == {"add": 10, "change": 0, "destroy": 0}
    assert report.plan is not None and len(report.plan.commands()) > 10
    assert fs.mutation_count == 0
    assert set(fs.api_log) == LISTS


async def test_plan_only_without_a_switch_says_unreachable_quickly(world: World) -> None:
    async with FakeFreeSwitch() as gone:
        port = gone.port
    live = CallcenterEngines([NodeSpec("127.0.0.1", port, "ClueCon")])
    loop = asyncio.get_running_loop()
    started = loop.time()
    (report,) = await live.plan_only(world.desired, world.domains, connect_timeout=0.5)
    assert loop.time() - started < 2
    assert not report.connected and report.errors[0].startswith("unreachable")


async def test_a_failing_queue_load_is_reported_and_the_rest_applied(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    world.snapshot = Snapshot()  # the endpoint serves no queue (e.g. a stale snapshot)
    report = await world.reconcile(node)
    assert report.connected and not report.ok
    assert report.failed == 3  # the three queue loads
    assert report.skipped == 4  # the tiers needing them
    assert any("-ERR Invalid Queue not found!" in e for e in report.errors)
    assert set(world.desired.agents) <= set(fs.agents)
    assert report.last_sync is None


async def test_wrong_password_reports_disconnected(world: World, fs: FakeFreeSwitch) -> None:
    n = CallcenterEngine(NodeSession(NodeSpec(fs.host, fs.port, "nope-wrong"), reconnect=FAST))
    await n.start()
    try:
        await asyncio.sleep(0.1)
        report = await world.reconcile(n)
        assert not report.connected
        assert "nope-wrong" not in repr(report) and "nope-wrong" not in repr(n)
    finally:
        await n.stop()


# --- node specs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "password"),
    [
        ("127.0.0.1:8021:ClueCon", "127.0.0.1", 8021, "ClueCon"),
        ("fs1.example.net:8022:pa:ss:word", "fs1.example.net", 8022, "pa:ss:word"),
        ("[fd00::2]:8021:ClueCon", "fd00::2", 8021, "ClueCon"),
        ("  fs2:1:x ", "fs2", 1, "x"),
    ],
    ids=["ipv4", "colon-in-password", "ipv6", "blanks"],
)
def test_parse_node_spec(text: str, host: str, port: int, password: str) -> None:
    spec = parse_node_spec(text)
    assert (spec.host, spec.port, spec.password) == (host, port, password)
    assert password not in repr(spec) and password not in str(spec)


@pytest.mark.parametrize(
    "text",
    [
        "fs1",
        "fs1:8021",
        "fs1:80x:secretpw",
        "fs1:0:secretpw",
        "fs1:8021:",
        "[fd00::2:8021:secretpw",
        ":8021:secretpw",
    ],
)
def test_bad_node_spec_is_refused_without_echoing_the_password(text: str) -> None:
    with pytest.raises(NodeSpecError) as info:
        parse_node_spec(text)
    assert "secretpw" not in str(info.value)


def test_the_same_node_twice_is_refused() -> None:
    with pytest.raises(NodeSpecError, match="twice"):
        parse_node_specs(["a:1:x", "b:1:x", "a:1:y"])
    assert [s.name for s in parse_node_specs(["a:1:x", "[::1]:2:y"])] == ["a:1", "[::1]:2"]


async def test_every_pass_is_reported_including_connect_resyncs(
    world: World, fs: FakeFreeSwitch
) -> None:
    seen: list[NodeReport] = []
    n = node_for(fs, on_report=seen.append)
    n.set_desired(world.desired, world.domains)
    await n.start()
    try:
        await n.wait_pass(0, timeout=3)
        await world.reconcile(n)
        assert [r.trigger for r in seen] == ["connect", "reconcile"]
        assert len(seen[0].repaired) == 10 and seen[1].repaired == ()
    finally:
        await n.stop()


async def test_cleared_desired_state_is_not_pushed_on_reconnect(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    """A daemon that lost leadership forgets what to push; reconnects then change nothing."""
    await world.reconcile(node)
    node.clear_desired()
    passes = node.pass_count
    fs.remove_agent(ALICE)
    mutations = fs.mutation_count
    fs.drop_connections()
    await node.client.wait_connected(timeout=3)
    assert (await node.resync()).changes == 0
    assert node.pass_count == passes + 1
    assert fs.mutation_count == mutations and ALICE not in fs.agents


async def test_a_listing_row_broken_by_a_hand_edit_is_warned_about_and_self_heals(
    world: World, fs: FakeFreeSwitch, node: CallcenterEngine
) -> None:
    """A contact with a '|' breaks its row; the add then finds the agent and sets it right."""
    await world.reconcile(node)
    await fs.run_api(f"{CC} agent set status {ALICE} 'On Break'")
    await fs.run_api(f"{CC} agent set contact {ALICE} user/1001|x@{ACME}")
    report = await world.reconcile(node)
    assert report.warnings and "1001|x" in report.warnings[0]
    assert report.ok and fs.agents[ALICE].contact == f"user/1001@{ACME}"
    assert fs.agents[ALICE].status == "On Break"  # not re-initialised: it was not created
    assert (await world.reconcile(node)).changes == 0


class RecordingPolicy(ReconnectPolicy):
    """The production policy, recording every probe delay it hands out."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "probes", [])

    def probe_delay(self, failures: int) -> float:
        delay = super().probe_delay(failures)
        self.probes.append((failures, delay))  # type: ignore[attr-defined]
        return delay


def declaration_restored(switch: FakeFreeSwitch, world: World) -> bool:
    try:
        assert_matches_declaration(switch, world)
    except (AssertionError, KeyError):
        return False
    return True


async def test_a_switch_down_for_long_is_probed_often_and_resynced_on_connect(
    world: World, fs: FakeFreeSwitch
) -> None:
    """Measured on a real 1.10.12: 1.1 to 11.3 s, because the reconnect backoff had grown
    towards its 30 s cap while the switch was down. Now a down node is probed every
    0.2-1 s however long it is down, and resynced on connect: a wiped mod_callcenter is
    whole again within 2 s of the event socket accepting connections (measured by
    bench/bench_callcenter.py; here the mechanism: probes never wait past their cap and the
    resync is run by the connect itself, not by a later pass)."""
    policy = RecordingPolicy()
    node = CallcenterEngine(NodeSession(NodeSpec(fs.host, fs.port, fs.password), reconnect=policy))
    await node.start()
    try:
        await node.client.wait_connected(timeout=3)
        assert (await world.reconcile(node)).ok
        loop = asyncio.get_running_loop()
        passes = node.pass_count
        await fs.restart(wipe=True, down_for=4.5)  # returns once it accepts again
        accepting = loop.time()
        while not declaration_restored(fs, world):
            assert loop.time() - accepting < 15.0, "never restored after accepting"
            await asyncio.sleep(0.005)
        restored = loop.time() - accepting
        report = await node.wait_pass(passes, timeout=10)  # its report may lag the commands
        assert report.trigger == "connect"
    finally:
        await node.stop()
    failures = max(n for n, _ in policy.probes)  # type: ignore[attr-defined]
    delays = [d for _, d in policy.probes]  # type: ignore[attr-defined]
    # Down long enough that an exponential backoff from 0.5 s would be at its 30 s cap...
    assert 0.5 * 2**failures >= 30
    # ...while every probe waited at most the probe cap.
    assert max(delays) <= policy.probe_cap <= 1.0
    print(f"restart-to-resynced: {restored:.3f} s after {failures} probes")

"""NodeSession against the fake switch: one connection per lane whatever the number of
engines, one subscription that is the union of theirs, every event to every engine of the
lane, every (re)connect to every engine, and one engine's failure kept from the others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reconciler.esl import EslClient, EslConnection, EslEvent
from reconciler.switch import (
    CallcenterEngines,
    Lane,
    NodeSession,
    NodeSpec,
    PresenceCache,
    ReconnectPolicy,
    Runs,
)
from reconciler.switch.session import union
from tests.fakes.freeswitch import FakeFreeSwitch

FAST = ReconnectPolicy(probe_base=0.02, probe_cap=0.1, probe_floor=0.01)


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class Recorder:
    """An engine that remembers what the session gave it."""

    lane = Lane.EVENTS
    runs = Runs.EVERY_DAEMON

    def __init__(self, *subscriptions: str, fail: bool = False) -> None:
        self.subscriptions = subscriptions
        self.fail = fail
        self.client: EslClient | None = None
        self.connects = 0
        self.events: list[EslEvent] = []

    def attach(self, client: EslClient) -> None:
        self.client = client

    async def on_connect(self, conn: EslConnection) -> None:
        self.connects += 1
        if self.fail:
            raise RuntimeError("this engine is broken")

    def on_event(self, event: EslEvent) -> None:
        if self.fail:
            raise RuntimeError("this engine is broken")
        self.events.append(event)


def session_for(fs: FakeFreeSwitch) -> NodeSession:
    return NodeSession(NodeSpec(fs.host, fs.port, fs.password), reconnect=FAST)


def test_the_subscription_is_the_union_in_first_seen_order() -> None:
    assert union([("CUSTOM", "sofia::register"), ("CUSTOM", "callcenter::info"), ()]) == (
        "CUSTOM",
        "sofia::register",
        "callcenter::info",
    )


async def test_engines_of_a_lane_share_one_connection_and_every_event() -> None:
    async with FakeFreeSwitch() as fs:
        session = session_for(fs)
        sofia, callcenter = (
            Recorder("CUSTOM", "sofia::register"),
            Recorder("CUSTOM", "callcenter::info"),
        )
        session.add(sofia)
        session.add(callcenter)
        await session.start()
        try:
            await eventually(lambda: sofia.connects == callcenter.connects == 1)
            assert fs.authenticated_count == 1
            assert sofia.client is callcenter.client is session.client(Lane.EVENTS)
            fs.sofia.register("1001", "acme.example.com")
            await fs.run_api("callcenter_config agent add a@acme.example.com Callback")
            await eventually(lambda: len(sofia.events) == 2)
            assert [e.name for e in sofia.events] == ["sofia::register", "callcenter::info"]
            assert [e.name for e in callcenter.events] == [e.name for e in sofia.events]
        finally:
            await session.stop()


async def test_every_reconnect_reaches_every_engine() -> None:
    async with FakeFreeSwitch() as fs:
        session = session_for(fs)
        first, second = Recorder("CUSTOM", "sofia::register"), Recorder("HEARTBEAT")
        session.add(first)
        session.add(second)
        await session.start()
        try:
            await eventually(lambda: first.connects == second.connects == 1)
            fs.drop_connections()
            await eventually(lambda: first.connects == second.connects == 2)
        finally:
            await session.stop()


async def test_a_failing_engine_does_not_stop_the_others() -> None:
    async with FakeFreeSwitch() as fs:
        session = session_for(fs)
        broken, healthy = Recorder("CUSTOM", "sofia::register", fail=True), Recorder("CUSTOM")
        session.add(broken)
        session.add(healthy)
        await session.start()
        try:
            await eventually(lambda: healthy.connects == 1)
            fs.sofia.register("1001", "acme.example.com")
            await eventually(lambda: len(healthy.events) == 1)
            assert session.connected(Lane.EVENTS)
        finally:
            await session.stop()


async def test_a_daemon_holds_one_connection_per_lane_for_both_engines() -> None:
    """The daemon's wiring: callcenter (COMMANDS lane) and presence (EVENTS lane) share one
    session per node, so a node sees two connections from a daemon, not one per engine."""
    async with FakeFreeSwitch() as fs:
        sessions = [session_for(fs)]
        callcenter = CallcenterEngines(sessions)
        presence = PresenceCache(sessions)
        await callcenter.start()
        await presence.start()  # the same sessions: started once
        try:
            await fs.wait_for_connections(2)
            await eventually(lambda: callcenter.nodes[0].connected and presence.nodes[0].connected)
            assert fs.authenticated_count == 2
            assert callcenter.nodes[0].runs is Runs.LEADER
            assert presence.nodes[0].runs is Runs.EVERY_DAEMON
        finally:
            await presence.stop()
            await callcenter.stop()


def test_engines_cannot_join_a_lane_that_is_running() -> None:
    session = NodeSession(NodeSpec("127.0.0.1", 8021, "ClueCon"))
    session.add(Recorder("CUSTOM"))
    session.client(Lane.EVENTS)
    try:
        session.add(Recorder("HEARTBEAT"))
    except RuntimeError as exc:
        assert "already running" in str(exc)
    else:
        raise AssertionError("an engine joined a running lane")

"""The fake's people side answers like the captured switch (esl/live): registrations in the
four views, the sofia::register event and the callcenter::info events of a queue call."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fakes.freeswitch import FakeFreeSwitch, RawEsl
from tests.live.test_fake_freeswitch import SHARED, event_fields, split_frames

LIVE_DIR = SHARED / "freeswitch" / "transcripts" / "esl" / "live"
pytestmark = pytest.mark.skipif(not LIVE_DIR.is_dir(), reason=f"no transcripts at {LIVE_DIR}")

ACME = "acme.example.com"
ALICE = f"alice@{ACME}"
SUPPORT = f"support@{ACME}"
CORE_UUID = "383a3420-cb41-4fc3-ae0c-1e74f13dac59"
REGISTERED_US = 1796225898073266
SUBSCRIBE = "event plain CUSTOM sofia::register sofia::unregister sofia::expire callcenter::info"
# The directory user's variables sofia adds to the register event (acme 1001, Alice).
ALICE_VARIABLES = [
    ("sip_number_alias", "1001"),
    ("sip_auth_username", "1001"),
    ("sip_auth_realm", ACME),
    ("number_alias", "1001"),
    ("user_name", "1001"),
    ("user_context", ACME),
    ("domain_name", ACME),
    ("effective_caller_id_name", "Alice Smith"),
    ("effective_caller_id_number", "1001"),
    ("outbound_caller_id_name", "Acme Corporation"),
    ("outbound_caller_id_number", "+14155550100"),
    ("call_timeout", "30"),
]


def load(name: str) -> dict[str, str]:
    return json.loads((LIVE_DIR / f"{name}.json").read_text())


def at(fs: FakeFreeSwitch, timestamp_us: int, sequence: int | None = None) -> None:
    fs.clock_us = lambda: timestamp_us
    if sequence is not None:
        fs.event_sequence = sequence


def capture_switch() -> FakeFreeSwitch:
    """The fake as the capture VM was: host ``vm``, that Core-UUID, acme's agents."""
    fs = FakeFreeSwitch(hostname="vm", switchname="vm", core_uuid=CORE_UUID)
    for name, contact, wrap in (("alice", "1001", 10), ("bob", "1002", 10), ("carol", "1004", 15)):
        fs.add_agent(
            f"{name}@{ACME}",
            contact=f"user/{contact}@{ACME}",
            max_no_answer=3,
            wrap_up_time=wrap,
            reject_delay_time=10,
            busy_delay_time=60,
            no_answer_delay_time=60,
        )
    fs.load_queue(SUPPORT)
    fs.add_tier(SUPPORT, ALICE)
    fs.add_tier(SUPPORT, f"bob@{ACME}", level=2)
    fs.add_tier(SUPPORT, f"carol@{ACME}", position=2)
    return fs


def register_alice(fs: FakeFreeSwitch) -> None:
    at(fs, REGISTERED_US, 858)
    fs.sofia.register("1001", ACME, call_id="1-2367@127.0.0.1", variables=ALICE_VARIABLES)


@pytest.mark.parametrize(
    "name",
    [
        "show_registrations",
        "show_registrations_json",
        "sofia_xmlstatus_profile_reg",
        "sofia_status_profile_reg",
    ],
)
async def test_registration_views_replay_byte_for_byte(name: str) -> None:
    async with capture_switch() as fs:
        register_alice(fs)
        at(fs, REGISTERED_US + 3_000_000)  # read 3 s later: EXPSECS(177)
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        t = load(name)
        assert await raw.request(t["send"]) == t["recv"].encode()
        await raw.close()


async def test_empty_registration_views_keep_their_frame() -> None:
    """Inferred (no capture): nobody registered."""
    async with FakeFreeSwitch() as fs:
        assert await fs.run_api("show registrations as json") == '{"row_count":0}'
        assert await fs.run_api("show registrations") == "\n0 total.\n"
        xml = await fs.run_api("sofia xmlstatus profile internal reg")
        assert "<registrations>\n  </registrations>" in xml
        assert "Total items returned: 0" in await fs.run_api("sofia status profile internal reg")


async def test_queue_call_listings_replay_byte_for_byte() -> None:
    fs = capture_switch()
    async with fs:
        at(fs, 1796225898_573322)
        member = fs.members.enter(
            SUPPORT,
            "1002",
            member_uuid="e7bbe661-14f3-46c7-aa42-abcf97651d9a",
            session_uuid="1c5eb3a7-2641-471d-ab64-3d445d5adb5d",
        )
        fs.agents[ALICE].status = "Available"
        fs.members.answer(member.uuid, ALICE)
        alice = fs.agents[ALICE]
        alice.uuid = "aca4a350-7c25-4472-9a47-3d1a58bec80d"
        alice.last_bridge_start = alice.last_offered_call = 1796225898
        alice.last_status_change, alice.calls_answered = 1796225897, 1
        fs.tiers[(SUPPORT, ALICE)].state = "Active Inbound"
        member.score = 3
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        for name in (
            "cc_queue_list_members_in_call",
            "cc_queue_count_members",
            "cc_queue_list_agents",
            "cc_queue_list_tiers",
        ):
            t = load(name)
            assert await raw.request(t["send"]) == t["recv"].encode(), name
        await raw.close()


def transcript_frames() -> list[bytes]:
    return split_frames(load("event_sofia_register_cc_member")["recv"].encode())


def channel_headers(frame: bytes) -> list[tuple[str, str]]:
    """The caller's channel headers of a captured member event (between the standard
    headers and the CC-* ones), url-decoded as the fake takes them."""
    from urllib.parse import unquote

    pairs = event_fields(frame)
    start = next(i for i, (k, _) in enumerate(pairs) if k == "Event-Sequence") + 1
    end = next(i for i, (k, _) in enumerate(pairs) if k == "CC-Queue")
    return [(k, unquote(v)) for k, v in pairs[start:end]]


async def test_register_and_queue_events_replay_byte_for_byte() -> None:
    frames = transcript_frames()
    async with capture_switch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        assert await raw.request(f"{SUBSCRIBE}\n\n") == frames[0]
        register_alice(fs)
        assert await raw.read_frame() == frames[1]
        at(fs, 1796225898_093268, 861)
        await fs.run_api(f"callcenter_config agent set status {ALICE} Available")
        assert await raw.read_frame() == frames[2]
        at(fs, 1796225898_573322, 887)
        fs.members.enter(
            SUPPORT,
            "1002",
            member_uuid="e7bbe661-14f3-46c7-aa42-abcf97651d9a",
            session_uuid="1c5eb3a7-2641-471d-ab64-3d445d5adb5d",
            channel=channel_headers(frames[3]),
        )
        assert await raw.read_frame() == frames[3]  # member-queue-start
        assert await raw.read_frame() == frames[4]  # members-count
        await raw.close()


def cc_headers(frame: bytes) -> list[tuple[str, str]]:
    return [(k, v) for k, v in event_fields(frame) if k.startswith("CC-")]


async def test_a_queue_call_fires_the_captured_sequence() -> None:
    """Answered and hung up: the same CC-* headers, in the same order, as captured."""
    captured = [cc_headers(f) for f in transcript_frames()[3:]]
    async with capture_switch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        await raw.request("event plain CUSTOM callcenter::info\n\n")
        at(fs, 1796225898_000000)
        member = fs.members.enter(
            SUPPORT,
            "1002",
            member_uuid="e7bbe661-14f3-46c7-aa42-abcf97651d9a",
            session_uuid="1c5eb3a7-2641-471d-ab64-3d445d5adb5d",
        )
        fs.members.answer(member.uuid, ALICE)
        fs.members.leave(member.uuid)
        got = [cc_headers(await raw.read_frame()) for _ in captured]
        await raw.close()
    # the fake leaves out what a real call adds (times, the agent's uuid, bridged flag)
    for mine, theirs in zip(got, captured, strict=True):
        assert mine == [h for h in theirs if h in mine], (mine, theirs)
        assert [k for k, _ in mine][:2] == [k for k, _ in theirs][:2]


async def test_unregister_and_expire_fire_their_events() -> None:
    """Formats inferred from the 1.10 source (no capture): keyed by call-id."""
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        await raw.request(f"{SUBSCRIBE}\n\n")
        one = fs.sofia.register("1001", ACME, call_id="a@1")
        two = fs.sofia.register("1002", ACME, call_id="b@1")
        await raw.read_frames(2)
        fs.sofia.unregister(one.call_id)
        fs.sofia.expire(two.call_id)
        unregister = dict(event_fields(await raw.read_frame()))
        expire = dict(event_fields(await raw.read_frame()))
        await raw.close()
    assert unregister["Event-Subclass"] == "sofia%3A%3Aunregister"
    assert (unregister["call-id"], unregister["expires"]) == ("a%401", "0")
    assert expire["Event-Subclass"] == "sofia%3A%3Aexpire"
    assert (expire["call-id"], expire["user"], expire["host"]) == ("b%401", "1002", ACME)
    assert fs.sofia.registrations == {}
    assert re.search(r"\n0 total", await fs.run_api("show registrations"))


def test_every_live_transcript_has_a_replay() -> None:
    covered = {
        "show_registrations",
        "show_registrations_json",
        "sofia_xmlstatus_profile_reg",
        "sofia_status_profile_reg",
        "cc_queue_list_members_in_call",
        "cc_queue_count_members",
        "cc_queue_list_agents",
        "cc_queue_list_tiers",
        "event_sofia_register_cc_member",
    }
    not_modelled = {  # channel views and sofia_contact: the presence cache does not use them
        "show_calls_count",
        "show_channels_in_call",
        "sofia_contact_registered",
        "sofia_contact_unregistered",
    }
    on_disk = {p.stem for p in Path(LIVE_DIR).glob("*.json")}
    assert on_disk == covered | not_modelled

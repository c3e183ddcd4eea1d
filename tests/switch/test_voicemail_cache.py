"""The voicemail listing cache: a box is listed once until something says it moved (its
events, our own change, a reconnect, its age), a listing in flight when the box moves is
never kept, and the check before a change still asks the switch itself."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import pytest

from reconciler.core.voicemail_box import NoSuchMessage, VoicemailMessage
from reconciler.switch.voicemail.cache import ListingCache, box_key
from reconciler.switch.voicemail.engine import VoicemailSwitches, newest_first
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.fakes.freeswitch.voicemail import FakeMessage
from tests.switch.voicemail_support import connected_voicemail

ACME = "acme.example.com"
UUID = "aaaaaaaa-0000-4000-8000-{:012d}"


def message(n: int, box: str = "1001") -> VoicemailMessage:
    return VoicemailMessage(
        uuid=UUID.format(n),
        box=box,
        domain=ACME,
        folder="inbox",
        created=datetime.fromtimestamp(1_700_000_000 + n, UTC),
        heard=None,
        path=f"/v/acme/{box}/msg_{n}.wav",
        caller_name="",
        caller_number="1",
        seconds=3,
    )


# -- the cache alone -------------------------------------------------------------------------


def test_an_entry_is_kept_until_dropped_or_too_old() -> None:
    cache = ListingCache(fresh_for=10)
    key = box_key("1001", "ACME.example.com")
    assert key == ("1001", ACME)
    cache.put(key, (message(1),), now=100, since=cache.generation())
    assert cache.get(key, now=109) == (message(1),)
    assert cache.get(key, now=110) is None  # the freshness ceiling
    cache.put(key, (message(1),), now=100, since=cache.generation())
    cache.drop(key)
    assert cache.get(key, now=101) is None and cache.held == 0


def test_a_listing_sent_before_its_box_moved_is_not_kept() -> None:
    cache = ListingCache()
    key, other = box_key("1001", ACME), box_key("1002", ACME)
    since = cache.generation()
    cache.drop(key)  # the event arrives while the vm_list is on the wire
    cache.put(key, (message(1),), now=0, since=since)
    cache.put(other, (message(2, "1002"),), now=0, since=since)  # another box: kept
    assert cache.get(key, now=0) is None
    assert cache.get(other, now=0) == (message(2, "1002"),)
    cache.put(key, (message(1),), now=0, since=cache.generation())  # sent after: kept
    assert cache.get(key, now=0) == (message(1),)
    since = cache.generation()
    cache.clear()  # a reconnect: every listing in flight is refused too
    cache.put(other, (message(2, "1002"),), now=0, since=since)
    assert cache.get(other, now=0) is None and cache.held == 0


def test_the_least_recently_read_boxes_go_beyond_the_message_bound() -> None:
    cache = ListingCache(max_messages=5)
    boxes = [box_key(str(1001 + n), ACME) for n in range(3)]
    for n, key in enumerate(boxes):
        cache.put(key, (message(2 * n), message(2 * n + 1)), now=0, since=cache.generation())
    assert cache.get(boxes[0], now=0) is None  # the oldest went when the third came
    assert cache.get(boxes[1], now=0) is not None and cache.held == 4
    cache.put(boxes[0], tuple(message(n) for n in range(6)), now=0, since=cache.generation())
    assert cache.get(boxes[0], now=0) is None  # bigger than the bound: never held
    assert cache.held <= 5


# -- the engine against the fake switch ------------------------------------------------------


EVENTS_PER_LEAVE = 3  # vm::maintenance leave-message, MESSAGE_WAITING, vm::maintenance


async def leave_and_settle(boxes: VoicemailSwitches, fs: FakeFreeSwitch, *where: str) -> None:
    """Leave a message in each box and wait for every event it fires (a late one would
    drop a listing the test counts on)."""
    before = boxes.version
    for box in where:
        fs.voicemail.leave(box, ACME, f"/v/acme/{box}/{random.getrandbits(32)}.wav")
    async with asyncio.timeout(5):
        while boxes.version < before + EVENTS_PER_LEAVE * len(where):
            await boxes.changed(boxes.version, timeout=1)


def lists(fs: FakeFreeSwitch, box: str = "1001") -> int:
    return fs.api_log.count(f"vm_list {box}@{ACME}")


def behind_its_back(fs: FakeFreeSwitch, box: str = "1001") -> FakeMessage:
    """A message the switch holds without having said so (an event lost)."""
    uuid = f"{random.getrandbits(32):08x}-0000-4000-8000-000000000000"
    left = FakeMessage(uuid, box, ACME, "/v/x.wav", "", "1", 3, int(time.time()))
    fs.voicemail.messages[left.uuid] = left
    return left


async def test_a_box_is_listed_once_until_its_own_event_says_it_moved(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    await leave_and_settle(boxes, fs, "1001", "1002")
    first = await boxes.messages("1001", ACME)
    await boxes.messages("1002", ACME)
    behind_its_back(fs)  # not seen: the cached listing is what is shown
    assert await boxes.messages("1001", ACME) == first
    assert lists(fs) == 1
    await leave_and_settle(boxes, fs, "1002")  # another box moved
    assert await boxes.messages("1001", ACME) == first and lists(fs) == 1
    assert len(await boxes.messages("1002", ACME)) == 2 and lists(fs, "1002") == 2
    before = boxes.version
    fs.voicemail.leave("1001", ACME, "/v/acme/1001/b.wav")  # this box moved
    assert await boxes.changed(before, timeout=5) > before
    assert len(await boxes.messages("1001", ACME)) == 3  # with the one left behind its back
    assert lists(fs) == 2


async def test_a_listing_older_than_the_ceiling_is_listed_again(fs: FakeFreeSwitch) -> None:
    async with connected_voicemail(fs) as switches:
        for node in switches.nodes:
            node.cache.fresh_for = 0.2
        assert await switches.messages("1001", ACME) == []
        behind_its_back(fs)
        assert await switches.messages("1001", ACME) == []
        await asyncio.sleep(0.25)
        assert len(await switches.messages("1001", ACME)) == 1


async def test_a_reconnect_lists_every_box_again(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    assert await boxes.messages("1001", ACME) == []
    behind_its_back(fs)
    node = boxes.nodes[0]
    await node.on_connect(node.client.connection)  # type: ignore[arg-type]
    assert len(await boxes.messages("1001", ACME)) == 1


async def test_readers_at_once_share_one_vm_list(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    await leave_and_settle(boxes, fs, "1001")
    found = await asyncio.gather(*(boxes.messages("1001", ACME) for _ in range(10)))
    assert all(f == found[0] and len(f) == 1 for f in found)
    assert lists(fs) == 1


async def test_the_check_before_a_change_asks_the_switch_not_the_cache(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    """The cached listing still shows a message the switch no longer holds (its event
    lost): the change is refused by the switch's own listing, and nothing is sent."""
    await leave_and_settle(boxes, fs, "1001")
    [cached] = await boxes.messages("1001", ACME)
    del fs.voicemail.messages[cached.uuid]  # gone, no event
    assert await boxes.messages("1001", ACME) == [cached]  # the cache has not seen it
    with pytest.raises(NoSuchMessage):
        await boxes.mark(cached, heard=True)
    with pytest.raises(NoSuchMessage):
        await boxes.delete(cached)
    assert not [c for c in fs.api_log if c.startswith(("vm_read", "vm_delete"))]
    assert lists(fs) == 3  # the listing, then one check per change
    assert await boxes.messages("1001", ACME) == []  # a refused change drops the box too


async def test_our_own_change_is_seen_at_once(fs: FakeFreeSwitch, boxes: VoicemailSwitches) -> None:
    await leave_and_settle(boxes, fs, "1001")
    [listed] = await boxes.messages("1001", ACME)
    boxes.nodes[0].on_event = lambda event: None  # type: ignore[method-assign]  # deaf
    await boxes.mark(listed, heard=True)
    [heard] = await boxes.messages("1001", ACME)
    assert not heard.new
    await boxes.delete(heard)
    assert await boxes.messages("1001", ACME) == []


async def test_a_merged_listing_follows_every_box(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    """Messages left, heard and deleted in random boxes: the merged listing of every box
    is always the boxes' own listings sorted newest first."""
    rng = random.Random(19)
    names = [str(1001 + n) for n in range(6)]
    now = int(time.time())
    for n in range(40):
        fs.voicemail.leave(rng.choice(names), ACME, f"/v/{n}.wav", created=now - rng.randrange(50))
    for _ in range(25):
        before = boxes.version
        action = rng.randrange(3)
        if action == 0 or not fs.voicemail.messages:
            fs.voicemail.leave(rng.choice(names), ACME, "/v/new.wav", created=now - 25)
            await boxes.changed(before, timeout=5)
        else:
            chosen = rng.choice(await boxes.boxes_messages(names, ACME))
            if action == 1:
                await boxes.mark(chosen, heard=chosen.new)
            else:
                await boxes.delete(chosen)
        await asyncio.sleep(0.02)  # the events of the change
        merged = await boxes.boxes_messages(names, ACME)
        separately = [m for name in names for m in await boxes.messages(name, ACME)]
        assert list(merged) == sorted(separately, key=newest_first)
        assert len(merged) == len(fs.voicemail.messages)

"""The switches' mod_voicemail over ESL (``VoicemailSwitches``) against the fake switch,
which answers ``vm_*`` as the real 1.10.12 does: boxes listed, a change made only on a
message its box holds, the events of a left/heard/deleted message seen as changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from reconciler.core.voicemail_box import NoSuchMessage, VoicemailUnavailable
from reconciler.switch import NodeSession, NodeSpec
from reconciler.switch.voicemail.engine import VoicemailSwitches
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.switch.voicemail_support import FAST, connected_voicemail

ACME = "acme.example.com"


@pytest.fixture
async def fs() -> AsyncIterator[FakeFreeSwitch]:
    async with FakeFreeSwitch() as switch:
        yield switch


@pytest.fixture
async def boxes(fs: FakeFreeSwitch) -> AsyncIterator[VoicemailSwitches]:
    async with connected_voicemail(fs) as switches:
        yield switches


async def test_a_left_message_is_listed_and_moves_the_version(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    assert await boxes.messages("1001", ACME) == []  # the real switch: "-ERR no reply"
    before = boxes.version
    left = fs.voicemail.leave("1001", ACME, "/v/acme/1001/msg_a.wav", caller_name="Dr: ${x}")
    assert await boxes.changed(before, timeout=5) > before
    [message] = await boxes.messages("1001", ACME)
    assert (message.uuid, message.caller_name, message.new) == (left.uuid, "Dr: ${x}", True)
    assert message.node == boxes.nodes[0].name


async def test_heard_and_deleted_go_through_vm_read_and_vm_delete(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    fs.voicemail.leave("1001", ACME, "/v/acme/1001/msg_a.wav")
    [message] = await boxes.messages("1001", ACME)
    await boxes.mark(message, heard=True)
    [heard] = await boxes.messages("1001", ACME)
    assert not heard.new
    await boxes.delete(heard)
    assert await boxes.messages("1001", ACME) == []
    assert [c for c in fs.api_log if c.startswith("vm_delete")] == [
        f"vm_delete 1001@{ACME} {message.uuid}"
    ]


async def test_a_message_of_another_box_is_never_changed(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    """mod_voicemail deletes by id alone, whatever box the command names: the engine asks
    the box first, so an id of another box (another tenant's) is refused, not deleted."""
    fs.voicemail.leave("2001", "globex.example.com", "/v/globex/2001/msg_b.wav")
    [theirs] = await boxes.messages("2001", "globex.example.com")
    forged = replace(theirs, box="1001", domain=ACME)
    with pytest.raises(NoSuchMessage):
        await boxes.delete(forged)
    assert len(fs.voicemail.messages) == 1
    assert not [c for c in fs.api_log if c.startswith("vm_delete")]


async def test_no_switch_connected_is_unavailable(fs: FakeFreeSwitch) -> None:
    session = NodeSession(NodeSpec(fs.host, 1, fs.password), reconnect=FAST)
    switches = VoicemailSwitches([session])
    with pytest.raises(VoicemailUnavailable):
        await switches.messages("1001", ACME)

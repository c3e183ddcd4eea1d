"""The switches' mod_voicemail over ESL (``VoicemailSwitches``) against the fake switch,
which answers ``vm_*`` as the real 1.10.12 does: boxes listed, a change made only on a
message its box holds, the events of a left/heard/deleted message seen as changes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest

from reconciler.core.voicemail_box import NoSuchMessage, VoicemailUnavailable
from reconciler.switch import NodeSession, NodeSpec
from reconciler.switch.voicemail.engine import VoicemailSwitches
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.switch.voicemail_support import FAST

ACME = "acme.example.com"


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


CAPTURES = Path(__file__).resolve().parents[1] / "fakes/freeswitch/captures"


async def test_the_fake_answers_every_captured_command_as_the_real_switch(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    replies = json.loads((CAPTURES / "vm_replies.json").read_text())
    fs.voicemail.leave("1007", ACME, "/v/acme/1007/msg_a.wav")
    node = boxes.nodes[0]
    for command, reply in replies.items():
        assert await node.api(command) == reply, command


async def test_the_fakes_events_carry_the_captured_headers(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    captured = [
        dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
        for body in (CAPTURES / "vm_events.txt").read_text().split("\n\n\n")
        if body.strip()
    ]
    seen: list[dict[str, str]] = []
    boxes.nodes[0].on_event = lambda event: seen.append(dict(event.headers))  # type: ignore[method-assign]
    left = fs.voicemail.leave("1007", ACME, "/v/acme/1007/msg_a.wav")
    [message] = await boxes.messages("1007", ACME)
    assert message.uuid == left.uuid
    seen.clear()
    await boxes.mark(message, heard=True)
    await boxes.delete(message)
    async with asyncio.timeout(5):
        while len(seen) < len(captured):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    for real, fake in zip(captured, seen, strict=True):
        assert set(real) - {"Event-Sequence"} <= set(fake), (real, fake)
        for key in ("Event-Name", "MWI-Messages-Waiting", "Update-Reason", "VM-Action"):
            assert unquote(real.get(key, "")) == fake.get(key, ""), key
        assert unquote(real.get("MWI-Voice-Message", "")) == fake.get("MWI-Voice-Message", "")

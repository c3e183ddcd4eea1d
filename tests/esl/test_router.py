"""The sans-IO ESL router, frame by frame, on the bytes a real FreeSWITCH sent.

No socket: transcript ``recv`` bytes go through the frame parser into the router, and the tests
look at the futures it resolved and the events it delivered.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from reconciler.esl import (
    EslAuthError,
    EslConnectionError,
    EslEvent,
    EslFrame,
    EslFrameParser,
    EslProtocolError,
    EslTimeout,
    build_event_command,
)
from reconciler.esl.router import (
    API_RESPONSE,
    COMMAND_REPLY,
    EslRouter,
    EventCallback,
    EventSink,
)
from tests.conftest import TRANSCRIPTS

ESL_DIR = TRANSCRIPTS / "esl"
pytestmark = pytest.mark.skipif(not ESL_DIR.is_dir(), reason=f"no transcripts at {ESL_DIR}")

PEER = "fs1.example.net:8021"
JOB_UUID = "0b1c4f0e-4a4b-4c3e-9a55-3d2f5f1e0001"  # the Job-UUID sent in bgapi_status_job_uuid
CC_EVENTS = [
    "event_cc_agent_add",
    "event_cc_agent_set_status",
    "event_cc_agent_set_status_same",
    "event_cc_agent_set_status_on_break",
    "event_cc_agent_set_state",
    "event_cc_agent_set_contact",
]


def transcript(name: str) -> dict[str, str]:
    return dict(json.loads((ESL_DIR / f"{name}.json").read_text()))


def frames(*names: str) -> list[tuple[dict[str, str], bytes]]:
    return EslFrameParser().feed(b"".join(transcript(n)["recv"].encode() for n in names))


class Wired:
    """A router with its futures and its event sink, as a connection holds them. Events are
    collected in ``delivered`` unless ``buffer`` is given: then they go to a buffer that size."""

    def __init__(self, *, on_event: EventCallback | None = None, buffer: int | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[None] = self.loop.create_future()
        self.delivered: list[EslEvent] = []
        if buffer is None:
            self.events = EventSink(100, on_event or self.delivered.append)
        else:
            self.events = EventSink(buffer)
        self.router = EslRouter(PEER, self.banner, self.events)

    def expect(self, content_type: str) -> asyncio.Future[EslFrame]:
        reply: asyncio.Future[EslFrame] = self.loop.create_future()
        self.router.expect(reply, content_type)
        return reply

    def job(self, job_uuid: str) -> asyncio.Future[str]:
        result: asyncio.Future[str] = self.loop.create_future()
        self.router.watch_job(job_uuid, result)
        return result

    def feed(self, *names: str) -> None:
        for headers, body in frames(*names):
            self.router.route(headers, body)

    async def buffered(self) -> list[EslEvent]:
        """Close the buffer and read everything it kept."""
        self.events.close()
        kept: list[EslEvent] = []
        while (event := await self.events.get(1)) is not None:
            kept.append(event)
        return kept


def is_reply(frame: tuple[dict[str, str], bytes]) -> bool:
    return frame[0]["Content-Type"] in (API_RESPONSE, COMMAND_REPLY)


def captures_with_a_reply() -> list[str]:
    if not ESL_DIR.is_dir():
        return []
    paths = sorted(ESL_DIR.glob("*.json")) + sorted(ESL_DIR.glob("live/*.json"))
    names = [str(path.relative_to(ESL_DIR).with_suffix("")) for path in paths]
    return [name for name in names if any(is_reply(f) for f in frames(name))]


# ----------------------------------------------------------------------------- replies


@pytest.mark.parametrize("name", captures_with_a_reply())
async def test_every_captured_reply_goes_to_the_command_that_asked(name: str) -> None:
    """Whatever the switch sent around it (events, job results, a disconnect notice), each
    capture's one reply resolves the one waiter, and a second copy finds nobody: desync."""
    # The one capture without its command recorded is an ``event plain`` reply (its notes).
    expected = API_RESPONSE if transcript(name)["send"].startswith("api ") else COMMAND_REPLY
    [(headers, body)] = [frame for frame in frames(name) if is_reply(frame)]
    wired = Wired()
    reply = wired.expect(expected)
    wired.feed(name)
    if headers["Content-Type"] == expected:
        assert reply.result() == EslFrame(headers, body.decode())
    else:  # command_before_auth: "api status" answered by a command/reply "-ERR"
        with pytest.raises(EslProtocolError, match="command not found"):
            reply.result()
    with pytest.raises(EslProtocolError, match="unsolicited"):
        wired.feed(name)


async def test_replies_are_matched_to_commands_in_the_order_they_were_sent() -> None:
    wired = Wired()
    auth = wired.expect(COMMAND_REPLY)
    status = wired.expect(API_RESPONSE)
    listing = wired.expect(API_RESPONSE)
    wired.feed("connect_banner", "auth_ok", "agent_get_status", "agent_list_two")
    assert wired.banner.done() and wired.banner.result() is None
    assert auth.result().reply_text == "+OK accepted"
    assert status.result().body == "Available"  # verbatim: no newline, no +OK
    assert listing.result().body.startswith("name|instance_id|uuid|type|contact|status|")


async def test_events_between_replies_take_no_reply_slot() -> None:
    wired = Wired()
    first = wired.expect(API_RESPONSE)
    second = wired.expect(API_RESPONSE)
    wired.feed("event_cc_agent_add", "agent_add_ok", "event_cc_agent_set_status", "api_status")
    assert first.result().body == "+OK\n"
    assert second.result().body.startswith("UP 0 years")
    assert [e["CC-Action"] for e in wired.delivered] == ["agent-add", "agent-status-change"]


async def test_a_reply_of_the_wrong_type_fails_only_its_own_command() -> None:
    wired = Wired()
    refused = wired.expect(API_RESPONSE)
    after = wired.expect(API_RESPONSE)
    wired.feed("command_before_auth", "agent_get_state")
    with pytest.raises(EslProtocolError, match="expected api/response, got command/reply"):
        refused.result()
    assert after.result().body == "Waiting"


async def test_the_late_reply_of_an_abandoned_command_is_dropped() -> None:
    wired = Wired()
    abandoned = wired.expect(API_RESPONSE)
    waiting = wired.expect(API_RESPONSE)
    abandoned.cancel()  # its caller timed out; its slot stays in the FIFO
    wired.feed("agent_get_status", "agent_get_state")
    assert waiting.result().body == "Waiting"


async def test_a_reply_nobody_asked_for_is_a_protocol_error() -> None:
    wired = Wired()
    with pytest.raises(EslProtocolError, match=r"unsolicited api/response frame"):
        wired.feed("agent_get_status")


# ----------------------------------------------------------------------------- background jobs


async def test_a_job_result_goes_to_its_bgapi_not_to_the_events() -> None:
    wired = Wired()
    accepted = wired.expect(COMMAND_REPLY)
    result = wired.job(JOB_UUID)
    wired.feed("bgapi_status_job_uuid")
    assert accepted.result().reply_text == f"+OK Job-UUID: {JOB_UUID}"
    assert result.result().startswith("UP 0 years, 0 days, 0 hours, 0 minutes, 27 seconds")
    assert wired.delivered == []


async def test_a_job_result_that_overtakes_its_reply_still_finds_its_bgapi() -> None:
    wired = Wired()
    accepted = wired.expect(COMMAND_REPLY)
    result = wired.job(JOB_UUID)
    reply, event = frames("bgapi_status_job_uuid")
    wired.router.route(*event)
    wired.router.route(*reply)
    assert result.result().endswith("Current Stack Size/Max 240K/8192K\n")
    assert accepted.done()


async def test_other_jobs_results_are_dropped_unless_the_user_subscribed_to_them() -> None:
    wired = Wired()
    wired.expect(COMMAND_REPLY)
    wired.router.subscribed(["BACKGROUND_JOB"], ("BACKGROUND_JOB",), by_user=False)
    wired.feed("bgapi_status")  # a job nobody here is waiting for
    assert wired.delivered == []

    wired.expect(COMMAND_REPLY)
    wired.router.subscribed(["BACKGROUND_JOB"], ("BACKGROUND_JOB",), by_user=True)
    wired.feed("bgapi_status")
    [event] = wired.delivered
    assert event.name == "BACKGROUND_JOB" and event["Job-Command"] == "status"


# ----------------------------------------------------------------------------- events


async def test_callcenter_events_are_delivered_decoded_and_in_order() -> None:
    wired = Wired()
    wired.feed(*CC_EVENTS)
    events = wired.delivered
    assert [e["CC-Action"] for e in events] == [
        "agent-add",
        "agent-status-change",
        "agent-status-change",
        "agent-status-change",
        "agent-state-change",
        "agent-contact-change",
    ]
    assert {e.name for e in events} == {"callcenter::info"}
    assert events[3]["CC-Agent-Status"] == "On Break"


async def test_with_a_callback_nothing_is_buffered() -> None:
    seen: list[EslEvent] = []
    wired = Wired(on_event=seen.append)
    wired.feed("event_cc_agent_add")
    assert [e["CC-Action"] for e in seen] == ["agent-add"]
    assert await wired.buffered() == []


async def test_a_raising_callback_is_logged_and_the_next_event_still_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def callback(event: EslEvent) -> None:
        seen.append(event["CC-Action"])
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    wired = Wired(on_event=callback)
    wired.feed("event_cc_agent_add", "event_cc_agent_set_state")
    assert seen == ["agent-add", "agent-state-change"]
    assert "esl on_event callback raised" in caplog.text


async def test_a_full_buffer_drops_and_counts_instead_of_blocking_the_reader(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.esl")
    wired = Wired(buffer=2)
    wired.feed(*CC_EVENTS)
    kept = await wired.buffered()
    assert [e["CC-Action"] for e in kept] == ["agent-add", "agent-status-change"]
    assert wired.events.dropped == 4
    assert caplog.text.count("esl event buffer full") == 1  # the first drop, then every 1000th


async def test_a_closed_buffer_ends_its_readers_and_says_why() -> None:
    events = EventSink(10)
    with pytest.raises(EslTimeout):
        await events.get(0.01)
    events.close()
    assert await events.get(None) is None
    with pytest.raises(EslConnectionError, match="closed for good"):
        await events.next(None, closed="closed for good")


# ----------------------------------------------------------------------------- endings


async def test_a_disconnect_notice_fails_every_waiter_after_the_bye() -> None:
    wired = Wired()
    bye = wired.expect(COMMAND_REPLY)
    stranded = wired.expect(API_RESPONSE)
    job = wired.job("job-in-flight")
    wired.feed("exit")
    assert bye.result().reply_text == "+OK bye"
    assert wired.router.disconnect_notice
    for waiter in (stranded, job, wired.banner):
        with pytest.raises(EslConnectionError, match="sent a disconnect notice: 'Disconnected"):
            waiter.result()


async def test_a_refused_password_is_an_ordinary_reply_then_a_disconnect_notice() -> None:
    """The router does not judge the auth reply: the connection reads ``-ERR invalid``."""
    wired = Wired()
    auth = wired.expect(COMMAND_REPLY)
    wired.feed("connect_banner", "auth_wrong_password")
    assert auth.result().reply_text == "-ERR invalid"
    assert wired.router.disconnect_notice


async def test_a_rude_rejection_fails_the_banner_with_an_auth_error() -> None:
    wired = Wired()
    wired.router.route(
        {"Content-Type": "text/rude-rejection", "Content-Length": "24"},
        b"Access Denied, go away.\n",
    )
    with pytest.raises(EslAuthError, match=r"rejected us \(ACL\): Access Denied, go away\.$"):
        wired.banner.result()


async def test_each_waiter_gets_its_own_copy_of_the_error() -> None:
    wired = Wired()
    waiters = [wired.expect(API_RESPONSE) for _ in range(3)]
    cause = OSError("connection reset")
    reason = EslConnectionError("gone")
    reason.__cause__ = cause
    wired.router.fail_all(reason)
    errors = [w.exception() for w in waiters]
    assert len({id(e) for e in errors}) == 3
    assert all(type(e) is EslConnectionError and str(e) == "gone" for e in errors)
    assert all(e is not None and e.__cause__ is cause for e in errors)


async def test_unknown_content_types_are_ignored() -> None:
    wired = Wired()
    waiting = wired.expect(API_RESPONSE)
    wired.router.route({"Content-Type": "text/event-json", "Content-Length": "2"}, b"{}")
    assert not waiting.done() and wired.delivered == []


# ----------------------------------------------------------------------------- subscriptions


async def test_each_subscription_resends_the_full_set_as_in_the_capture() -> None:
    router = Wired().router
    first = router.subscription_with(("callcenter::info",))
    assert build_event_command(first) + "\n\n" == transcript("event_subscribe_cc")["send"]
    router.subscribed(first, ("callcenter::info",), by_user=True)
    assert not router.receives_jobs
    both = router.subscription_with(("BACKGROUND_JOB",))
    assert build_event_command(both) + "\n\n" == transcript("event_subscribe_bgjob_cc")["send"]
    router.subscribed(both, ("BACKGROUND_JOB",), by_user=False)
    assert router.receives_jobs
    assert router.subscriptions == ("callcenter::info", "BACKGROUND_JOB")

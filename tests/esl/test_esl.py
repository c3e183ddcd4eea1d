"""reconciler.esl against the captured bytes of a real FreeSWITCH, and against the fake.

A scripted server sends transcript ``recv`` bytes verbatim (split into odd chunks) and checks
that the client sends exactly the transcript's ``send`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.switch_args import quote_arg
from reconciler.esl import (
    EslAuthError,
    EslClient,
    EslClientState,
    EslConnection,
    EslConnectionError,
    EslFrameParser,
    EslProtocolError,
    EslTimeout,
    build_event_command,
    parse_event_plain,
)
from tests.fakes.freeswitch import FakeFreeSwitch, separate_blank

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PBX_SHARED_DIR", REPO.parent / "shared"))
ESL_DIR = SHARED / "freeswitch" / "transcripts" / "esl"

needs_transcripts = pytest.mark.skipif(not ESL_DIR.is_dir(), reason=f"no transcripts at {ESL_DIR}")

BANNER = b"Content-Type: auth/request\n\n"
PASSWORD = "S3cret-ClueCon-pw"


@functools.cache
def recv(name: str) -> bytes:
    return json.loads((ESL_DIR / f"{name}.json").read_text())["recv"].encode()


def send(name: str) -> bytes:
    return json.loads((ESL_DIR / f"{name}.json").read_text())["send"].encode()


class Peer:
    """Server side of one accepted socket, driven step by step by the test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.rng = random.Random(7)

    async def expect(self, data: bytes) -> None:
        async with asyncio.timeout(2):
            got = await self.reader.readexactly(len(data))
        assert got == data

    async def command(self) -> bytes:
        async with asyncio.timeout(2):
            return await self.reader.readuntil(b"\n\n")

    async def send(self, data: bytes, *, chunks: str = "random") -> None:
        """Write ``data`` whole, byte by byte, or in random pieces, yielding in between."""
        if chunks == "whole":
            pieces = [data]
        elif chunks == "bytes":
            pieces = [data[i : i + 1] for i in range(len(data))]
        else:
            pieces, pos = [], 0
            while pos < len(data):
                size = self.rng.randint(1, 40)
                pieces.append(data[pos : pos + size])
                pos += size
        for piece in pieces:
            self.writer.write(piece)
            await self.writer.drain()
            await asyncio.sleep(0)

    def close(self) -> None:
        self.writer.close()


class Scripted:
    def __init__(self) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.port = 0

    async def accept(self) -> Peer:
        async with asyncio.timeout(2):
            return await self.peers.get()

    async def connected(self, password: str = PASSWORD) -> tuple[EslConnection, Peer]:
        """Open an EslConnection through the auth_ok transcript."""
        opening = asyncio.create_task(EslConnection.open("127.0.0.1", self.port, password))
        peer = await self.accept()
        await peer.send(BANNER, chunks="bytes")
        await peer.expect(f"auth {password}\n\n".encode())
        await peer.send(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        return await opening, peer


@asynccontextmanager
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()
    done = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await state.peers.put(Peer(reader, writer))
        await done.wait()  # keep the socket alive until the test ends
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        done.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)


async def eventually(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- framing


@needs_transcripts
@given(st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=60))
def test_parser_is_independent_of_chunking(sizes: list[int]) -> None:
    stream = b"".join(
        recv(n)
        for n in (
            "connect_banner",
            "auth_ok",
            "agent_get_status",
            "bgapi_status_job_uuid",
            "event_cc_agent_set_status_on_break",
            "agent_list_two",
            "exit",
        )
    )
    whole = EslFrameParser().feed(stream)
    parser = EslFrameParser()
    frames, pos, i = [], 0, 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        frames += parser.feed(stream[pos : pos + size])
        pos, i = pos + size, i + 1
    assert frames == whole
    assert [h["Content-Type"] for h, _ in whole] == [
        "auth/request",
        "command/reply",
        "api/response",
        "command/reply",
        "text/event-plain",
        "text/event-plain",
        "api/response",
        "command/reply",
        "text/disconnect-notice",
    ]
    assert whole[2][1] == b"Available"


@needs_transcripts
def test_event_values_are_url_decoded() -> None:
    [(_, body)] = EslFrameParser().feed(recv("event_cc_agent_set_status_on_break"))
    event = parse_event_plain(body)
    assert event.name == "callcenter::info"
    assert event["CC-Agent-Status"] == "On Break"
    assert event["CC-Agent"] == "1003@acme.example.com"
    assert event["Event-Date-GMT"] == "Tue, 24 Nov 2026 20:48:12 GMT"
    assert event["FreeSWITCH-IPv6"] == "fd00::2"
    assert event.body == ""
    job = parse_event_plain(EslFrameParser().feed(recv("bgapi_status_job_uuid"))[1][1])
    assert job.name == "BACKGROUND_JOB"
    assert job["Job-UUID"] == "0b1c4f0e-4a4b-4c3e-9a55-3d2f5f1e0001"
    assert len(job.body.encode()) == 369 and job.body.startswith("UP 0 years")


def test_parser_rejects_garbage() -> None:
    with pytest.raises(EslProtocolError):
        EslFrameParser().feed(b"Content-Type: api/response\nContent-Length: lots\n\n")
    with pytest.raises(EslProtocolError):
        EslFrameParser().feed(b"no colon here\n\n")


# ----------------------------------------------------------------------------- one connection


@needs_transcripts
async def test_auth_api_and_close_on_transcript_bytes() -> None:
    async with scripted() as srv:
        conn, peer = await srv.connected()
        call = asyncio.create_task(
            conn.api("callcenter_config agent get status 1001@acme.example.com")
        )
        await peer.expect(send("agent_get_status"))
        await peer.send(recv("agent_get_status"), chunks="bytes")
        assert await call == "Available"  # no newline, no +OK: returned verbatim

        call = asyncio.create_task(conn.api("callcenter_config agent list"))
        await peer.expect(send("agent_list_two"))
        await peer.send(recv("agent_list_two"))
        assert (await call).endswith("|Logged Out|Waiting|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n+OK\n")

        closing = asyncio.create_task(conn.close())
        await peer.expect(send("exit"))
        await peer.send(recv("exit"))
        peer.close()
        await closing
        assert conn.closed
        with pytest.raises(EslConnectionError):
            await conn.api("status")


@needs_transcripts
async def test_wrong_password_and_rude_rejection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with scripted() as srv:
        opening = asyncio.create_task(EslConnection.open("127.0.0.1", srv.port, PASSWORD))
        peer = await srv.accept()
        await peer.send(recv("connect_banner"))
        await peer.expect(f"auth {PASSWORD}\n\n".encode())
        with contextlib.suppress(ConnectionError):  # the client may hang up after "-ERR"
            await peer.send(recv("auth_wrong_password"))
        peer.close()
        with pytest.raises(EslAuthError) as info:
            await opening
        assert "-ERR invalid" in str(info.value)
        assert PASSWORD not in str(info.value)

        opening = asyncio.create_task(EslConnection.open("127.0.0.1", srv.port, PASSWORD))
        peer = await srv.accept()
        await peer.send(
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
        )
        with pytest.raises(EslAuthError, match=r"Access Denied, go away\."):
            await opening
    assert PASSWORD not in caplog.text


async def test_handshake_timeout_and_refused_port() -> None:
    async with scripted() as srv:
        opening = asyncio.create_task(
            EslConnection.open("127.0.0.1", srv.port, PASSWORD, timeout=0.1)
        )
        await srv.accept()  # never sends the banner
        with pytest.raises(EslTimeout):
            await opening
    with pytest.raises(EslConnectionError):
        await EslConnection.open("127.0.0.1", free_port(), PASSWORD, timeout=1)


@needs_transcripts
async def test_bgapi_correlates_job_uuid_from_transcript() -> None:
    async with scripted() as srv:
        conn, peer = await srv.connected()
        # Subscribed like the capture's 2nd socket: callcenter::info first, then bgapi
        # adds BACKGROUND_JOB, producing the transcript's exact command.
        subscribing = asyncio.create_task(conn.subscribe("callcenter::info"))
        await peer.expect(send("event_subscribe_cc"))
        await peer.send(recv("event_subscribe_cc"))
        await subscribing
        job = asyncio.create_task(
            conn.bgapi("status", job_uuid="0b1c4f0e-4a4b-4c3e-9a55-3d2f5f1e0001")
        )
        await peer.expect(send("event_subscribe_bgjob_cc"))
        await peer.send(recv("event_subscribe_bgjob_cc"))
        await peer.expect(send("bgapi_status_job_uuid"))
        await peer.send(recv("bgapi_status_job_uuid"))
        result = await job
        assert result.startswith("UP 0 years, 0 days, 0 hours, 0 minutes, 27 seconds")
        assert result.endswith("Current Stack Size/Max 240K/8192K\n")
        assert conn.subscriptions == ("callcenter::info", "BACKGROUND_JOB")


@needs_transcripts
async def test_bgapi_results_out_of_order_with_events_between() -> None:
    def job_event(job_uuid: str, body: str) -> bytes:
        inner = body.encode()
        payload = (
            f"Event-Name: BACKGROUND_JOB\nJob-UUID: {job_uuid}\nJob-Command: x\n"
            f"Content-Length: {len(inner)}\n\n"
        ).encode() + inner
        head = f"Content-Length: {len(payload)}\nContent-Type: text/event-plain\n\n"
        return head.encode() + payload

    async with scripted() as srv:
        conn, peer = await srv.connected()
        first = asyncio.create_task(conn.bgapi("one", job_uuid="job-1"))
        await peer.command()  # event plain BACKGROUND_JOB
        await peer.send(
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n"
        )
        await peer.expect(b"bgapi one\nJob-UUID: job-1\n\n")
        second = asyncio.create_task(conn.bgapi("two", job_uuid="job-2"))
        await peer.expect(b"bgapi two\nJob-UUID: job-2\n\n")
        for job in ("job-1", "job-2"):
            await peer.send(
                f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\n"
                f"Job-UUID: {job}\n\n".encode()
            )
        await peer.send(
            job_event("job-2", "result two\n")
            + job_event("someone-elses-job", "not ours")
            + recv("event_cc_agent_add")
            + job_event("job-1", "+OK one\n"),
            chunks="whole",
        )
        assert await first == "+OK one\n"
        assert await second == "result two\n"
        event = await conn.next_event(timeout=1)
        assert event["CC-Action"] == "agent-add"  # the foreign job was not delivered
        with pytest.raises(EslTimeout):
            await conn.next_event(timeout=0.05)


@needs_transcripts
async def test_events_are_delivered_decoded() -> None:
    names = [
        "event_cc_agent_add",
        "event_cc_agent_set_status",
        "event_cc_agent_set_status_same",
        "event_cc_agent_set_status_on_break",
        "event_cc_agent_set_state",
        "event_cc_agent_set_contact",
    ]
    async with scripted() as srv:
        conn, peer = await srv.connected()
        subscribing = asyncio.create_task(conn.subscribe("CUSTOM", "callcenter::info"))
        await peer.expect(b"event plain CUSTOM callcenter::info\n\n")
        await peer.send(recv("event_subscribe_cc"))
        await subscribing
        await peer.send(b"".join(recv(n) for n in names))
        peer.close()
        events = [e async for e in conn.events()]  # ends when the socket closes
    assert [e["CC-Action"] for e in events] == [
        "agent-add",
        "agent-status-change",
        "agent-status-change",
        "agent-status-change",
        "agent-state-change",
        "agent-contact-change",
    ]
    assert events[3]["CC-Agent-Status"] == "On Break"
    assert events[5]["CC-Agent-Contact"] == "user/1003@acme.example.com"
    assert {e.name for e in events} == {"callcenter::info"}


def test_event_command_puts_custom_last() -> None:
    assert build_event_command(["callcenter::info", "BACKGROUND_JOB"]) == (
        "event plain BACKGROUND_JOB CUSTOM callcenter::info"
    )
    assert build_event_command(["CUSTOM callcenter::info", "CHANNEL_CREATE"]) == (
        "event plain CHANNEL_CREATE CUSTOM callcenter::info"
    )
    assert build_event_command(["CUSTOM"]) == "event plain CUSTOM"
    with pytest.raises(ValueError):
        build_event_command([])


@needs_transcripts
async def test_disconnect_notice_and_eof_fail_pending_commands() -> None:
    notice = recv("exit").split(b"\n\n", 1)[1]  # the frame after "+OK bye"
    assert notice.startswith(b"Content-Type: text/disconnect-notice\n")
    async with scripted() as srv:
        conn, peer = await srv.connected()
        pending = [asyncio.create_task(conn.api(f"cmd {i}")) for i in range(3)]
        await peer.command()
        await peer.send(notice)  # the socket stays open: no EOF yet
        for task in pending:
            with pytest.raises(EslConnectionError, match="disconnect notice"):
                await task
        assert conn.closed
        with pytest.raises(EslConnectionError):
            await conn.api("status")

        conn, peer = await srv.connected()
        call = asyncio.create_task(conn.api("status"))
        await peer.command()
        peer.close()
        with pytest.raises(EslConnectionError):
            await call
        await asyncio.wait_for(conn.wait_closed(), 1)


async def test_timeout_keeps_replies_in_order() -> None:
    async with scripted() as srv:
        conn, peer = await srv.connected()
        with pytest.raises(EslTimeout):
            await conn.api("slow", timeout=0.05)
        second = asyncio.create_task(conn.api("fast"))
        await peer.expect(b"api slow\n\napi fast\n\n")
        await peer.send(
            b"Content-Type: api/response\nContent-Length: 5\n\nlate\n"
            b"Content-Type: api/response\nContent-Length: 5\n\nfast\n"
        )
        assert await second == "fast\n"  # the late reply went to the abandoned caller


async def test_concurrent_api_calls_are_pipelined_and_matched_in_order() -> None:
    async with scripted() as srv:
        conn, peer = await srv.connected()
        calls = [asyncio.create_task(conn.api(f"echo {i}")) for i in range(200)]
        replies = b""
        for i in range(200):
            assert await peer.command() == f"api echo {i}\n\n".encode()
            body = f"{i}\n".encode()
            replies += b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body)
        await peer.send(replies)
        assert await asyncio.gather(*calls) == [f"{i}\n" for i in range(200)]


async def test_mismatched_and_unsolicited_replies() -> None:
    async with scripted() as srv:
        conn, peer = await srv.connected()
        call = asyncio.create_task(conn.api("status"))
        await peer.command()
        await peer.send(b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
        with pytest.raises(EslProtocolError, match="command not found"):
            await call  # one reply per command: the FIFO stays aligned, the socket stays up
        assert not conn.closed
        await peer.send(b"Content-Type: api/response\nContent-Length: 3\n\n+OK")
        await asyncio.wait_for(conn.wait_closed(), 1)  # a reply nobody asked for: desync
        assert isinstance(conn.close_reason, EslProtocolError)


async def test_commands_cannot_inject_frames() -> None:
    async with scripted() as srv:
        conn, _ = await srv.connected()
        with pytest.raises(ValueError):
            await conn.api("status\n\nexit")
        with pytest.raises(ValueError):
            await conn.bgapi("status\r")
        with pytest.raises(ValueError):
            await EslConnection.open("127.0.0.1", srv.port, "pw\n\napi x")


# ----------------------------------------------------------------------------- against the fake


async def test_connection_against_fake_freeswitch() -> None:
    async with FakeFreeSwitch(password=PASSWORD) as fs:
        async with await EslConnection.open(fs.host, fs.port, PASSWORD) as conn:
            await conn.subscribe("callcenter::info")
            assert await conn.api("callcenter_config agent add a@t1 Callback") == "+OK\n"
            command = "callcenter_config agent set status a@t1 " + quote_arg("On Break")
            assert await conn.api(command) == "+OK\n"
            assert (await conn.next_event(1))["CC-Action"] == "agent-add"
            assert (await conn.next_event(1))["CC-Agent-Status"] == "On Break"
            listing = await conn.bgapi("callcenter_config agent list a@t1")
            assert "a@t1|single_box||Callback||On Break|Waiting|" in listing
            assert fs.agents["a@t1"].status == "On Break"
        assert fs.command_log[-1] == "exit"


async def test_client_reconnects_with_backoff_and_resyncs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="reconciler.esl")
    resyncs: list[EslConnection] = []

    async def on_connect(conn: EslConnection) -> None:
        resyncs.append(conn)
        await conn.api("callcenter_config agent list")

    async with FakeFreeSwitch(password=PASSWORD) as fs:
        client = EslClient(
            fs.host,
            fs.port,
            PASSWORD,
            on_connect=on_connect,
            subscriptions=["callcenter::info"],
            retry_delay=lambda failures: 0.02,
        )
        with pytest.raises(EslConnectionError):
            await client.api("status")  # not started: refuses at once
        async with client:
            await client.wait_connected(2)
            assert client.state is EslClientState.CONNECTED and len(resyncs) == 1
            await fs.run_api("callcenter_config agent add a@t1 Callback")
            assert (await client.next_event(1))["CC-Agent"] == "a@t1"

            fs.drop_connections()
            await eventually(lambda: len(resyncs) == 2)
            assert client.state is EslClientState.CONNECTED
            assert resyncs[1] is not resyncs[0] and resyncs[0].closed
            await fs.run_api("callcenter_config agent set status a@t1 Available")
            event = await client.next_event(1)  # subscriptions were re-established
            assert event["CC-Agent-Status"] == "Available"

            await fs.go_down()
            await eventually(lambda: client.state is not EslClientState.CONNECTED)
            with pytest.raises(EslConnectionError):
                await client.api("status")  # no waiting for a reconnect
            await asyncio.sleep(0.25)  # a few refused attempts
            await fs.go_up()
            await client.wait_connected(2)
            assert len(resyncs) == 3
            assert (await client.api("status")).startswith("UP ")
        assert client.state is EslClientState.CLOSED
        with pytest.raises(EslConnectionError):
            await client.wait_connected(0.1)
        with pytest.raises(EslConnectionError):
            await client.api("status")
        assert fs.command_log.count(f"auth {PASSWORD}") == 3
    assert PASSWORD not in caplog.text
    records = " ".join(str(r.__dict__) for r in caplog.records)
    assert PASSWORD not in records
    assert "esl connect failed" in caplog.text


async def test_client_asks_the_injected_policy_and_logs_an_outage_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client owns no backoff: it passes the consecutive failure count to ``retry_delay``
    and waits what it says. A node that stays down is one warning, not one per probe."""
    asked: list[int] = []

    def retry_delay(failures: int) -> float:
        asked.append(failures)
        return 0.01

    caplog.set_level(logging.DEBUG, logger="reconciler.esl")
    client = EslClient("127.0.0.1", free_port(), PASSWORD, retry_delay=retry_delay)
    async with client:
        await eventually(lambda: len(asked) >= 5)
    assert asked[:5] == [1, 2, 3, 4, 5]
    assert client.state is EslClientState.CLOSED
    assert isinstance(client.last_error, EslConnectionError)
    failed = [r for r in caplog.records if r.getMessage() == "esl connect failed"]
    assert [r.levelno for r in failed[:3]] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


async def test_refused_password_uses_the_auth_policy_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probes: list[int] = []
    refusals: list[int] = []

    def probe(failures: int) -> float:
        probes.append(failures)
        return 0.01

    def auth(count: int) -> float:
        refusals.append(count)
        return 0.01

    caplog.set_level(logging.WARNING, logger="reconciler.esl")
    async with (
        FakeFreeSwitch(password=PASSWORD) as fs,
        EslClient(fs.host, fs.port, "wrong-pw", retry_delay=probe, auth_retry_delay=auth),
    ):
        await eventually(lambda: len(refusals) >= 3)
    assert refusals[:3] == [1, 2, 3] and probes == []
    refused = [r for r in caplog.records if r.getMessage() == "esl authentication refused"]
    assert len(refused) == 1


async def test_connect_factory_opens_the_stream() -> None:
    """Whatever opens the stream (a tunnel, a test double) is injected; ESL runs over it."""
    async with FakeFreeSwitch(password=PASSWORD) as fs:
        opened: list[str] = []

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            opened.append("via factory")
            return await asyncio.open_connection(fs.host, fs.port)

        async with EslClient("unused.invalid", 1, PASSWORD, connect=connect) as client:
            await client.wait_connected(2)
            assert (await client.api("status")).startswith("UP ")
        assert opened == ["via factory"]


async def test_client_on_connect_failure_is_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(conn: EslConnection) -> None:
        raise RuntimeError("resync bug")

    async with (
        FakeFreeSwitch() as fs,
        EslClient(fs.host, fs.port, "ClueCon", on_connect=broken) as client,
    ):
        await client.wait_connected(2)
        assert await client.api("callcenter_config tier list") == "+OK\n"
    assert "esl on_connect hook raised" in caplog.text
    assert "resync bug" in caplog.text


# ----------------------------------------------------------------------------- quote_arg


def test_quote_arg_cases() -> None:
    assert quote_arg("Available") == "Available"
    assert quote_arg("user/1001@acme.example.com") == "user/1001@acme.example.com"
    assert quote_arg("On Break") == "'On Break'"
    assert quote_arg("Available (On Demand)") == "'Available (On Demand)'"
    assert quote_arg("") == "''"
    assert quote_arg("it's") == "it\\'s"
    assert quote_arg("a\\b") == "a\\\\b"
    assert quote_arg("it's on") == "'it\\'s on'"
    for bad in ("a\nb", "a\rb", "a\0b"):
        with pytest.raises(ValueError):
            quote_arg(bad)
    # As in the transcript agent_set_status_on_break:
    command = f"agent set status 1001@acme.example.com {quote_arg('On Break')}"
    assert command == "agent set status 1001@acme.example.com 'On Break'"


@given(
    st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",))),
    st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",))),
)
def test_quote_arg_round_trips_through_the_tokenizer(name: str, value: str) -> None:
    line = f"tier set state {quote_arg(name)} {quote_arg(value)} x"
    assert separate_blank(line) == ["tier", "set", "state", name, value, "x"]

"""The fake FreeSWITCH must answer byte for byte like the captured real one.

Every esl/*.json transcript is replayed against a fresh fake prepared to match its
preconditions (the stateful cc_* → agent_* → queue_* → tier_* → agent_del_* order of NOTES.md
runs on one socket), and the fake's own extras (faults, persistence, xml_curl) are checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from tests.fakes.freeswitch import (
    BANNER,
    CC_USAGE,
    VANILLA_CALLCENTER_QUEUES,
    FakeFreeSwitch,
    RawEsl,
    separate_blank,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PBX_SHARED_DIR", REPO.parent / "shared"))
TRANSCRIPTS = SHARED / "freeswitch" / "transcripts"
ESL_DIR = TRANSCRIPTS / "esl"

pytestmark = pytest.mark.skipif(not ESL_DIR.is_dir(), reason=f"no transcripts at {ESL_DIR}")

NOT_FOUND = (
    '<document type="freeswitch/xml"><section name="result">'
    '<result status="not found"/></section></document>'
)

# One authenticated socket, in an order that recreates each file's preconditions (NOTES.md:
# cc_* -> agent_* -> json_agent_list -> queue_* -> tier_* -> agent_del_*).
MAIN_SEQUENCE = [
    "cc_no_args",
    "cc_single_token",
    "cc_unknown_target",
    "cc_agent_unknown_action",
    "api_unknown_command",
    "agent_list_empty",
    "agent_add_ok",
    "agent_add_exists",
    "agent_add_invalid_type",
    "agent_add_type_lowercase",
    "agent_set_contact",
    "agent_set_status_on_break",
    "agent_set_status_available",
    "agent_set_state_waiting",
    "agent_set_max_no_answer",
    "agent_set_wrap_up_time",
    "agent_set_reject_delay_time",
    "agent_set_busy_delay_time",
    "agent_set_no_answer_delay_time",
    "agent_set_bogus_key",
    "agent_set_state_invalid",
    "agent_set_status_invalid",
    "agent_set_type_invalid",
    "agent_set_status_not_found",
    "agent_get_status",
    "agent_get_state",
    "agent_get_status_not_found",
    "agent_list_two",
    "agent_list_name",
    "json_agent_list",
    "queue_list",
    "queue_count",
    "queue_load_not_found",
    "queue_reload",
    "queue_reload_not_found",
    "queue_unload",
    "queue_unload_missing",
    "queue_list_empty",
    "tier_list_empty",
    "tier_add_ok",  # lazily reloads support@default from the static callcenter.conf
    "tier_add_exists",
    "tier_set_missing_tier",
    "tier_add_second",
    "tier_add_agent_not_found",
    "tier_add_queue_not_found",
    "tier_set_level",
    "tier_set_position",
    "tier_set_state",
    "tier_set_bogus_key",
    "tier_set_state_invalid",
    "tier_set_missing_agent",
    "tier_list_rows",
    "tier_del",
    "tier_del_missing",
    "tier_del_second",
    "agent_del_existing",
    "agent_list_after_del",
    "agent_del_first",
    "agent_del_missing",
]
XMLCURL_SEQUENCE = [
    "xmlcurl_agent_add_1001",
    "xmlcurl_queue_load_ok",
    "xmlcurl_queue_list",
    "xmlcurl_tier_add",
    "xmlcurl_tier_list",
    "xmlcurl_queue_reload_ok",
    "xmlcurl_queue_unload",
    "xmlcurl_tier_set_queue_gone",
    "xmlcurl_tier_list_queue_gone",
    "xmlcurl_tier_del_queue_gone",
]
EVENT_FILES = [
    "event_cc_agent_add",
    "event_cc_agent_set_status",
    "event_cc_agent_set_status_same",
    "event_cc_agent_set_status_on_break",
    "event_cc_agent_set_state",
    "event_cc_agent_set_contact",
]
OTHER_TESTS = {
    "auth_ok": "test_handshake_transcripts",
    "auth_wrong_password": "test_handshake_transcripts",
    "command_before_auth": "test_handshake_transcripts",
    "connect_banner": "test_handshake_transcripts",
    "exit": "test_handshake_transcripts",
    "event_subscribe_cc": "test_callcenter_events_replay",
    "event_subscribe_bgjob_cc": "test_bgapi_replay",
    "bgapi_status_job_uuid": "test_bgapi_replay",
    "_events_per_command": "test_events_per_command",
}
# Replayed, but compared only in part: their bytes vary from run to run.
VARYING = {
    "api_status": "uptime and idle-cpu lines differ on every run (checked line by line)",
    "bgapi_status": "server-chosen Job-UUID, uptime and dates vary (checked structurally)",
}


def load(name: str) -> dict[str, str]:
    return json.loads((ESL_DIR / f"{name}.json").read_text())


def split_frames(data: bytes) -> list[bytes]:
    frames = []
    while data:
        head, sep, rest = data.partition(b"\n\n")
        assert sep, f"truncated frame {data!r}"
        match = re.search(rb"^Content-Length: (\d+)$", head, re.M)
        length = int(match.group(1)) if match else 0
        frames.append(head + sep + rest[:length])
        data = rest[length:]
    return frames


def event_fields(frame: bytes) -> list[tuple[str, str]]:
    """(name, raw value) pairs of an event frame's inner header block."""
    body = frame.partition(b"\n\n")[2].decode()
    head = body.partition("\n\n")[0]
    return [tuple(line.split(": ", 1)) for line in head.split("\n")]  # type: ignore[misc]


def at(fs: FakeFreeSwitch, *, timestamp_us: int, sequence: int, core_uuid: str) -> None:
    """Make the fake's next event/fetch carry these varying values."""
    fs.clock_us = lambda: timestamp_us
    fs.event_sequence = sequence
    fs.core_uuid = core_uuid


class XmlCurlStub:
    """A minimal HTTP/1.1 endpoint in this event loop that records POSTs and answers them."""

    def __init__(self, respond: Callable[[dict[str, str]], str], delay: float = 0.0) -> None:
        self.respond = respond
        self.delay = delay
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> XmlCurlStub:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/freeswitch/xml"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            request_line, *lines = head.strip().split("\r\n")
            method, path, _ = request_line.split(" ")
            headers = dict(line.split(": ", 1) for line in lines)
            body = (await reader.readexactly(int(headers.get("Content-Length", "0")))).decode()
            self.requests.append((method, path, headers, body))
            if self.delay:
                await asyncio.sleep(self.delay)
            payload = self.respond(dict(parse_qsl(body))).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()


def test_every_transcript_has_a_replay() -> None:
    covered = (
        set(MAIN_SEQUENCE) | set(XMLCURL_SEQUENCE) | set(EVENT_FILES) | set(OTHER_TESTS)
    ) | set(VARYING)
    on_disk = {p.stem for p in ESL_DIR.glob("*.json")}
    assert on_disk - covered == set(), "new transcripts need a replay"
    assert covered - on_disk == set()


async def test_main_sequence_replays_byte_for_byte() -> None:
    fs = FakeFreeSwitch(static_queues=VANILLA_CALLCENTER_QUEUES, clock_us=lambda: 1795553272_000000)
    async with fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        for name in MAIN_SEQUENCE:
            t = load(name)
            expected = t["recv"].encode()
            got = await raw.request(t["send"], frames=len(split_frames(expected)))
            assert got == expected, name
        await raw.close()
        assert fs.xml_curl_log == []  # no xml_curl configured: static fallback only


async def test_handshake_transcripts() -> None:
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port)
        assert await raw.read_frame() == load("connect_banner")["recv"].encode() == BANNER
        before = load("command_before_auth")
        assert await raw.request(before["send"]) == before["recv"].encode()
        ok = load("auth_ok")  # the socket stayed open and auth still works
        assert await raw.request(ok["send"]) == ok["recv"].encode()
        bye = load("exit")
        await raw.send(bye["send"])
        assert await raw.read_until_eof() == bye["recv"].encode()

        raw = await RawEsl.connect(fs.host, fs.port)
        await raw.read_frame()
        wrong = load("auth_wrong_password")
        await raw.send(wrong["send"])
        assert await raw.read_until_eof() == wrong["recv"].encode()
        assert fs.connection_count == 0


async def test_callcenter_events_replay() -> None:
    async with FakeFreeSwitch() as fs:
        commands = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        listener = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        sub = load("event_subscribe_cc")
        assert await listener.request(sub["send"]) == sub["recv"].encode()
        for name in EVENT_FILES:
            t = load(name)
            command = re.search(r"sent `(api [^`]+)`", t["notes"]).group(1)  # type: ignore[union-attr]
            expected = t["recv"].encode()
            values = dict(event_fields(expected))
            at(
                fs,
                timestamp_us=int(values["Event-Date-Timestamp"]),
                sequence=int(values["Event-Sequence"]),
                core_uuid=values["Core-UUID"],
            )
            assert await commands.api(command[4:]) == (
                b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
            )
            assert await listener.read_frame() == expected, name


async def test_events_per_command() -> None:
    """Counts from _events_per_command.json; "none" is shown by the next marker event."""
    notes = load("_events_per_command")["notes"]
    counted = re.findall(r"(?:; |: )([a-z].*?) -> (\d) event\(s\)", notes)
    assert len(counted) == 11
    async with FakeFreeSwitch(static_queues=VANILLA_CALLCENTER_QUEUES) as fs:
        fs.add_agent("marker@x")
        commands = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        listener = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        await listener.request("event plain CUSTOM callcenter::info\n\n")
        for command, count in counted:
            await commands.api(f"callcenter_config {command}")
            await commands.api("callcenter_config agent set state marker@x Idle")
            seen = []
            while True:
                agent = dict(event_fields(await listener.read_frame()))["CC-Agent"]
                if agent == "marker%40x":
                    break
                seen.append(agent)
            assert len(seen) == int(count), command


async def test_bgapi_replay() -> None:
    t = load("bgapi_status_job_uuid")
    reply, event = split_frames(t["recv"].encode())
    expected_fields = event_fields(event)
    values = dict(expected_fields)
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        sub = load("event_subscribe_bgjob_cc")
        assert await raw.request(sub["send"]) == sub["recv"].encode()
        at(
            fs,
            timestamp_us=int(values["Event-Date-Timestamp"]),
            sequence=int(values["Event-Sequence"]),
            core_uuid=values["Core-UUID"],
        )
        got_reply, got_event = split_frames(await raw.request(t["send"], frames=2))
        assert got_reply == reply
        # Identical except the status text itself (uptime, idle cpu).
        assert event_fields(got_event)[:-1] == expected_fields[:-1]
        assert expected_fields[-1][0] == "Content-Length"
        inner = got_event.partition(b"\n\n")[2].partition(b"\n\n")[2]
        assert int(event_fields(got_event)[-1][1]) == len(inner)
        assert (
            inner.decode().splitlines()[1:6]
            == (event.partition(b"\n\n")[2].partition(b"\n\n")[2].decode().splitlines()[1:6])
        )

        # bgapi_status: a server-chosen Job-UUID that the reply and the event agree on.
        await raw.send(load("bgapi_status")["send"])
        got_reply, got_event = split_frames(await raw.read_frames(2))
        job = re.search(rb"Job-UUID: ([0-9a-f-]{36})\n\n", got_reply).group(1)  # type: ignore[union-attr]
        assert got_reply == (
            b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: "
            + job
            + b"\nJob-UUID: "
            + job
            + b"\n\n"
        )
        assert dict(event_fields(got_event))["Job-UUID"] == job.decode()


async def test_api_status_shape() -> None:
    expected = load("api_status")["recv"].split("\n\n", 1)[1].splitlines()
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        frame = await raw.api("status")
    head, _, body = frame.decode().partition("\n\n")
    assert head == f"Content-Type: api/response\nContent-Length: {len(body)}"
    lines = body.splitlines()
    assert re.fullmatch(
        r"UP 0 years, 0 days, 0 hours, 0 minutes, \d+ seconds, \d+ milliseconds, "
        r"\d+ microseconds",
        lines[0],
    )
    assert lines[1:6] == expected[1:6]
    assert lines[7] == expected[7]


async def test_xml_curl_transcripts_replay() -> None:
    serving = True
    queue_doc = json.loads(
        (TRANSCRIPTS / "xml_curl" / "07-configuration-queue-load.json").read_text()
    )

    def respond(form: dict[str, str]) -> str:
        if serving and form.get("CC-Queue") == "support@acme.example.com":
            return queue_doc["response_body"]
        return NOT_FOUND

    async with XmlCurlStub(respond) as http:
        fs = FakeFreeSwitch(static_queues=VANILLA_CALLCENTER_QUEUES, xml_curl_url=http.url)
        async with fs:
            raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
            posts = {"xmlcurl_queue_load_ok": "07", "xmlcurl_queue_reload_ok": "08"}
            posts["xmlcurl_tier_set_queue_gone"] = "09"
            for name in XMLCURL_SEQUENCE:
                if name == "xmlcurl_queue_unload":
                    serving = False
                capture = None
                if name in posts:
                    path = next((TRANSCRIPTS / "xml_curl").glob(f"{posts[name]}-*.json"))
                    capture = json.loads(path.read_text())
                    form = dict(parse_qsl(capture["body"]))
                    at(
                        fs,
                        timestamp_us=int(form["Event-Date-Timestamp"]),
                        sequence=int(form["Event-Sequence"]),
                        core_uuid=form["Core-UUID"],
                    )
                before = len(http.requests)
                t = load(name)
                assert await raw.request(t["send"]) == t["recv"].encode(), name
                if capture is None:
                    assert len(http.requests) == before, f"{name} must not fetch"
                    continue
                assert len(http.requests) == before + 1, name
                method, path, headers, body = http.requests[-1]
                assert (method, path, body) == (capture["method"], capture["path"], capture["body"])
                for key in ("User-Agent", "Accept", "Content-Type", "Content-Length"):
                    assert headers[key] == capture["headers"][key], key
                assert "Accept-Encoding" not in headers


async def test_not_found_fetches_match_captures() -> None:
    async with XmlCurlStub(lambda form: NOT_FOUND) as http:
        fs = FakeFreeSwitch(xml_curl_url=http.url)
        async with fs:
            fs.add_agent("1001@acme.example.com")
            raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
            cases = [
                ("queue_load_not_found", "01-configuration-queue-load-notfound.json"),
                ("tier_add_queue_not_found", "03-configuration-tier-add-lazy-queue-load.json"),
            ]
            for name, capture_file in cases:
                capture = json.loads((TRANSCRIPTS / "xml_curl" / capture_file).read_text())
                form = dict(parse_qsl(capture["body"]))
                at(
                    fs,
                    timestamp_us=int(form["Event-Date-Timestamp"]),
                    sequence=int(form["Event-Sequence"]),
                    core_uuid=form["Core-UUID"],
                )
                t = load(name)
                assert await raw.request(t["send"]) == t["recv"].encode()
                assert http.requests[-1][3] == capture["body"]
                assert fs.xml_curl_log[-1].response == NOT_FOUND


# ----------------------------------------------------------------------------- beyond transcripts


def test_tokenizer_follows_switch_separate_string() -> None:
    assert separate_blank("agent set status 1001@t 'On Break'") == [
        "agent",
        "set",
        "status",
        "1001@t",
        "On Break",
    ]
    assert separate_blank("  a   b  ") == ["a", "b"]
    assert separate_blank(r"a\ b c") == [r"a\ b", "c"]  # \<space> shields, is not unescaped
    assert separate_blank(r"x \'y z") == ["x", "'y", "z"]
    assert separate_blank(r"x 'it\'s here'") == ["x", "it's here"]
    assert separate_blank(r"x a\\b a\sb a\qb") == ["x", "a\\b", "a b", r"a\qb"]
    assert separate_blank("x ''") == ["x", ""]
    # At 8 tokens the last one keeps the rest of the line.
    assert separate_blank("1 2 3 4 5 6 7 8 9 10") == ["1", "2", "3", "4", "5", "6", "7", "8 9 10"]


async def test_restart_keeps_agents_and_tiers_drops_queues() -> None:
    async with FakeFreeSwitch(static_queues=VANILLA_CALLCENTER_QUEUES) as fs:
        fs.load_queue("sales@t1", {"strategy": "ring-all"})
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        for command in (
            "agent add a@t1 Callback",
            "agent set status a@t1 Available",
            "agent set state a@t1 Idle",
            "tier add support@default a@t1 3 4",
            "tier set state support@default a@t1 Standby",
        ):
            assert await raw.api(f"callcenter_config {command}") == (
                b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
            )
        port, core = fs.port, fs.core_uuid
        await fs.restart()
        assert (fs.port, fs.restarts) == (port, 1)
        assert fs.core_uuid != core
        assert await raw.read_until_eof() == b""
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        agents = (await raw.api("callcenter_config agent list")).decode()
        assert "a@t1|single_box||Callback||Available|Waiting|" in agents
        tiers = (await raw.api("callcenter_config tier list")).decode()
        assert "support@default|a@t1|Ready|3|4\n" in tiers
        assert set(fs.queues) == {"support@default"}  # sales@t1 was only in memory

        await fs.restart(wipe=True)
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        assert (await raw.api("callcenter_config agent list")).endswith(b"\n\n+OK\n")
        assert fs.agents == {} and fs.tiers == {}


async def test_counts_logs_and_operator_changes() -> None:
    async with FakeFreeSwitch(static_queues=VANILLA_CALLCENTER_QUEUES) as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        await raw.api("callcenter_config agent add b@t1 Callback")
        await raw.api("callcenter_config agent list")
        await raw.api("callcenter_config tier add support@default b@t1")
        await raw.api("callcenter_config queue list")
        await raw.request("bgapi callcenter_config agent del nobody@t1\n\n")
        await raw.api("status")
        assert fs.mutation_count == 3
        assert fs.command_log[0] == "auth ClueCon"
        assert fs.api_log[-1] == "status"
        # An operator at fs_cli: events fire, but it is not our traffic.
        assert await fs.run_api("callcenter_config agent del b@t1") == "+OK\n"
        assert fs.mutation_count == 3 and "b@t1" not in fs.agents
        assert fs.tiers == {}
        fs.add_agent("c@t1", status="On Break")
        frame = await raw.api("callcenter_config agent get status c@t1")
        assert frame.endswith(b"\n\nOn Break")


async def test_reply_delay_slows_replies() -> None:
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        fs.reply_delay = 0.15
        started = time.monotonic()
        await raw.api("callcenter_config agent list")
        assert time.monotonic() - started >= 0.15


async def test_go_down_and_up_on_the_same_port() -> None:
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        port = fs.port
        await fs.go_down()
        assert await raw.read_until_eof() == b""
        with pytest.raises(OSError):
            await RawEsl.connect(fs.host, port)
        await fs.go_up()
        assert fs.port == port
        raw = await RawEsl.connect(fs.host, port, login="ClueCon")
        await fs.wait_for_connections(1)
        fs.drop_connections(notice=True)
        assert (await raw.read_until_eof()).startswith(b"Content-Type: text/disconnect-notice\n")


async def test_rude_rejection() -> None:
    async with FakeFreeSwitch(rude_rejection=True) as fs:
        raw = await RawEsl.connect(fs.host, fs.port)
        assert await raw.read_until_eof() == (
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
            b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
            b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
        )


async def test_xml_curl_fetch_does_not_block_other_connections() -> None:
    doc = (
        '<document type="freeswitch/xml"><section name="configuration">'
        '<configuration name="callcenter.conf"><queues><queue name="q@t1">'
        '<param name="strategy" value="ring-all"/><param name="max-wait-time" value="999999"/>'
        '<param name="tier-rules-apply" value="yes"/></queue></queues>'
        '<agents><agent name="x@t1" type="Callback" status="Available" max-no-answer="2"/>'
        "</agents></configuration></section></document>"
    )
    async with XmlCurlStub(lambda form: doc, delay=0.3) as http:
        fs = FakeFreeSwitch(xml_curl_url=http.url, xml_curl_credentials="fs:secret")
        async with fs:
            slow = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
            fast = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
            load_task = asyncio.create_task(slow.api("callcenter_config queue load q@t1"))
            await asyncio.sleep(0.05)
            await fast.api("callcenter_config agent list")
            assert not load_task.done()  # answered while the other socket waits on xml_curl
            assert (await load_task).endswith(b"+OK\n")
            queue = fs.queues["q@t1"]
            assert (queue.strategy, queue.max_wait_time, queue.tier_rules_apply) == (
                "ring-all",
                86400,
                True,
            )
            # queue load re-imports the document's agents, status included (REFERENCE trap).
            assert fs.agents["x@t1"].status == "Available"
            assert fs.agents["x@t1"].max_no_answer == 2
            assert http.requests[0][2]["Authorization"] == "Basic ZnM6c2VjcmV0"
            assert CC_USAGE.startswith("-USAGE: \n")


async def test_module_absent_and_extra_apis() -> None:
    async with FakeFreeSwitch() as fs:
        raw = await RawEsl.connect(fs.host, fs.port, login="ClueCon")
        fs.callcenter_loaded = False
        assert (await raw.api("callcenter_config agent list")).endswith(
            b"\n\n-ERR callcenter_config Command not found!\n"
        )
        fs.register_api("echo", lambda arg: arg)
        assert (await raw.api("echo hi there")).endswith(b"\n\nhi there")
        assert (await raw.api("echo")).endswith(b"\n\n-ERR no reply\n")

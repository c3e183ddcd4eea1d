"""A fake FreeSWITCH 1.10 Event Socket peer with an in-memory mod_callcenter, for tests and benches.

It speaks the bytes captured from a real switch (shared/freeswitch/transcripts/esl): banner,
auth, ``api``/``bgapi``, ``event plain``, ``exit``, disconnect notices, rude rejections, and the
``callcenter::info`` events. mod_callcenter is modelled on REFERENCE.md and the transcripts:
the blank/quote/backslash tokenizer of ``switch_separate_string``, every reply string,
case-insensitive validation with values stored as typed, agents and tiers that survive a
restart (like the SQLite db) and queues that live in memory only and are (lazily) fetched from
callcenter.conf over xml_curl, POSTed exactly like FreeSWITCH does.

Typical use::

    async with FakeFreeSwitch(xml_curl_url="http://127.0.0.1:8080/xml") as fs:
        conn = await EslConnection.open(fs.host, fs.port, fs.password)
        ...
        fs.drop_connections()            # the network blinks
        await fs.restart(wipe=False)     # the switch restarts: queues gone, agents kept
        fs.remove_agent("1001@t1")       # an operator deletes an agent with fs_cli

The people side (esl/live transcripts): phones registering (``fs.sofia.register``, with the
``sofia::register`` event byte for byte, ``show registrations [as json]``, ``sofia
[xml]status profile P reg``) and callers in queues (``fs.members.enter``/``answer``/``leave``,
``queue list|count members Q`` and the ``callcenter::info`` events of a queue call).

Not modelled (no transcript, or not needed yet): real calls and channels, agent/tier reload,
``filter``/``nixevent``/``sendevent``, event formats other than plain, the module-load fetch
of callcenter.conf. Where the real switch has no defined order (``queue list`` prints queues in
hash order), the fake sorts by name: do not depend on the order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from typing import Any

import aiohttp

# ----------------------------------------------------------------------------- wire constants

DISCONNECT_BODY = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
RUDE_REJECTION_BODY = "Access Denied, go away.\n"
BANNER = b"Content-Type: auth/request\n\n"
VERSION_LINE = (
    "FreeSWITCH (Version 1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit) is ready"
)

_USAGE_FORMS = (
    "agent add [name] [type]",
    "agent del [name]",
    "agent reload [name]",
    "agent set status [agent_name] [status]",
    "agent set state [agent_name] [state]",
    "agent set contact [agent_name] [contact]",
    "agent set ready_time [agent_name] [wait till epoch]",
    "agent set reject_delay_time [agent_name] [wait second]",
    "agent set busy_delay_time [agent_name] [wait second]",
    "agent set no_answer_delay_time [agent_name] [wait second]",
    "agent get status [agent_name]",
    "agent get state [agent_name]",
    "agent get uuid [agent_name]",
    "agent list [[agent_name]]",
    "tier add [queue_name] [agent_name] [[level]] [[position]]",
    "tier set state [queue_name] [agent_name] [state]",
    "tier set level [queue_name] [agent_name] [level]",
    "tier set position [queue_name] [agent_name] [position]",
    "tier del [queue_name] [agent_name]",
    "tier reload [queue_name] [agent_name]",
    "tier list",
    "queue load [queue_name]",
    "queue unload [queue_name]",
    "queue reload [queue_name]",
    "queue list",
    "queue list agents [queue_name] [status] [state]",
    "queue list members [queue_name]",
    "queue list tiers [queue_name]",
    "queue count",
    "queue count agents [queue_name] [status] [state]",
    "queue count members [queue_name]",
    "queue count tiers [queue_name]",
)
CC_USAGE = (
    "-USAGE: \ncallcenter_config <target> <args>,\n"
    + " | \n".join(f"\tcallcenter_config {form}" for form in _USAGE_FORMS)
    + "\n"
)

AGENT_STATUSES = ("Logged Out", "Available", "Available (On Demand)", "On Break")
AGENT_STATES = ("Waiting", "Receiving", "In a queue call", "Idle", "Reserved")
AGENT_TYPES = ("Callback", "uuid-standby")
TIER_STATES = ("No Answer", "Ready", "Offering", "Active Inbound", "Standby")

AGENT_COLUMNS = (
    "name",
    "instance_id",
    "uuid",
    "type",
    "contact",
    "status",
    "state",
    "max_no_answer",
    "wrap_up_time",
    "reject_delay_time",
    "busy_delay_time",
    "no_answer_delay_time",
    "last_bridge_start",
    "last_bridge_end",
    "last_offered_call",
    "last_status_change",
    "no_answer_count",
    "calls_answered",
    "talk_time",
    "ready_time",
    "external_calls_count",
)
TIER_COLUMNS = ("queue", "agent", "state", "level", "position")
QUEUE_COLUMNS = (
    "name",
    "strategy",
    "moh_sound",
    "time_base_score",
    "tier_rules_apply",
    "tier_rule_wait_second",
    "tier_rule_wait_multiply_level",
    "tier_rule_no_agent_no_wait",
    "discard_abandoned_after",
    "abandoned_resume_allowed",
    "max_wait_time",
    "max_wait_time_with_no_agent",
    "max_wait_time_with_no_agent_time_reached",
    "record_template",
    "calls_answered",
    "calls_abandoned",
    "ring_progressively_delay",
    "skip_agents_with_external_calls",
    "agent_no_answer_status",
)
_MUTATING = {
    ("agent", "add"),
    ("agent", "del"),
    ("agent", "set"),
    ("agent", "reload"),
    ("tier", "add"),
    ("tier", "set"),
    ("tier", "del"),
    ("tier", "reload"),
    ("queue", "load"),
    ("queue", "unload"),
    ("queue", "reload"),
}
_NUMERIC_AGENT_KEYS = (
    "max_no_answer",
    "wrap_up_time",
    "ready_time",
    "reject_delay_time",
    "busy_delay_time",
    "no_answer_delay_time",
)

# The vanilla conf/autoload_configs/callcenter.conf.xml queue, as loaded in the transcripts
# (``$${hold_music}`` expanded): pass it as ``static_queues`` to reproduce them.
VANILLA_CALLCENTER_QUEUES: Mapping[str, Mapping[str, str]] = {
    "support@default": {
        "strategy": "longest-idle-agent",
        "moh-sound": "local_stream://moh",
        "time-base-score": "system",
        "max-wait-time": "0",
        "max-wait-time-with-no-agent": "0",
        "max-wait-time-with-no-agent-time-reached": "5",
        "tier-rules-apply": "false",
        "tier-rule-wait-second": "300",
        "tier-rule-wait-multiply-level": "true",
        "tier-rule-no-agent-no-wait": "false",
        "discard-abandoned-after": "60",
        "abandoned-resume-allowed": "false",
    }
}

# switch_url_encode: these, control characters and non-ASCII bytes become %XX; the rest
# (letters, digits, ``,./-_~!$'()*``) is sent as is, hence ``Tue,%2024%20Nov``.
_URL_UNSAFE = frozenset(b'\r\n "#%&+:;<=>?@[\\]^`{|}')
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TRUE_WORDS = frozenset({"yes", "on", "true", "t", "enabled", "active", "allow"})
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def fs_url_encode(value: str) -> str:
    """Percent-encode like switch_url_encode (event header values, xml_curl POST fields)."""
    out = []
    for byte in value.encode("utf-8"):
        if byte < 0x20 or byte > 0x7E or byte in _URL_UNSAFE:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def _cleanup_token(token: str) -> str:
    """Second pass of switch_separate_string: drop quotes, resolve escapes, trim blanks."""
    pos = 0
    while pos < len(token) and token[pos] == " ":
        pos += 1
    out: list[str] = []
    end: int | None = None
    inside = False
    while pos < len(token):
        char = token[pos]
        escaped = False
        if char == "\\":
            nxt = token[pos + 1] if pos + 1 < len(token) else ""
            if nxt in ("'", '"', "\\") and nxt:
                out.append(nxt)
                escaped = True
            elif nxt in _UNESCAPE:
                out.append(_UNESCAPE[nxt])
                escaped = True
            if escaped:
                pos += 1
                end = len(out)
        if not escaped:
            if char == "'" and (inside or "'" in token[pos + 1 :]):
                inside = not inside
                if inside:
                    end = len(out)
            else:
                out.append(char)
                if char != " " or inside:
                    end = len(out)
        pos += 1
    return "".join(out[:end]) if end is not None else ""


def separate_blank(text: str, max_tokens: int = 8) -> list[str]:
    """Split like switch_separate_string(buf, ' ', argv, max_tokens).

    First pass: blanks outside single quotes separate tokens, a backslash shields the next
    character, runs of blanks collapse; once ``max_tokens`` is reached the last token keeps the
    rest of the line. Second pass: :func:`_cleanup_token` on each token.
    """
    starts: list[int] = []
    ends: list[int | None] = []
    pos, size = 0, len(text)
    state = "start"
    inside = False
    while pos < size:
        if state == "start":
            starts.append(pos)
            ends.append(None)
            state = "skip_initial"
            if len(starts) >= max_tokens:
                break  # the last slot keeps the rest of the line, blanks and all
        elif state == "skip_initial":
            if text[pos] == " ":
                pos += 1
            else:
                state = "find"
        elif state == "find":
            char = text[pos]
            if char == "\\":
                pos += 1
            elif char == "'":
                inside = not inside
            elif char == " " and not inside:
                ends[-1] = pos
                state = "skip_end"
            pos += 1
        else:  # skip_end
            if text[pos] == " ":
                pos += 1
            else:
                state = "start"
    return [
        _cleanup_token(text[s : e if e is not None else size])
        for s, e in zip(starts, ends, strict=True)
    ]


def _atoi(value: str) -> int:
    match = re.match(r"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else 0


def _switch_true(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE_WORDS:
        return True
    try:
        return int(text) != 0
    except ValueError:
        return False


def _canonical(value: str, allowed: Iterable[str]) -> str | None:
    """The allowed spelling matching ``value`` case-insensitively (validation only)."""
    lowered = value.lower()
    return next((a for a in allowed if a.lower() == lowered), None)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table(columns: Iterable[str], rows: list[list[object]]) -> str:
    """mod_callcenter's list output: header + rows, ``|``-separated; nothing if no rows."""
    if not rows:
        return ""
    lines = ["|".join(columns)] + ["|".join(_cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- state


@dataclass
class FakeAgent:
    """One row of mod_callcenter's ``agents`` table (None prints as an empty field)."""

    name: str
    type: str = "Callback"
    instance_id: str = "single_box"
    uuid: str | None = None
    contact: str | None = None
    status: str = "Logged Out"
    state: str = "Waiting"
    max_no_answer: int = 0
    wrap_up_time: int = 0
    reject_delay_time: int = 0
    busy_delay_time: int = 0
    no_answer_delay_time: int = 0
    last_bridge_start: int = 0
    last_bridge_end: int = 0
    last_offered_call: int = 0
    last_status_change: int = 0
    no_answer_count: int = 0
    calls_answered: int = 0
    talk_time: int = 0
    ready_time: int = 0
    external_calls_count: int = 0

    def row(self) -> list[object]:
        return [getattr(self, c) for c in AGENT_COLUMNS]


@dataclass
class FakeTier:
    queue: str
    agent: str
    state: str = "Ready"
    level: int = 1
    position: int = 1

    def row(self) -> list[object]:
        return [getattr(self, c) for c in TIER_COLUMNS]


@dataclass
class FakeQueue:
    """A queue in mod_callcenter's memory; fields are the ``queue list`` columns."""

    name: str
    strategy: str = "longest-idle-agent"
    moh_sound: str | None = None
    time_base_score: str = "queue"
    tier_rules_apply: bool = False
    tier_rule_wait_second: int = 0
    tier_rule_wait_multiply_level: bool = False
    tier_rule_no_agent_no_wait: bool = True
    discard_abandoned_after: int = 60
    abandoned_resume_allowed: bool = False
    max_wait_time: int = 0
    max_wait_time_with_no_agent: int = 0
    max_wait_time_with_no_agent_time_reached: int = 5
    record_template: str | None = None
    calls_answered: int = 0
    calls_abandoned: int = 0
    ring_progressively_delay: int = 0
    skip_agents_with_external_calls: bool = True
    agent_no_answer_status: str = "On Break"
    announce_sound: str | None = None
    announce_frequency: int = 0
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, str]) -> FakeQueue:
        """Build from ``<param name="dash-name" value=...>`` pairs; unknown params ignored."""
        queue = cls(name=name, params=dict(params))
        kinds = {f.name: f.type for f in fields(cls)}
        for raw_key, value in params.items():
            key = raw_key.replace("-", "_")
            if key in ("name", "params", "calls_answered", "calls_abandoned") or key not in kinds:
                continue
            kind = kinds[key]
            if kind == "bool":
                setattr(queue, key, _switch_true(value))
            elif kind == "int":
                setattr(queue, key, min(max(_atoi(value), 0), 86400))
            else:
                setattr(queue, key, value)
        return queue

    def row(self) -> list[object]:
        return [getattr(self, c) for c in QUEUE_COLUMNS]


@dataclass
class XmlCurlRequest:
    """One callcenter.conf fetch the fake made, with what came back."""

    queue: str
    body: str
    headers: dict[str, str]
    status: int | None = None
    response: str | None = None
    error: str | None = None


@dataclass(eq=False)
class _Listener:
    """One accepted ESL socket."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    authed: bool = False
    all_events: bool = False
    events: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)

    def wants(self, name: str, subclass: str | None) -> bool:
        if not self.authed:
            return False
        if self.all_events:
            return True
        if name == "CUSTOM":
            return "CUSTOM" in self.events and (not self.subclasses or subclass in self.subclasses)
        return name in self.events

    def write(self, data: bytes) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(data)


def _reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def _api_response(body: str) -> bytes:
    data = body.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def _disconnect_notice() -> bytes:
    data = DISCONNECT_BODY.encode()
    return f"Content-Type: text/disconnect-notice\nContent-Length: {len(data)}\n\n".encode() + data


def serialize_event(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """A ``text/event-plain`` frame: url-encoded header lines, then an optional inner body."""
    payload = "".join(f"{name}: {fs_url_encode(value)}\n" for name, value in headers).encode()
    if body is not None:
        data = body.encode("utf-8")
        payload += f"Content-Length: {len(data)}\n\n".encode() + data
    else:
        payload += b"\n"
    head = f"Content-Length: {len(payload)}\nContent-Type: text/event-plain\n\n"
    return head.encode() + payload


ApiHandler = Callable[[str], "str | Awaitable[str]"]
_Event = tuple[str, str | None, list[tuple[str, str]], str | None]


# ----------------------------------------------------------------------------- the fake switch


class FakeFreeSwitch:
    """An ESL server on 127.0.0.1 that behaves like FreeSWITCH 1.10 with mod_callcenter.

    Tests steer it through plain attributes (``reply_delay``, ``rude_rejection``, ``agents``,
    ``tiers``, ``queues``, ``static_queues``, ``callcenter_loaded``) and the fault helpers
    (:meth:`drop_connections`, :meth:`go_down`, :meth:`go_up`, :meth:`restart`), and observe it
    through ``command_log``, ``api_log``, ``mutation_count`` and ``xml_curl_log``.
    """

    def __init__(
        self,
        *,
        password: str = "ClueCon",
        host: str = "127.0.0.1",
        port: int = 0,
        xml_curl_url: str | None = None,
        xml_curl_credentials: str | None = None,
        xml_curl_timeout: float = 10.0,
        static_queues: Mapping[str, Mapping[str, str]] | None = None,
        switchname: str = "fs1",
        hostname: str = "fs1.example.net",
        ipv4: str = "192.0.2.2",
        ipv6: str = "fd00::2",
        core_uuid: str | None = None,
        clock_us: Callable[[], int] | None = None,
        tz: tzinfo = UTC,
        rude_rejection: bool = False,
    ) -> None:
        self.password = password
        self.host = host
        self.port = port
        self.xml_curl_url = xml_curl_url
        self.xml_curl_credentials = xml_curl_credentials
        self.xml_curl_timeout = xml_curl_timeout
        self.static_queues: dict[str, Mapping[str, str]] = dict(static_queues or {})
        self.switchname = switchname
        self.hostname = hostname
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.core_uuid = core_uuid or str(uuid.uuid4())
        self.clock_us: Callable[[], int] = clock_us or (lambda: time.time_ns() // 1000)
        self.tz = tz
        self.rude_rejection = rude_rejection
        self.reply_delay = 0.0
        self.callcenter_loaded = True
        self.event_sequence = 1
        # mod_callcenter state: agents/tiers persist like callcenter.db, queues do not.
        self.agents: dict[str, FakeAgent] = {}
        self.tiers: dict[tuple[str, str], FakeTier] = {}
        self.queues: dict[str, FakeQueue] = {}
        # the people side: phones registered with sofia, callers in queues
        self.sofia = FakeSofia(self)
        self.members = FakeMembers(self)
        # observation
        self.command_log: list[str] = []
        self.api_log: list[str] = []
        self.mutation_count = 0
        self.xml_curl_log: list[XmlCurlRequest] = []
        self.restarts = 0
        self._apis: dict[str, ApiHandler] = {}
        self._listeners: set[_Listener] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._queue_lock: asyncio.Lock | None = None
        self._started_mono = time.monotonic()
        self._auth_changed = asyncio.Event()
        self._load_static_queues()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeFreeSwitch:
        """Listen on ``host:port`` (a free port when 0; then kept across go_down/go_up)."""
        self._queue_lock = asyncio.Lock()
        await self.go_up()
        return self

    async def stop(self) -> None:
        """Stop listening, drop every socket, cancel background work."""
        await self.go_down()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> FakeFreeSwitch:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def go_up(self) -> None:
        """Listen again, on the same port as before (the switch process came back)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def go_down(self) -> None:
        """Stop listening and drop every connection without a goodbye (crash, partition)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self.drop_connections()
        await asyncio.sleep(0)

    async def restart(self, *, wipe: bool = False, down_for: float = 0.0) -> None:
        """Restart FreeSWITCH: sockets drop, queues vanish, a new Core-UUID.

        ``wipe=False`` keeps callcenter.db: agents return with state Waiting and their status
        kept, tiers with state Ready. ``wipe=True`` is a fresh database. The static
        callcenter.conf queues are loaded again, as at module load.
        """
        await self.go_down()
        self.queues.clear()
        self.sofia.registrations.clear()
        self.members.members.clear()
        if wipe:
            self.agents.clear()
            self.tiers.clear()
        else:
            for agent in self.agents.values():
                agent.state = "Waiting"
            for tier in self.tiers.values():
                tier.state = "Ready"
        self.core_uuid = str(uuid.uuid4())
        self._started_mono = time.monotonic()
        self.restarts += 1
        self._load_static_queues()
        if down_for:
            await asyncio.sleep(down_for)
        await self.go_up()

    def drop_connections(self, *, notice: bool = False) -> None:
        """Cut every ESL socket now; with ``notice`` send the disconnect notice first."""
        for listener in list(self._listeners):
            if notice:
                listener.write(_disconnect_notice())
            listener.writer.transport.abort()
        self._listeners.clear()

    @property
    def connection_count(self) -> int:
        return len(self._listeners)

    @property
    def authenticated_count(self) -> int:
        return sum(1 for listener in self._listeners if listener.authed)

    async def wait_for_connections(self, count: int, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Wait until at least ``count`` sockets have authenticated."""
        async with asyncio.timeout(timeout):
            while self.authenticated_count < count:
                self._auth_changed.clear()
                await self._auth_changed.wait()

    def reset_logs(self) -> None:
        self.command_log.clear()
        self.api_log.clear()
        self.xml_curl_log.clear()
        self.mutation_count = 0

    # ------------------------------------------------------------------ state helpers

    def add_agent(self, name: str, type: str = "Callback", **values: Any) -> FakeAgent:
        """Insert an agent directly (no event), like a row written by another tool."""
        agent = FakeAgent(name=name, type=type, **values)
        self.agents[name] = agent
        return agent

    def remove_agent(self, name: str) -> None:
        """Delete an agent and its tiers directly (no event), like ``agent del`` from fs_cli."""
        self.agents.pop(name, None)
        for key in [k for k in self.tiers if k[1] == name]:
            del self.tiers[key]

    def add_tier(self, queue: str, agent: str, **values: Any) -> FakeTier:
        tier = FakeTier(queue=queue, agent=agent, **values)
        self.tiers[(queue, agent)] = tier
        return tier

    def remove_tier(self, queue: str, agent: str) -> None:
        self.tiers.pop((queue, agent), None)

    def set_tier(self, queue: str, agent: str, **values: Any) -> FakeTier:
        tier = self.tiers[(queue, agent)]
        for key, value in values.items():
            setattr(tier, key, value)
        return tier

    def load_queue(self, name: str, params: Mapping[str, str] | None = None) -> FakeQueue:
        """Put a queue in memory directly, as if ``queue load`` had fetched ``params``."""
        queue = FakeQueue.from_params(name, params or {})
        self.queues[name] = queue
        return queue

    def register_api(self, name: str, handler: ApiHandler) -> None:
        """Add an ``api`` command (handler gets the argument string, returns the body)."""
        self._apis[name] = handler

    def unregister_api(self, name: str) -> None:
        self._apis.pop(name, None)

    async def run_api(self, command: str) -> str:
        """Run an api command as an operator at fs_cli would: events fire, nothing is logged."""
        events: list[_Event] = []
        result = await self._run_api(command, events, from_esl=False)
        self._flush_events(events)
        return result

    def emit_event(
        self,
        name: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        subclass: str | None = None,
        body: str | None = None,
        calling: tuple[str, str, int] = ("fake_freeswitch.py", "emit_event", 1),
    ) -> None:
        """Send an event to every subscribed socket (standard headers first, then ``headers``)."""
        self._flush_events(
            [(name, subclass, [*self._std_headers(name, subclass, *calling), *headers], body)]
        )

    # ------------------------------------------------------------------ ESL server

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task (not asyncio's callback task) so that stop() can cancel it quietly.
        self._spawn(self._serve(reader, writer), "fake-fs-session")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = _Listener(reader, writer)
        self._listeners.add(listener)
        try:
            if self.rude_rejection:
                data = RUDE_REJECTION_BODY.encode()
                head = f"Content-Type: text/rude-rejection\nContent-Length: {len(data)}\n\n"
                listener.write(head.encode() + data + _disconnect_notice())
                await writer.drain()
                return
            listener.write(BANNER)
            while True:
                try:
                    block = await reader.readuntil(b"\n\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = [ln.rstrip("\r") for ln in block.decode("utf-8", "replace").split("\n")]
                lines = [ln for ln in lines if ln]
                if not lines:
                    continue
                command, headers = lines[0], {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip()] = value.strip()
                if "Content-Length" in headers:
                    await reader.readexactly(_atoi(headers["Content-Length"]))
                self.command_log.append(command)
                if not await self._command(listener, command, headers):
                    return
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            return
        finally:
            self._listeners.discard(listener)
            if not writer.transport.is_closing():
                writer.close()  # FIN after what was written (drop_connections aborts instead)

    async def _command(self, listener: _Listener, command: str, headers: dict[str, str]) -> bool:
        """Handle one command; False when the socket must close."""
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        lowered = command.lower()
        if lowered.startswith(("exit", "...")):
            listener.write(_reply("+OK bye") + _disconnect_notice())
            await listener.writer.drain()
            return False
        if not listener.authed:
            if lowered.startswith("auth "):
                if command[5:] == self.password:
                    listener.authed = True
                    self._auth_changed.set()
                    listener.write(_reply("+OK accepted"))
                    return True
                listener.write(_reply("-ERR invalid") + _disconnect_notice())
                await listener.writer.drain()
                return False
            listener.write(_reply("-ERR command not found"))
            return True
        if lowered.startswith("api "):
            text = command[4:]
            self.api_log.append(text)
            events: list[_Event] = []
            result = await self._run_api(text, events, from_esl=True)
            listener.write(_api_response(result))
            self._flush_events(events)
        elif lowered.startswith("bgapi "):
            text = command[6:]
            self.api_log.append(text)
            job_uuid = headers.get("Job-UUID") or str(uuid.uuid4())
            listener.write(
                f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job_uuid}\n"
                f"Job-UUID: {job_uuid}\n\n".encode()
            )
            self._spawn(self._background_job(text, job_uuid), f"fake-fs-bgjob-{job_uuid}")
        elif lowered.startswith("event "):
            listener.write(_reply(self._subscribe(listener, command[6:].split())))
        elif lowered.startswith("noevents"):
            listener.all_events = False
            listener.events.clear()
            listener.subclasses.clear()
            listener.write(_reply("+OK no longer listening for events"))
        else:
            listener.write(_reply("-ERR command not found"))
        return True

    @staticmethod
    def _subscribe(listener: _Listener, words: list[str]) -> str:
        fmt = "plain"
        if words and words[0].lower() in ("plain", "xml", "json"):
            fmt = words.pop(0).lower()
        if fmt != "plain":
            return f"-ERR the fake only speaks plain events, not {fmt}"
        keys = 0
        custom = False
        for word in words:
            if custom:
                listener.subclasses.add(word)
            elif word == "ALL":
                listener.all_events = True
                keys += 1
            elif re.fullmatch(r"[A-Z][A-Z0-9_]*", word):
                listener.events.add(word)
                keys += 1
                custom = word == "CUSTOM"
        if not keys:
            return "-ERR no keywords supplied"
        return f"+OK event listener enabled {fmt}"

    async def _background_job(self, text: str, job_uuid: str) -> None:
        events: list[_Event] = []
        result = await self._run_api(text, events, from_esl=True)
        cmd, _, arg = text.partition(" ")
        headers = [
            *self._std_headers("BACKGROUND_JOB", None, "mod_event_socket.c", "api_exec", 1572),
            ("Job-UUID", job_uuid),
            ("Job-Command", cmd),
        ]
        if arg:
            headers.append(("Job-Command-Arg", arg))
        events.append(("BACKGROUND_JOB", None, headers, result))
        self._flush_events(events)

    def _flush_events(self, events: list[_Event]) -> None:
        for name, subclass, headers, body in events:
            frame = serialize_event(headers, body)
            for listener in list(self._listeners):
                if listener.wants(name, subclass):
                    listener.write(frame)

    # ------------------------------------------------------------------ event headers

    def _next_sequence(self) -> int:
        seq = self.event_sequence
        self.event_sequence += 1
        return seq

    def _std_headers(
        self, name: str, subclass: str | None, file: str, function: str, line: int
    ) -> list[tuple[str, str]]:
        """The headers every FreeSWITCH event starts with, in the order the switch sends them."""
        now_us = self.clock_us()
        seconds = now_us // 1_000_000
        local = datetime.fromtimestamp(seconds, self.tz)
        gmt = datetime.fromtimestamp(seconds, UTC)
        headers = [("Event-Subclass", subclass)] if subclass else []
        headers += [
            ("Event-Name", name),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.switchname),
            ("FreeSWITCH-IPv4", self.ipv4),
            ("FreeSWITCH-IPv6", self.ipv6),
            ("Event-Date-Local", local.strftime("%Y-%m-%d %H:%M:%S")),
            (
                "Event-Date-GMT",
                f"{_WEEKDAYS[gmt.weekday()]}, {gmt.day:02d} {_MONTHS[gmt.month - 1]} "
                f"{gmt.year:04d} {gmt:%H:%M:%S} GMT",
            ),
            ("Event-Date-Timestamp", str(now_us)),
            ("Event-Calling-File", file),
            ("Event-Calling-Function", function),
            ("Event-Calling-Line-Number", str(line)),
            ("Event-Sequence", str(self._next_sequence())),
        ]
        return headers

    def _cc_event(
        self, events: list[_Event], function: str, line: int, extra: list[tuple[str, str]]
    ) -> None:
        headers = self._std_headers(
            "CUSTOM", "callcenter::info", "mod_callcenter.c", function, line
        )
        events.append(("CUSTOM", "callcenter::info", headers + extra, None))

    # ------------------------------------------------------------------ api commands

    async def _run_api(self, text: str, events: list[_Event], *, from_esl: bool) -> str:
        cmd, _, arg = text.partition(" ")
        if cmd == "callcenter_config" and self.callcenter_loaded:
            result = await self._callcenter_config(arg, events, from_esl=from_esl)
        elif cmd == "json":
            result = await self._json_api(arg, events)
        elif cmd == "status":
            result = self._status_text()
        elif cmd in ("show", "sofia"):
            result = self.sofia.api(cmd, arg)
        elif cmd in self._apis:
            outcome = self._apis[cmd](arg)
            result = await outcome if not isinstance(outcome, str) else outcome
        else:
            return f"-ERR {cmd} Command not found!\n"
        return result or "-ERR no reply\n"

    def _status_text(self) -> str:
        up_us = int((time.monotonic() - self._started_mono) * 1_000_000)
        seconds, micro = divmod(up_us, 1_000_000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        years, days = divmod(days, 365)
        return (
            f"UP {years} years, {days} days, {hours} hours, {minutes} minutes, {seconds} seconds, "
            f"{micro // 1000} milliseconds, {micro % 1000} microseconds\n"
            f"{VERSION_LINE}\n"
            "0 session(s) since startup\n"
            "0 session(s) - peak 0, last 5min 0 \n"
            "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
            "1000 session(s) max\n"
            "min idle cpu 0.00/99.93\n"
            "Current Stack Size/Max 240K/8192K\n"
        )

    async def _json_api(self, arg: str, events: list[_Event]) -> str:
        """``json {"command":"callcenter_config","data":{"arguments":"agent list"}}``.

        Only ``agent list`` is backed by a transcript (NULL columns are left out).
        """
        try:
            request = json.loads(arg)
            arguments = request["data"]["arguments"]
        except (ValueError, KeyError, TypeError):
            return '{"status":"error","message":"parse error"}\n'
        if request.get("command") != "callcenter_config" or arguments.split() != ["agent", "list"]:
            response = {**request, "status": "error", "message": "not modelled by the fake"}
        else:
            rows = [
                {c: _cell(v) for c, v in zip(AGENT_COLUMNS, a.row(), strict=True) if v is not None}
                for a in self.agents.values()
            ]
            response = {**request, "status": "success", "response": rows}
        return json.dumps(response, separators=(",", ":"), ensure_ascii=False) + "\n"

    # ------------------------------------------------------------------ mod_callcenter

    async def _callcenter_config(self, arg: str, events: list[_Event], *, from_esl: bool) -> str:
        if not arg:
            return CC_USAGE
        argv = separate_blank(arg, 8)
        if len(argv) < 2:
            return "-ERR Invalid!\n"
        section, action = argv[0].lower(), argv[1].lower()
        if from_esl and (section, action) in _MUTATING:
            self.mutation_count += 1
        args = argv[2:]
        handler = {"agent": self._cc_agent, "tier": self._cc_tier, "queue": self._cc_queue}.get(
            section
        )
        if handler is None:
            return ""
        return await handler(action, args, events)

    async def _cc_agent(self, action: str, args: list[str], events: list[_Event]) -> str:
        if action == "add":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            name, agent_type = args[0], args[1]
            if name in self.agents:
                return "-ERR Agent already exist!\n"
            if _canonical(agent_type, AGENT_TYPES) is None:
                return "-ERR Agent type invalid!\n"
            self.agents[name] = FakeAgent(name=name, type=agent_type)
            self._cc_event(
                events,
                "cc_agent_add",
                915,
                [("CC-Agent", name), ("CC-Agent-Type", agent_type), ("CC-Action", "agent-add")],
            )
            return "+OK\n"
        if action == "del":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            self.remove_agent(args[0])
            return "+OK\n"
        if action == "reload":
            return "-ERR Invalid!\n" if len(args) < 1 else "+OK\n"
        if action == "set":
            if len(args) < 3:
                return "-ERR Invalid!\n"
            return self._agent_update(args[0], args[1], args[2], events)
        if action == "get":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            key, name = args[0].lower(), args[1]
            agent = self.agents.get(name)
            if agent is None:
                return "-ERR Agent not found!\n"
            if key not in ("status", "state", "uuid"):
                return "-ERR Invalid Agent Update KEY!\n"
            return getattr(agent, key) or ""
        if action == "list":
            agents = [a for a in self.agents.values() if not args or a.name == args[0]]
            return _table(AGENT_COLUMNS, [a.row() for a in agents]) + "+OK\n"
        return ""

    def _agent_update(self, key: str, name: str, value: str, events: list[_Event]) -> str:
        agent = self.agents.get(name)
        if agent is None:
            return "-ERR Agent not found!\n"
        key = key.lower()
        if key == "status":
            if _canonical(value, AGENT_STATUSES) is None:
                return "-ERR Invalid Agent Status!\n"
            if value.lower() == "available" and agent.status != value:
                agent.talk_time = agent.calls_answered = agent.no_answer_count = 0
            agent.status = value
            agent.last_status_change = self.clock_us() // 1_000_000
            self._cc_event(
                events,
                "cc_agent_update",
                1043,
                [
                    ("CC-Agent", name),
                    ("CC-Action", "agent-status-change"),
                    ("CC-Agent-Status", value),
                ],
            )
        elif key in ("state", "state_if_waiting"):
            if _canonical(value, AGENT_STATES) is None:
                return "-ERR Invalid Agent State!\n"
            if key == "state_if_waiting" and agent.state != "Waiting":
                return "+OK\n"
            agent.state = value
            self._cc_event(
                events,
                "cc_agent_update",
                1067,
                [
                    ("CC-Agent", name),
                    ("CC-Action", "agent-state-change"),
                    ("CC-Agent-State", value),
                ],
            )
        elif key == "contact":
            agent.contact = value
            self._cc_event(
                events,
                "cc_agent_update",
                1091,
                [
                    ("CC-Agent", name),
                    ("CC-Action", "agent-contact-change"),
                    ("CC-Agent-Contact", value),
                ],
            )
        elif key == "type":
            if _canonical(value, AGENT_TYPES) is None:
                return "-ERR Invalid Agent Type!\n"
            agent.type = value
        elif key == "uuid":
            agent.uuid = value
        elif key in _NUMERIC_AGENT_KEYS:
            setattr(agent, key, _atoi(value))
        else:
            return "-ERR Invalid Agent Update KEY!\n"
        return "+OK\n"

    async def _cc_tier(self, action: str, args: list[str], events: list[_Event]) -> str:
        if action == "add":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            queue_name, agent_name = args[0], args[1]
            if await self._get_queue(queue_name) is None:
                return "-ERR Queue not found!\n"
            if agent_name not in self.agents:
                return "-ERR Agent not found!\n"
            if (queue_name, agent_name) in self.tiers:
                return "-ERR Tier already exist!\n"
            level = _atoi(args[2]) if len(args) > 2 else 1
            position = _atoi(args[3]) if len(args) > 3 else 1
            self.tiers[(queue_name, agent_name)] = FakeTier(
                queue_name, agent_name, "Ready", level, position
            )
            return "+OK\n"
        if action == "set":
            if len(args) < 4:
                return "-ERR Invalid!\n"
            key, queue_name, agent_name, value = args[0].lower(), args[1], args[2], args[3]
            tier = self.tiers.get((queue_name, agent_name))
            if tier is None or agent_name not in self.agents:
                return "-ERR Unknown Error!\n"
            if await self._get_queue(queue_name) is None:
                return "-ERR Agent not found!\n"
            if key == "state":
                if _canonical(value, TIER_STATES) is None:
                    return "-ERR Invalid Tier State!\n"
                tier.state = value
            elif key in ("level", "position"):
                setattr(tier, key, _atoi(value))
            else:
                return "-ERR Invalid Tier Update KEY!\n"
            return "+OK\n"
        if action == "del":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            self.tiers.pop((args[0], args[1]), None)
            return "+OK\n"
        if action == "reload":
            return "-ERR Invalid!\n" if len(args) < 2 else "+OK\n"
        if action == "list":
            return _table(TIER_COLUMNS, [t.row() for t in self._sorted_tiers()]) + "+OK\n"
        return ""

    def _sorted_tiers(self, queue: str | None = None) -> list[FakeTier]:
        tiers = [t for t in self.tiers.values() if queue is None or t.queue == queue]
        return sorted(tiers, key=lambda t: (t.level, t.position))  # stable: insertion order

    async def _cc_queue(self, action: str, args: list[str], events: list[_Event]) -> str:
        if action == "load":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            found = await self._get_queue(args[0])
            return "+OK\n" if found else "-ERR Invalid Queue not found!\n"
        if action == "unload":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            self.queues.pop(args[0], None)
            return "+OK\n"
        if action == "reload":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            self.queues.pop(args[0], None)
            found = await self._get_queue(args[0])
            return "+OK\n" if found else "-ERR Invalid Queue not found!\n"
        if action in ("list", "count"):
            if not args:
                if action == "count":
                    return f"{len(self.queues)}\n"
                header = "|".join(QUEUE_COLUMNS) + "\n"
                rows = "".join(
                    "|".join(_cell(v) for v in self.queues[name].row()) + "\n"
                    for name in sorted(self.queues)
                )
                return header + rows + "+OK\n"
            what = args[0].lower()
            if len(args) < 2 or what not in ("agents", "members", "tiers"):
                return "-ERR Invalid!\n"
            queue_name = args[1]
            if what == "tiers":  # insertion order, not sorted (cc_queue_list_tiers)
                tiers = [t for t in self.tiers.values() if t.queue == queue_name]
                if action == "count":
                    return f"{len(tiers)}\n"
                return _table(TIER_COLUMNS, [t.row() for t in tiers]) + "+OK\n"
            if what == "members":
                return self.members.listing(queue_name, count=action == "count")
            names = {t.agent for t in self.tiers.values() if t.queue == queue_name}
            agents = [
                a
                for a in self.agents.values()
                if a.name in names
                and (len(args) < 3 or a.status == args[2])
                and (len(args) < 4 or a.state == args[3])
            ]
            if action == "count":
                return f"{len(agents)}\n"
            return _table(AGENT_COLUMNS, [a.row() for a in agents]) + "+OK\n"
        return ""

    # ------------------------------------------------------------------ queues and xml_curl

    def _load_static_queues(self) -> None:
        for name, params in self.static_queues.items():
            self.queues[name] = FakeQueue.from_params(name, params)

    async def _get_queue(self, name: str) -> FakeQueue | None:
        """The queue from memory, else fetched (mod_callcenter holds its global mutex meanwhile)."""
        if name in self.queues:
            return self.queues[name]
        lock = self._queue_lock or asyncio.Lock()
        async with lock:
            if name in self.queues:
                return self.queues[name]
            return await self._load_queue(name)

    async def _load_queue(self, name: str) -> FakeQueue | None:
        config = await self._fetch_callcenter_conf(name)
        if config is None:  # xml_curl failed or said "not found": the static files decide
            params = self.static_queues.get(name)
            if params is None:
                return None
            queue = FakeQueue.from_params(name, params)
        else:
            self._import_agents_and_tiers(config)
            element = next(
                (q for q in config.iterfind("queues/queue") if q.get("name") == name), None
            )
            if element is None:
                return None
            params = {p.get("name", ""): p.get("value", "") for p in element.iterfind("param")}
            queue = FakeQueue.from_params(name, params)
        self.queues[name] = queue
        return queue

    def _import_agents_and_tiers(self, config: ET.Element) -> None:
        """queue load/reload re-imports every <agent> and <tier> of the fetched document."""
        for element in config.iterfind("agents/agent"):
            name = element.get("name")
            if not name:
                continue
            agent = self.agents.get(name) or self.add_agent(name, element.get("type") or "Callback")
            for attr, value in element.attrib.items():
                key = attr.replace("-", "_")
                if key in ("status", "state", "contact", "type"):
                    setattr(agent, key, value)
                elif key in _NUMERIC_AGENT_KEYS:
                    setattr(agent, key, _atoi(value))
        for element in config.iterfind("tiers/tier"):
            queue, agent_name = element.get("queue"), element.get("agent")
            if not queue or not agent_name:
                continue
            tier = self.tiers.get((queue, agent_name)) or self.add_tier(queue, agent_name)
            if element.get("level"):
                tier.level = _atoi(element.get("level", "1"))
            if element.get("position"):
                tier.position = _atoi(element.get("position", "1"))

    def xml_curl_body(self, queue: str | None) -> str:
        """The form body FreeSWITCH POSTs for callcenter.conf (CC-Queue set on queue loads)."""
        body = (
            f"hostname={self.switchname}&section=configuration&tag_name=configuration"
            "&key_name=name&key_value=callcenter.conf"
        )
        if queue is None:
            return body
        params = [
            *self._std_headers("REQUEST_PARAMS", None, "mod_callcenter.c", "load_queue", 724),
            ("CC-Queue", queue),
        ]
        return body + "".join(f"&{name}={fs_url_encode(value)}" for name, value in params)

    async def _fetch_callcenter_conf(self, queue: str) -> ET.Element | None:
        """POST like mod_xml_curl; the ``<configuration name="callcenter.conf">`` or None."""
        if not self.xml_curl_url:
            return None
        body = self.xml_curl_body(queue)
        headers = {
            "User-Agent": "freeswitch-xml/1.0",
            "Accept": "*/*",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if self.xml_curl_credentials:
            token = base64.b64encode(self.xml_curl_credentials.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        record = XmlCurlRequest(queue=queue, body=body, headers=dict(headers))
        self.xml_curl_log.append(record)
        # One fresh connection per fetch, like curl in mod_xml_curl; never blocks the loop.
        connector = aiohttp.TCPConnector(force_close=True)
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(total=self.xml_curl_timeout),
                    skip_auto_headers=("Accept-Encoding",),
                ) as session,
                session.post(self.xml_curl_url, data=body.encode(), headers=headers) as resp,
            ):
                record.status = resp.status
                raw = await resp.content.read(1 << 20)
                record.response = raw.decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            record.error = repr(exc)
            return None
        if record.status != 200:
            return None
        try:
            root = ET.fromstring(record.response)
        except ET.ParseError as exc:
            record.error = f"parse error: {exc}"
            return None
        for section in root.iterfind("section"):
            if section.get("name") == "configuration":
                for config in section.iterfind("configuration"):
                    if config.get("name") == "callcenter.conf":
                        return config
        return None


# ----------------------------------------------------------------------------- the people side

REG_SEPARATOR = "=" * 97


@dataclass
class FakeRegistration:
    """One phone's registration as sofia and the core registrations table hold it."""

    user: str
    realm: str
    call_id: str
    contact: str  # as the phone sent it: '"" <sip:1001@127.0.0.1:5381;transport=UDP>'
    network_ip: str
    network_port: int
    user_agent: str
    registered_at: int  # epoch seconds
    expires: int = 120
    profile: str = "internal"
    transport: str = "UDP"
    rpid: str = "unknown"
    ping_status: str = "Reachable"
    ping_time: str = "0.00"

    @property
    def status(self) -> str:
        return f"Registered({self.transport})"

    @property
    def url(self) -> str:
        """The dialable contact (``show registrations``'s ``url``)."""
        uri = self.contact[self.contact.index("<") + 1 : self.contact.rindex(">")]
        return f"sofia/{self.profile}/{uri}"


class FakeSofia:
    """mod_sofia's registrations: the api views and the sofia::* events.

    Captured (esl/live): ``show registrations [as json]``, ``sofia [xml]status profile P reg``
    with one row, and the ``sofia::register`` event. Inferred from the 1.10 source and those
    neighbours (no capture): the empty forms of the four views, and the headers of
    ``sofia::unregister`` and ``sofia::expire``.
    """

    sip_expires_late_margin = 60  # the core table's expiry: registration + expires + margin

    def __init__(self, fs: FakeFreeSwitch, presence_hosts: str = "127.0.0.1,127.0.0.1") -> None:
        self.fs = fs
        self.presence_hosts = presence_hosts
        self.registrations: dict[str, FakeRegistration] = {}

    # -- phones --------------------------------------------------------------------------

    def register(
        self,
        user: str,
        realm: str,
        *,
        contact_port: int = 5381,
        network_port: int = 5382,
        network_ip: str = "127.0.0.1",
        call_id: str | None = None,
        user_agent: str = "SIPp register test",
        expires: int = 120,
        profile: str = "internal",
        variables: Iterable[tuple[str, str]] = (),
    ) -> FakeRegistration:
        """A phone registers (digest auth passed): stored, and ``sofia::register`` fired.
        ``variables``: the directory user's params/variables the event carries last."""
        reg = FakeRegistration(
            user=user,
            realm=realm,
            call_id=call_id or f"{uuid.uuid4()}@{network_ip}",
            contact=f'"" <sip:{user}@{network_ip}:{contact_port};transport=UDP>',
            network_ip=network_ip,
            network_port=network_port,
            user_agent=user_agent,
            registered_at=self.fs.clock_us() // 1_000_000,
            expires=expires,
            profile=profile,
        )
        self.registrations[reg.call_id] = reg
        headers = [
            ("profile-name", reg.profile),
            ("from-user", user),
            ("from-host", realm),
            ("presence-hosts", self.presence_hosts),
            ("contact", reg.contact),
            ("call-id", reg.call_id),
            ("rpid", reg.rpid),
            ("status", reg.status),
            ("expires", str(expires)),
            ("to-user", user),
            ("to-host", realm),
            ("network-ip", network_ip),
            ("network-port", str(network_port)),
            ("username", user),
            ("realm", realm),
            ("user-agent", user_agent),
            *variables,
        ]
        self._fire("sofia::register", "sofia_reg_handle_register_token", 2059, headers)
        return reg

    def unregister(self, call_id: str) -> None:
        """The phone sends REGISTER with Expires: 0 (headers inferred, see the class doc)."""
        reg = self.registrations.pop(call_id)
        headers = [
            ("profile-name", reg.profile),
            ("from-user", reg.user),
            ("from-host", reg.realm),
            ("contact", reg.contact),
            ("call-id", reg.call_id),
            ("rpid", reg.rpid),
            ("expires", "0"),
            ("to-user", reg.user),
            ("to-host", reg.realm),
            ("network-ip", reg.network_ip),
            ("network-port", str(reg.network_port)),
            ("username", reg.user),
            ("realm", reg.realm),
            ("user-agent", reg.user_agent),
        ]
        self._fire("sofia::unregister", "sofia_reg_handle_register_token", 1586, headers)

    def expire(self, call_id: str) -> None:
        """sofia's reaper drops a registration that was not renewed (headers inferred)."""
        reg = self.registrations.pop(call_id)
        headers = [
            ("profile-name", reg.profile),
            ("call-id", reg.call_id),
            ("user", reg.user),
            ("host", reg.realm),
            ("contact", reg.contact),
            ("expires", str(reg.registered_at + reg.expires)),
            ("user-agent", reg.user_agent),
            ("network-ip", reg.network_ip),
            ("network-port", str(reg.network_port)),
        ]
        self._fire("sofia::expire", "sofia_reg_del_callback", 304, headers)

    def _fire(
        self, subclass: str, function: str, line: int, headers: list[tuple[str, str]]
    ) -> None:
        self.fs.emit_event(
            "CUSTOM", headers, subclass=subclass, calling=("sofia_reg.c", function, line)
        )

    # -- api -----------------------------------------------------------------------------

    def api(self, cmd: str, arg: str) -> str:
        words = arg.split()
        if cmd == "show" and words[:1] == ["registrations"]:
            return self._show_json() if words[1:] == ["as", "json"] else self._show_text()
        if cmd == "sofia" and len(words) == 4 and words[1::2] == ["profile", "reg"]:
            if words[0] == "xmlstatus":
                return self._xmlstatus(words[2])
            if words[0] == "status":
                return self._status(words[2])
        return f"-ERR {cmd} {arg}: not modelled by the fake\n"

    def _rows(self) -> list[dict[str, str]]:
        return [
            {
                "reg_user": r.user,
                "realm": r.realm,
                "token": r.call_id,
                "url": r.url,
                "expires": str(r.registered_at + r.expires + self.sip_expires_late_margin),
                "network_ip": r.network_ip,
                "network_port": str(r.network_port),
                "network_proto": r.transport.lower(),
                "hostname": self.fs.hostname,
                "metadata": "",
            }
            for r in self.registrations.values()
        ]

    def _show_text(self) -> str:
        rows = self._rows()
        if not rows:
            return "\n0 total.\n"  # inferred: the header is printed with the first row
        lines = [",".join(rows[0]), *(",".join(row.values()) for row in rows)]
        return "\n".join(lines) + f"\n\n{len(rows)} total.\n"

    def _show_json(self) -> str:
        rows = self._rows()
        if not rows:
            return '{"row_count":0}'  # inferred
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))

    def _of(self, profile: str) -> list[FakeRegistration]:
        return [r for r in self.registrations.values() if r.profile == profile]

    def _expiry(self, reg: FakeRegistration) -> tuple[str, int]:
        ends = reg.registered_at + reg.expires + self.sip_expires_late_margin
        left = ends - self.fs.clock_us() // 1_000_000
        return datetime.fromtimestamp(ends, self.fs.tz).strftime("%Y-%m-%d %H:%M:%S"), left

    def _xmlstatus(self, profile: str) -> str:
        rows = []
        for r in self._of(profile):
            when, left = self._expiry(r)
            fields_ = [
                ("call-id", r.call_id),
                ("user", f"{r.user}@{r.realm}"),
                ("contact", r.contact),
                ("agent", r.user_agent),
                ("status", f"{r.status}({r.rpid}) exp({when}) expsecs({left})"),
                ("ping-status", r.ping_status),
                ("ping-time", r.ping_time),
                ("host", self.fs.hostname),
                ("network-ip", r.network_ip),
                ("network-port", str(r.network_port)),
                ("sip-auth-user", r.user),
                ("sip-auth-realm", r.realm),
                ("mwi-account", f"{r.user}@{r.realm}"),
            ]
            inner = "".join(f"        <{k}>{xml_escape(v)}</{k}>\n" for k, v in fields_)
            rows.append(f"    <registration>\n{inner}    </registration>\n")
        return (
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n<profile>\n  <registrations>\n'
            + "".join(rows)
            + "  </registrations>\n</profile>\n"
        )

    def _status(self, profile: str) -> str:
        blocks = []
        for r in self._of(profile):
            when, left = self._expiry(r)
            blocks.append(
                f"Call-ID:    \t{r.call_id}\nUser:       \t{r.user}@{r.realm}\n"
                f"Contact:    \t{r.contact}\nAgent:      \t{r.user_agent}\n"
                f"Status:     \t{r.status}({r.rpid}) EXP({when}) EXPSECS({left})\n"
                f"Ping-Status:\t{r.ping_status}\nPing-Time:\t{r.ping_time}\n"
                f"Host:       \t{self.fs.hostname}\nIP:         \t{r.network_ip}\n"
                f"Port:       \t{r.network_port}\nAuth-User:  \t{r.user}\n"
                f"Auth-Realm: \t{r.realm}\nMWI-Account:\t{r.user}@{r.realm}\n\n"
            )
        return (
            f"\nRegistrations:\n{REG_SEPARATOR}\n"
            + "".join(blocks)
            + f"Total items returned: {len(blocks)}\n{REG_SEPARATOR}\n"
        )


def xml_escape(value: str) -> str:
    """sofia's XML escaping of a registration field (quotes included, as captured)."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


MEMBER_COLUMNS = (
    "queue",
    "instance_id",
    "uuid",
    "session_uuid",
    "cid_number",
    "cid_name",
    "system_epoch",
    "joined_epoch",
    "rejoined_epoch",
    "bridge_epoch",
    "abandoned_epoch",
    "base_score",
    "skill_score",
    "serving_agent",
    "serving_system",
    "state",
    "score",
)


@dataclass
class FakeMember:
    """A row of mod_callcenter's ``members`` table (cc_queue_list_members_in_call)."""

    queue: str
    uuid: str
    session_uuid: str
    cid_number: str
    cid_name: str
    system_epoch: int
    joined_epoch: int
    instance_id: str = "single_box"
    rejoined_epoch: int = 0
    bridge_epoch: int = 0
    abandoned_epoch: int = 0
    base_score: int = 0
    skill_score: int = 0
    serving_agent: str = ""
    serving_system: str = ""
    state: str = "Waiting"
    score: int = 0

    def row(self) -> list[object]:
        return [getattr(self, c) for c in MEMBER_COLUMNS]


class FakeMembers:
    """Callers in queues and the ``callcenter::info`` events of a queue call.

    Captured (esl/live): a member Answered by alice, and the event sequence of that call.
    Inferred: a Waiting member's row (no agent, bridge_epoch 0, score 0), and the
    ``member-queue-end`` of a caller who hangs up while waiting (``CC-Cause: Cancel``).
    The channel headers of member-queue-start/-end are the caller's channel variables: pass
    them as ``channel`` to reproduce a capture; by default the events carry the CC-* only.
    """

    def __init__(self, fs: FakeFreeSwitch) -> None:
        self.fs = fs
        self.members: dict[str, FakeMember] = {}

    def _now(self) -> int:
        return self.fs.clock_us() // 1_000_000

    def _cc(self, function: str, line: int, headers: list[tuple[str, str]]) -> None:
        self.fs.emit_event(
            "CUSTOM",
            headers,
            subclass="callcenter::info",
            calling=("mod_callcenter.c", function, line),
        )

    def _count(self, queue: str) -> int:
        live = ("Waiting", "Trying", "Answered")
        return sum(1 for m in self.members.values() if m.queue == queue and m.state in live)

    def _members_count(self, queue: str) -> None:
        self._cc(
            "cc_queue_count",
            878,
            [
                ("CC-Queue", queue),
                ("CC-Action", "members-count"),
                ("CC-Count", str(self._count(queue))),
                ("CC-Selection", "Single-Queue"),
            ],
        )

    def _who(self, m: FakeMember) -> list[tuple[str, str]]:
        return [
            ("CC-Member-UUID", m.uuid),
            ("CC-Member-Session-UUID", m.session_uuid),
            ("CC-Member-CID-Name", m.cid_name),
            ("CC-Member-CID-Number", m.cid_number),
        ]

    def enter(
        self,
        queue: str,
        cid_number: str,
        cid_name: str | None = None,
        *,
        member_uuid: str | None = None,
        session_uuid: str | None = None,
        channel: Iterable[tuple[str, str]] = (),
    ) -> FakeMember:
        """A caller runs the ``callcenter`` app: member-queue-start, then members-count."""
        now = self._now()
        member = FakeMember(
            queue=queue,
            uuid=member_uuid or str(uuid.uuid4()),
            session_uuid=session_uuid or str(uuid.uuid4()),
            cid_number=cid_number,
            cid_name=cid_name if cid_name is not None else cid_number,
            system_epoch=now,
            joined_epoch=now,
        )
        self.members[member.uuid] = member
        start = [("CC-Queue", queue), ("CC-Action", "member-queue-start"), *self._who(member)]
        self._cc("callcenter_function", 3113, [*channel, *start])
        self._members_count(queue)
        return member

    def answer(self, member_uuid: str, agent: str) -> None:
        """An agent is offered the caller and answers: agent-offering, bridge-agent-start."""
        member = self.members[member_uuid]
        self._agent_state(agent, "Receiving")
        self._cc(
            "outbound_agent_thread_run",
            1717,
            [
                ("CC-Queue", member.queue),
                ("CC-Action", "agent-offering"),
                ("CC-Agent", agent),
                ("CC-Agent-Type", "Callback"),
                ("CC-Agent-System", "single_box"),
                *self._who(member),
            ],
        )
        member.state, member.serving_agent, member.serving_system = (
            "Answered",
            agent,
            "single_box",
        )
        member.bridge_epoch = self._now()
        self._cc(
            "outbound_agent_thread_run",
            1934,
            [
                ("CC-Queue", member.queue),
                ("CC-Action", "bridge-agent-start"),
                ("CC-Agent", agent),
                ("CC-Agent-System", "single_box"),
                *self._who(member),
            ],
        )
        self._members_count(member.queue)
        self._agent_state(agent, "In a queue call")

    def leave(self, member_uuid: str) -> None:
        """The call ends: answered -> bridge-agent-end, member-queue-end (Terminated), the
        agent back to Waiting; still waiting -> member-queue-end (Cancel, inferred)."""
        member = self.members.pop(member_uuid)
        agent = member.serving_agent
        end = [("CC-Queue", member.queue), ("CC-Action", "member-queue-end")]
        if agent:
            self._cc(
                "outbound_agent_thread_run",
                2062,
                [
                    ("CC-Queue", member.queue),
                    ("CC-Action", "bridge-agent-end"),
                    ("CC-Hangup-Cause", "SUCCESS"),
                    ("CC-Agent", agent),
                    *self._who(member),
                ],
            )
            end += [("CC-Hangup-Cause", "SUCCESS"), ("CC-Cause", "Terminated"), ("CC-Agent", agent)]
            self._cc("outbound_agent_thread_run", 2098, [*end, *self._who(member)])
            self._agent_state(agent, "Waiting")
        else:
            end += [("CC-Cause", "Cancel"), ("CC-Cancel-Reason", "NONE")]
            self._cc("callcenter_function", 3256, [*end, *self._who(member)])
        self._members_count(member.queue)

    def _agent_state(self, agent: str, state: str) -> None:
        found = self.fs.agents.get(agent)
        if found is not None:
            found.state = state
        self._cc(
            "cc_agent_update",
            1067,
            [("CC-Agent", agent), ("CC-Action", "agent-state-change"), ("CC-Agent-State", state)],
        )

    def listing(self, queue: str, *, count: bool) -> str:
        rows = [m for m in self.members.values() if m.queue == queue]
        if count:
            return f"{self._count(queue)}\n"
        return _table(MEMBER_COLUMNS, [m.row() for m in rows]) + "+OK\n"


# ----------------------------------------------------------------------------- raw test client


class RawEsl:
    """A byte-level ESL peer for tests: sends exact bytes, reads exact frames back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, *, login: str | None = None) -> RawEsl:
        """Connect; with ``login`` read the banner and authenticate with that password."""
        reader, writer = await asyncio.open_connection(host, port)
        raw = cls(reader, writer)
        if login is not None:
            banner = await raw.read_frame()
            assert banner == BANNER, banner
            await raw.send(f"auth {login}\n\n")
            reply = await raw.read_frame()
            assert reply == _reply("+OK accepted"), reply
        return raw

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def read_frame(self, timeout: float = 2.0) -> bytes:  # noqa: ASYNC109
        """One whole frame (header block + Content-Length body), as raw bytes."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\n\n")
            length = 0
            for line in head.decode().split("\n"):
                if line.startswith("Content-Length:"):
                    length = int(line.split(":", 1)[1])
            body = await self.reader.readexactly(length) if length else b""
        return head + body

    async def read_frames(self, count: int, timeout: float = 2.0) -> bytes:  # noqa: ASYNC109
        return b"".join([await self.read_frame(timeout) for _ in range(count)])

    async def read_until_eof(self, timeout: float = 2.0) -> bytes:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            return await self.reader.read()

    async def request(self, data: bytes | str, frames: int = 1) -> bytes:
        await self.send(data)
        return await self.read_frames(frames)

    async def api(self, command: str) -> bytes:
        return await self.request(f"api {command}\n\n")

    async def close(self) -> None:
        self.writer.transport.abort()

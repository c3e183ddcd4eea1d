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
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from tests.fakes.freeswitch.callcenter import (
    FakeAgent,
    FakeCallcenter,
    FakeQueue,
    FakeTier,
    XmlCurlRequest,
)
from tests.fakes.freeswitch.members import FakeMembers
from tests.fakes.freeswitch.sofia import FakeSofia
from tests.fakes.freeswitch.text import atoi
from tests.fakes.freeswitch.voicemail import FakeVoicemail
from tests.fakes.freeswitch.wire import (
    BANNER,
    MONTHS,
    RUDE_REJECTION_BODY,
    VERSION_LINE,
    WEEKDAYS,
    ApiHandler,
    Listener,
    QueuedEvent,
    api_response_frame,
    disconnect_notice,
    reply_frame,
    serialize_event,
)


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
        self.callcenter = FakeCallcenter(self)
        self.sofia = FakeSofia(self)
        self.members = FakeMembers(self)
        self.voicemail = FakeVoicemail(self)
        # observation
        self.command_log: list[str] = []
        self.api_log: list[str] = []
        self.mutation_count = 0
        self.xml_curl_log: list[XmlCurlRequest] = []
        self.restarts = 0
        self._apis: dict[str, ApiHandler] = {}
        self._listeners: set[Listener] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._started_mono = time.monotonic()
        self._auth_changed = asyncio.Event()
        self.callcenter.load_static_queues()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeFreeSwitch:
        """Listen on ``host:port`` (a free port when 0; then kept across go_down/go_up)."""
        self.callcenter.queue_lock = asyncio.Lock()
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
        self.callcenter.load_static_queues()
        if down_for:
            await asyncio.sleep(down_for)
        await self.go_up()

    def drop_connections(self, *, notice: bool = False) -> None:
        """Cut every ESL socket now; with ``notice`` send the disconnect notice first."""
        for listener in list(self._listeners):
            if notice:
                listener.write(disconnect_notice())
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
        events: list[QueuedEvent] = []
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
            [(name, subclass, [*self.std_headers(name, subclass, *calling), *headers], body)]
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
        listener = Listener(reader, writer)
        self._listeners.add(listener)
        try:
            if self.rude_rejection:
                data = RUDE_REJECTION_BODY.encode()
                head = f"Content-Type: text/rude-rejection\nContent-Length: {len(data)}\n\n"
                listener.write(head.encode() + data + disconnect_notice())
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
                    await reader.readexactly(atoi(headers["Content-Length"]))
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

    async def _command(self, listener: Listener, command: str, headers: dict[str, str]) -> bool:
        """Handle one command; False when the socket must close."""
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        lowered = command.lower()
        if lowered.startswith(("exit", "...")):
            listener.write(reply_frame("+OK bye") + disconnect_notice())
            await listener.writer.drain()
            return False
        if not listener.authed:
            if lowered.startswith("auth "):
                if command[5:] == self.password:
                    listener.authed = True
                    self._auth_changed.set()
                    listener.write(reply_frame("+OK accepted"))
                    return True
                listener.write(reply_frame("-ERR invalid") + disconnect_notice())
                await listener.writer.drain()
                return False
            listener.write(reply_frame("-ERR command not found"))
            return True
        if lowered.startswith("api "):
            text = command[4:]
            self.api_log.append(text)
            events: list[QueuedEvent] = []
            result = await self._run_api(text, events, from_esl=True)
            listener.write(api_response_frame(result))
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
            listener.write(reply_frame(self._subscribe(listener, command[6:].split())))
        elif lowered.startswith("noevents"):
            listener.all_events = False
            listener.events.clear()
            listener.subclasses.clear()
            listener.write(reply_frame("+OK no longer listening for events"))
        else:
            listener.write(reply_frame("-ERR command not found"))
        return True

    @staticmethod
    def _subscribe(listener: Listener, words: list[str]) -> str:
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
        events: list[QueuedEvent] = []
        result = await self._run_api(text, events, from_esl=True)
        cmd, _, arg = text.partition(" ")
        headers = [
            *self.std_headers("BACKGROUND_JOB", None, "mod_event_socket.c", "api_exec", 1572),
            ("Job-UUID", job_uuid),
            ("Job-Command", cmd),
        ]
        if arg:
            headers.append(("Job-Command-Arg", arg))
        events.append(("BACKGROUND_JOB", None, headers, result))
        self._flush_events(events)

    def _flush_events(self, events: list[QueuedEvent]) -> None:
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

    def std_headers(
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
                f"{WEEKDAYS[gmt.weekday()]}, {gmt.day:02d} {MONTHS[gmt.month - 1]} "
                f"{gmt.year:04d} {gmt:%H:%M:%S} GMT",
            ),
            ("Event-Date-Timestamp", str(now_us)),
            ("Event-Calling-File", file),
            ("Event-Calling-Function", function),
            ("Event-Calling-Line-Number", str(line)),
            ("Event-Sequence", str(self._next_sequence())),
        ]
        return headers

    # ------------------------------------------------------------------ api commands

    async def _run_api(self, text: str, events: list[QueuedEvent], *, from_esl: bool) -> str:
        cmd, _, arg = text.partition(" ")
        if cmd == "callcenter_config" and self.callcenter_loaded:
            result = await self.callcenter.config(arg, events, from_esl=from_esl)
        elif cmd == "json":
            result = await self.callcenter.json_api(arg, events)
        elif cmd == "status":
            result = self._status_text()
        elif cmd in ("show", "sofia"):
            result = self.sofia.api(cmd, arg)
        elif cmd in ("vm_list", "vm_read", "vm_delete"):
            result = getattr(self.voicemail, cmd)(arg)
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

"""Asyncio client for FreeSWITCH's inbound Event Socket (mod_event_socket), stdlib only.

Wire facts this module relies on (see shared/freeswitch/REFERENCE.md and the ESL transcripts):

* Every frame is a block of ``Name: value`` lines ended by a blank line, followed by
  ``Content-Length`` bytes of body when that header is present.
* The switch answers ``command/reply`` (auth, bgapi, event, exit) and ``api/response`` frames
  strictly in the order the commands were sent, one answer per command, so replies are matched
  to a FIFO of waiting futures. ``text/event-plain`` events may be interleaved anywhere.
* An event's body is itself a header block with url-encoded values (not fully encoded:
  ``Tue,%2024%20Nov``), optionally followed by its own ``Content-Length`` body
  (``BACKGROUND_JOB`` results).
* ``text/disconnect-notice`` precedes the server closing the socket; ``text/rude-rejection``
  replaces the ``auth/request`` banner when the ESL ACL refuses the peer.

Layers: :class:`EslFrameParser` (sans-IO, incremental), :class:`EslConnection` (one
authenticated socket, pipelined commands) and :class:`EslClient` (one node, reconnects after
the delay an injected policy gives, runs an ``on_connect`` hook after every connect). How the
socket is opened (``connect``) and how long to wait between attempts (``retry_delay``) are the
caller's: this module knows ESL, not retry strategy, and imports only the standard library.

Exceptions::

    EslError                    base of everything raised here
    ├── EslConnectionError      not connected, socket failed, EOF or disconnect notice
    ├── EslAuthError            password refused, or the ACL sent a rude rejection
    ├── EslTimeout              a connect, reply or background job took too long
    ├── EslProtocolError        the peer sent bytes that are not ESL (the socket is dropped)
    └── EslCommandError         a command/reply said -ERR (event, bgapi); api() never raises it

``api()`` returns the api/response body verbatim (``"+OK\\n"``, ``"-ERR Agent not found!\\n"``,
``"Waiting"``): interpreting it is the caller's business.
"""

# Every wait takes an explicit ``timeout=`` that turns into EslTimeout: that is the contract
# callers rely on, so ruff's "use asyncio.timeout instead" advice does not apply here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, cast
from urllib.parse import unquote

__all__ = [
    "EslAuthError",
    "EslClient",
    "EslClientState",
    "EslCommandError",
    "EslConnection",
    "EslConnectionError",
    "EslError",
    "EslEvent",
    "EslFrame",
    "EslFrameParser",
    "EslProtocolError",
    "EslTimeout",
    "OpenStream",
    "RetryDelay",
    "build_event_command",
    "parse_event_plain",
    "quote_arg",
]

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8021
_MAX_HEADER_BLOCK: Final = 1 << 20  # a header block larger than this means we lost framing
_MAX_BODY: Final = 64 << 20
_EVENT_NAME_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")


# --------------------------------------------------------------------------- exceptions


class EslError(Exception):
    """Base class of every error raised by this module."""


class EslConnectionError(EslError):
    """The socket is not usable: never opened, failed, closed or disconnect-noticed."""


class EslAuthError(EslError):
    """The switch refused us: wrong password (``-ERR invalid``) or ACL rude rejection."""


class EslTimeout(EslError):
    """A connect, reply or background job did not complete within its timeout."""


class EslProtocolError(EslError):
    """The peer sent something that cannot be ESL; the connection is dropped."""


class EslCommandError(EslError):
    """A ``command/reply`` carried ``-ERR ...`` (for event subscriptions and bgapi)."""

    def __init__(self, message: str, reply_text: str) -> None:
        super().__init__(message)
        self.reply_text = reply_text


# --------------------------------------------------------------------------- frames and events


@dataclass(frozen=True, slots=True)
class EslFrame:
    """One raw ESL frame: outer headers (not url-decoded) and the decoded body."""

    headers: Mapping[str, str]
    body: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")


@dataclass(frozen=True, slots=True)
class EslEvent:
    """A ``text/event-plain`` event: url-decoded headers plus its optional inner body."""

    headers: Mapping[str, str]
    body: str = ""

    @property
    def name(self) -> str:
        """``Event-Name``, or the ``Event-Subclass`` for CUSTOM events (``callcenter::info``)."""
        name = self.headers.get("Event-Name", "")
        if name == "CUSTOM":
            return self.headers.get("Event-Subclass", name)
        return name

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _parse_header_lines(block: bytes, *, url_decoded: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.split(b"\n"):
        line = _decode(raw.rstrip(b"\r"))
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise EslProtocolError(f"malformed ESL header line: {line[:80]!r}")
        value = value.removeprefix(" ")
        headers[name.strip()] = unquote(value) if url_decoded else value
    return headers


def _content_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("Content-Length")
    if raw is None:
        return None
    try:
        length = int(raw.strip())
    except ValueError:
        raise EslProtocolError(f"bad Content-Length {raw!r}") from None
    if length < 0 or length > _MAX_BODY:
        raise EslProtocolError(f"unacceptable Content-Length {length}")
    return length


def parse_event_plain(body: bytes) -> EslEvent:
    """Decode a ``text/event-plain`` body: header lines, blank line, optional inner body."""
    head, sep, rest = body.partition(b"\n\n")
    headers = _parse_header_lines(head, url_decoded=True)
    inner = b""
    if sep:
        length = _content_length(headers)
        if length is not None:
            inner = rest[:length]
    return EslEvent(MappingProxyType(headers), _decode(inner))


class EslFrameParser:
    """Incremental ESL frame parser: feed it bytes as they arrive, get whole frames back.

    Sans-IO so that the framing can be tested byte by byte and so that many pipelined replies
    arriving in one TCP segment cost one ``read()``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._headers: dict[str, str] | None = None
        self._need = 0

    def feed(self, data: bytes) -> list[tuple[dict[str, str], bytes]]:
        """Add ``data``; return every frame it completed as ``(headers, body_bytes)``."""
        self._buf += data
        frames: list[tuple[dict[str, str], bytes]] = []
        while True:
            if self._headers is None:
                end = self._buf.find(b"\n\n", self._pos)
                if end < 0:
                    if len(self._buf) - self._pos > _MAX_HEADER_BLOCK:
                        raise EslProtocolError("ESL header block too large: framing lost")
                    break
                block = bytes(self._buf[self._pos : end])
                self._pos = end + 2
                if not block.strip():
                    continue  # stray blank lines between frames carry nothing
                headers = _parse_header_lines(block, url_decoded=False)
                length = _content_length(headers)
                if not length:
                    frames.append((headers, b""))
                    continue
                self._headers, self._need = headers, length
            if len(self._buf) - self._pos < self._need:
                break
            body = bytes(self._buf[self._pos : self._pos + self._need])
            self._pos += self._need
            frames.append((self._headers, body))
            self._headers, self._need = None, 0
        if self._pos:
            # Compact once per feed(): cheap, and keeps the buffer from growing forever.
            del self._buf[: self._pos]
            self._pos = 0
        return frames


# --------------------------------------------------------------------------- helpers


def quote_arg(value: str) -> str:
    """Quote one argument for FreeSWITCH's blank-separated tokenizer (``switch_separate_string``).

    That tokenizer (used by callcenter_config) splits on spaces outside single quotes, treats a
    backslash as escaping the next character while splitting, and afterwards removes the quotes
    and turns ``\\'``, ``\\"`` and ``\\\\`` back into the bare character. So: plain tokens are
    sent as they are, backslashes and single quotes are backslash-escaped, and a value with a
    blank (or an empty value) is wrapped in single quotes. CR/LF/NUL cannot be carried at all:
    they would end the ESL frame (or the C string) and are rejected.
    """
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"argument cannot contain CR, LF or NUL: {value!r}")
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    if not value or " " in value:
        return f"'{escaped}'"
    return escaped


def build_event_command(names: Iterable[str]) -> str:
    """Build ``event plain ...`` with CUSTOM and its subclasses last.

    mod_event_socket treats every token after CUSTOM as a subclass name, so
    ``["callcenter::info", "BACKGROUND_JOB"]`` must become
    ``event plain BACKGROUND_JOB CUSTOM callcenter::info``. Tokens that look like event names
    (upper case, digits, underscores) are events; anything else is a CUSTOM subclass.
    """
    plain: list[str] = []
    subclasses: list[str] = []
    custom = False
    for name in names:
        for word in name.split():
            _check_line(word, "event name")
            if word == "CUSTOM":
                custom = True
            elif _EVENT_NAME_RE.fullmatch(word):
                if word not in plain:
                    plain.append(word)
            elif word not in subclasses:
                subclasses.append(word)
    words = list(plain)
    if custom or subclasses:
        words += ["CUSTOM", *subclasses]
    if not words:
        raise ValueError("no event names given")
    return "event plain " + " ".join(words)


def _check_line(text: str, what: str) -> None:
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} cannot contain CR or LF (it would break ESL framing)")


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    # Futures we fail on shutdown may have been abandoned by their caller (timeout, cancel):
    # touching the exception keeps asyncio from logging "exception was never retrieved".
    if not fut.cancelled():
        fut.exception()


_CLOSED: Final = object()


class _EventBuffer:
    """Unbounded-by-construction queue with a soft limit: drops (and counts) on overflow."""

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._limit = limit
        self._closed = False
        self.dropped = 0

    def put(self, event: EslEvent) -> None:
        if self._closed:
            return
        if self._queue.qsize() >= self._limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "esl event buffer full, dropping events",
                    extra={"fields": {"dropped": self.dropped, "limit": self._limit}},
                )
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_CLOSED)

    async def get(self, timeout: float | None) -> EslEvent | None:
        """Next event; None once closed and drained."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            raise EslTimeout(f"no event within {timeout}s") from None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # wake any other reader too
            return None
        return cast(EslEvent, item)


EventCallback = Callable[[EslEvent], None]
OpenStream = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Opens the byte stream to a switch: ``asyncio.open_connection(host, port)`` by default."""
RetryDelay = Callable[[int], float]
"""Seconds to wait before the next connect attempt, given the consecutive failures so far
(1 after the first failure). Injected: the caller owns the retry strategy and its jitter."""


# --------------------------------------------------------------------------- connection


class EslConnection:
    """One authenticated inbound ESL socket.

    Commands may be issued from many tasks at once: each write is a single ``transport.write``
    done together with queueing its reply future, so the wire order and the FIFO order always
    agree, and replies are matched in order. A command whose caller timed out keeps its place in
    the FIFO so that its late reply is discarded instead of being handed to the next caller.

    Events go to ``on_event`` when given (used by :class:`EslClient`), else to an internal
    buffer read with :meth:`events` / :meth:`next_event`.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        *,
        on_event: EventCallback | None = None,
        event_buffer_size: int = 10_000,
    ) -> None:
        self.host = host
        self.port = port
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._parser = EslFrameParser()
        self._pending: deque[tuple[asyncio.Future[EslFrame], str]] = deque()
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._banner: asyncio.Future[None] = self._new_future()
        self._on_event = on_event
        self._events = _EventBuffer(event_buffer_size)
        self._subscribed: list[str] = []
        self._deliver_bg_jobs = False
        self._subscribe_lock = asyncio.Lock()
        self._closed_event = asyncio.Event()
        self._disconnect_notice = False
        self._closing = False
        self.close_reason: EslError | None = None
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"esl-reader-{host}:{port}")

    # ----------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        password: str,
        *,
        timeout: float = 5.0,
        on_event: EventCallback | None = None,
        event_buffer_size: int = 10_000,
        connect: OpenStream | None = None,
    ) -> EslConnection:
        """Connect, wait for the ``auth/request`` banner and authenticate, within ``timeout``.

        ``connect`` opens the stream (default: ``asyncio.open_connection(host, port)``); tests
        and TLS tunnels pass their own."""
        _check_line(password, "password")
        peer = f"{host}:{port}"
        conn: EslConnection | None = None
        try:
            async with asyncio.timeout(timeout):
                try:
                    if connect is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    else:
                        reader, writer = await connect()
                except OSError as exc:
                    raise EslConnectionError(f"cannot connect to ESL at {peer}: {exc}") from exc
                conn = cls(
                    reader,
                    writer,
                    host,
                    port,
                    on_event=on_event,
                    event_buffer_size=event_buffer_size,
                )
                await conn._banner
                reply = await conn._request(f"auth {password}\n\n", "command/reply", None, "auth")
        except TimeoutError:
            if conn is not None:
                conn._abort(EslConnectionError(f"ESL handshake with {peer} timed out"))
            raise EslTimeout(f"ESL connect/auth to {peer} timed out after {timeout}s") from None
        except BaseException:
            if conn is not None:
                conn._abort(EslConnectionError(f"ESL handshake with {peer} failed"))
            raise
        if not reply.reply_text.startswith("+OK"):
            conn._abort(EslConnectionError(f"ESL authentication refused by {peer}"))
            # Deliberately not echoing what we sent: it holds the password.
            raise EslAuthError(f"ESL authentication refused by {peer}: {reply.reply_text}")
        log.debug("esl connected", extra={"fields": {"peer": peer}})
        return conn

    # ----------------------------------------------------------------- public API

    @property
    def closed(self) -> bool:
        """True once the socket is unusable (closed, failed, or a disconnect notice arrived)."""
        return self._closed_event.is_set() or self._disconnect_notice

    async def wait_closed(self) -> None:
        """Return when the connection has gone away, for whatever reason."""
        await self._closed_event.wait()

    @property
    def dropped_events(self) -> int:
        return self._events.dropped

    async def api(self, command: str, *, timeout: float = 10.0) -> str:
        """Run ``api <command>`` and return the api/response body exactly as sent."""
        _check_line(command, "api command")
        frame = await self._request(f"api {command}\n\n", "api/response", timeout, "api")
        return frame.body

    async def bgapi(
        self, command: str, *, timeout: float = 30.0, job_uuid: str | None = None
    ) -> str:
        """Run ``bgapi <command>`` and return the body of its ``BACKGROUND_JOB`` event.

        The Job-UUID is chosen here (``job_uuid`` if given) and registered before sending, so
        the event is matched even if it overtakes our processing of the command/reply.
        """
        _check_line(command, "bgapi command")
        job_id = job_uuid or str(uuid.uuid4())
        _check_line(job_id, "Job-UUID")
        try:
            async with asyncio.timeout(timeout):
                if "BACKGROUND_JOB" not in self._subscribed and "ALL" not in self._subscribed:
                    await self._subscribe(("BACKGROUND_JOB",), None, by_user=False)
                job = self._new_future()
                self._jobs[job_id] = job
                try:
                    reply = await self._request(
                        f"bgapi {command}\nJob-UUID: {job_id}\n\n", "command/reply", None, "bgapi"
                    )
                    if not reply.reply_text.startswith("+OK"):
                        raise EslCommandError(
                            f"bgapi refused: {reply.reply_text}", reply.reply_text
                        )
                    return cast(str, await job)
                finally:
                    self._jobs.pop(job_id, None)
                    if not job.done():
                        job.cancel()
        except TimeoutError:
            raise EslTimeout(f"bgapi job {job_id} not finished within {timeout}s") from None

    async def subscribe(self, *names: str, timeout: float | None = 10.0) -> None:
        """Subscribe to events (additive): ``subscribe("BACKGROUND_JOB", "callcenter::info")``.

        The full set subscribed so far is re-sent each time, in mod_event_socket's order
        (plain names, then CUSTOM and its subclasses), which is idempotent on the switch.
        """
        await self._subscribe(names, timeout, by_user=True)

    async def _subscribe(
        self, names: Iterable[str], timeout: float | None, *, by_user: bool
    ) -> None:
        async with self._subscribe_lock:
            wanted = [*self._subscribed]
            for name in names:
                for token in name.split():
                    if token not in wanted:
                        wanted.append(token)
            command = build_event_command(wanted)
            reply = await self._request(f"{command}\n\n", "command/reply", timeout, "event")
            if not reply.reply_text.startswith("+OK"):
                raise EslCommandError(
                    f"event subscription refused: {reply.reply_text}", reply.reply_text
                )
            self._subscribed = wanted
            if by_user and any(t in ("BACKGROUND_JOB", "ALL") for n in names for t in n.split()):
                self._deliver_bg_jobs = True

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return tuple(self._subscribed)

    async def command(
        self,
        command: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
    ) -> EslFrame:
        """Send a raw command (plus optional headers) and return its command/reply frame."""
        _check_line(command, "command")
        lines = [command]
        for name, value in (headers or {}).items():
            _check_line(name, "header name")
            _check_line(value, "header value")
            lines.append(f"{name}: {value}")
        verb = command.split(" ", 1)[0]
        return await self._request("\n".join(lines) + "\n\n", "command/reply", timeout, verb)

    async def next_event(self, timeout: float | None = None) -> EslEvent:
        """The next buffered event; EslConnectionError once closed and drained."""
        event = await self._events.get(timeout)
        if event is None:
            raise EslConnectionError(f"ESL connection to {self.host}:{self.port} is closed")
        return event

    async def events(self) -> AsyncIterator[EslEvent]:
        """Iterate over buffered events until the connection closes."""
        while True:
            event = await self._events.get(None)
            if event is None:
                return
            yield event

    async def close(self, *, timeout: float = 2.0) -> None:
        """Say ``exit``, read ``+OK bye`` and the disconnect notice, then close the socket."""
        if self._closing or self._closed_event.is_set():
            await self._finish_reader(timeout)
            return
        self._closing = True
        if not self._disconnect_notice:
            with contextlib.suppress(EslError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._request("exit\n\n", "command/reply", None, "exit")
                    await self._closed_event.wait()  # disconnect notice, then EOF
        self._abort(EslConnectionError(f"ESL connection to {self.host}:{self.port} closed"))
        await self._finish_reader(timeout)

    async def __aenter__(self) -> EslConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<EslConnection {self.host}:{self.port} {state}>"

    # ----------------------------------------------------------------- internals

    def _new_future(self) -> asyncio.Future[Any]:
        fut = self._loop.create_future()
        fut.add_done_callback(_consume_exception)
        return fut

    def _send(self, data: str, expect: str) -> asyncio.Future[EslFrame]:
        if self._closed_event.is_set() or self._disconnect_notice:
            reason = self.close_reason or "disconnect notice received"
            raise EslConnectionError(
                f"ESL connection to {self.host}:{self.port} is closed: {reason}"
            )
        fut: asyncio.Future[EslFrame] = self._new_future()
        # No await between queueing and writing: wire order == FIFO order, even with many tasks.
        self._pending.append((fut, expect))
        try:
            self._writer.write(data.encode("utf-8"))
        except (OSError, RuntimeError) as exc:
            err = EslConnectionError(f"write to {self.host}:{self.port} failed: {exc}")
            self._abort(err)
            raise err from exc
        return fut

    async def _request(self, data: str, expect: str, timeout: float | None, verb: str) -> EslFrame:
        fut = self._send(data, expect)
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
                return await fut
        except TimeoutError:
            raise EslTimeout(f"no reply to ESL {verb!r} within {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            err = EslConnectionError(f"write to {self.host}:{self.port} failed: {exc}")
            self._abort(err)
            raise err from exc
        finally:
            if not fut.done():
                fut.cancel()  # keeps its FIFO slot: the late reply will be dropped

    async def _read_loop(self) -> None:
        peer = f"{self.host}:{self.port}"
        reason: EslError
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    suffix = " after a disconnect notice" if self._disconnect_notice else ""
                    reason = EslConnectionError(f"ESL connection closed by {peer}{suffix}")
                    break
                for headers, body in self._parser.feed(data):
                    self._dispatch(headers, body)
        except EslError as exc:
            reason = exc
            log.warning(
                "esl protocol error, dropping connection",
                extra={"fields": {"peer": peer, "error": str(exc)}},
            )
        except OSError as exc:
            reason = EslConnectionError(f"ESL connection to {peer} failed: {exc}")
            reason.__cause__ = exc
        except Exception as exc:
            log.exception("esl reader crashed", extra={"fields": {"peer": peer}})
            reason = EslProtocolError(f"ESL reader for {peer} crashed: {exc!r}")
            reason.__cause__ = exc
        except asyncio.CancelledError:
            self._shutdown(EslConnectionError(f"ESL connection to {peer} closed"))
            raise
        self._shutdown(reason)

    def _dispatch(self, headers: dict[str, str], body: bytes) -> None:
        ctype = headers.get("Content-Type", "")
        if ctype in ("command/reply", "api/response"):
            frame = EslFrame(MappingProxyType(headers), _decode(body))
            if not self._pending:
                raise EslProtocolError(f"unsolicited {ctype} frame: {frame.reply_text[:80]!r}")
            fut, expect = self._pending.popleft()
            if fut.done():
                return  # its caller gave up; the reply is dropped, FIFO stays aligned
            if ctype != expect:
                text = frame.reply_text or frame.body
                fut.set_exception(EslProtocolError(f"expected {expect}, got {ctype}: {text!r}"))
            else:
                fut.set_result(frame)
        elif ctype == "text/event-plain":
            event = parse_event_plain(body)
            if event.name == "BACKGROUND_JOB":
                job = self._jobs.get(event.headers.get("Job-UUID", ""))
                if job is not None:
                    if not job.done():
                        job.set_result(event.body)
                    return
                if not self._deliver_bg_jobs:
                    return  # another client's job, seen only because bgapi() subscribed us
            self._deliver(event)
        elif ctype == "auth/request":
            if not self._banner.done():
                self._banner.set_result(None)
        elif ctype == "text/disconnect-notice":
            self._disconnect_notice = True
            self._fail_pending(
                EslConnectionError(
                    f"ESL peer {self.host}:{self.port} sent a disconnect notice: "
                    f"{_decode(body).strip()!r}"
                )
            )
        elif ctype == "text/rude-rejection":
            err = EslAuthError(
                f"ESL peer {self.host}:{self.port} rejected us (ACL): {_decode(body).strip()}"
            )
            if not self._banner.done():
                self._banner.set_exception(err)
            self._fail_pending(err)
        else:
            log.debug("esl frame ignored", extra={"fields": {"content_type": ctype}})

    def _deliver(self, event: EslEvent) -> None:
        if self._on_event is None:
            self._events.put(event)
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("esl on_event callback raised")

    def _fail_pending(self, reason: EslError) -> None:
        while self._pending:
            fut, _ = self._pending.popleft()
            if not fut.done():
                fut.set_exception(_copy_error(reason))
        for job in self._jobs.values():
            if not job.done():
                job.set_exception(_copy_error(reason))
        if not self._banner.done():
            self._banner.set_exception(_copy_error(reason))

    def _shutdown(self, reason: EslError) -> None:
        if self._closed_event.is_set():
            return
        self.close_reason = reason
        conn_reason = (
            reason
            if isinstance(reason, EslConnectionError | EslAuthError)
            else _wrap_connection_error(reason)
        )
        self._fail_pending(conn_reason)
        self._events.close()
        self._closed_event.set()
        self._writer.close()

    def _abort(self, reason: EslError) -> None:
        self._shutdown(reason)
        transport = self._writer.transport
        if not transport.is_closing():
            transport.abort()

    async def _finish_reader(self, timeout: float) -> None:
        task = self._reader_task
        if task.done():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _copy_error(reason: EslError) -> EslError:
    # Each waiter gets its own exception object so tracebacks do not pile up on one instance.
    copy = type(reason)(str(reason)) if not isinstance(reason, EslCommandError) else reason
    copy.__cause__ = reason.__cause__
    return copy


def _wrap_connection_error(reason: EslError) -> EslConnectionError:
    err = EslConnectionError(f"ESL connection dropped: {reason}")
    err.__cause__ = reason
    return err


# --------------------------------------------------------------------------- reconnecting client


class EslClientState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


OnConnect = Callable[[EslConnection], Awaitable[None]]


def _one_second(failures: int) -> float:
    """The default pause between attempts: callers inject their own jittered policy."""
    return 1.0


class EslClient:
    """Keeps one ESL connection to one node alive, reconnecting after ``retry_delay(n)``.

    ``n`` counts consecutive failures: refused or timed-out connects, and connections that
    died within ``stable_after`` seconds (a flapping switch must not get a resync storm); it
    restarts at 1 after a connection that lived longer. A refused password or ACL waits
    ``auth_retry_delay(n)`` instead (a person has to fix it: no point probing fast) and is
    logged once per streak, not per attempt; so is an unreachable switch.

    ``api()``/``bgapi()`` never wait for a reconnect: while not CONNECTED they raise
    :class:`EslConnectionError` at once and the caller decides whether to retry.
    ``on_connect(conn)`` runs after every (re)connect, once ``subscriptions`` are
    re-established; its errors are logged, not fatal, and it may run for the connection's
    whole life (a session). Events go to ``on_event`` when given (called in the reader, so
    the socket is always drained), else to one buffer read with :meth:`events`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        on_connect: OnConnect | None = None,
        on_event: EventCallback | None = None,
        subscriptions: Iterable[str] = (),
        connect: OpenStream | None = None,
        connect_timeout: float = 5.0,
        retry_delay: RetryDelay = _one_second,
        auth_retry_delay: RetryDelay | None = None,
        stable_after: float = 10.0,
        event_buffer_size: int = 10_000,
        name: str | None = None,
    ) -> None:
        _check_line(password, "password")
        if subscriptions := tuple(subscriptions):
            build_event_command(subscriptions)  # fail fast on bad names, not in the background
        self.host = host
        self.port = port
        self.name = name or f"{host}:{port}"
        self._password = password
        self._on_connect = on_connect
        self._on_event = on_event
        self._subscriptions = subscriptions
        self._connect = connect
        self._connect_timeout = connect_timeout
        self._retry_delay = retry_delay
        self._auth_retry_delay = auth_retry_delay or retry_delay
        self._stable_after = stable_after
        self._event_buffer_size = event_buffer_size
        self._events: _EventBuffer | None = None
        self._state = EslClientState.DISCONNECTED
        self._conn: EslConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_event: asyncio.Event | None = None
        self._connected_event: asyncio.Event | None = None
        self._connected_at = 0.0
        self.connect_count = 0
        self.failures = 0
        self.last_error: BaseException | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def state(self) -> EslClientState:
        return self._state

    @property
    def connection(self) -> EslConnection | None:
        """The live connection, or None while not CONNECTED."""
        return self._conn if self._state is EslClientState.CONNECTED else None

    async def start(self) -> None:
        """Start the background connect/reconnect task (idempotent)."""
        if self._state is EslClientState.CLOSED:
            raise EslConnectionError(f"ESL client {self.name} was stopped")
        if self._task is not None:
            return
        self._stop_event = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._events = _EventBuffer(self._event_buffer_size)
        self._task = asyncio.create_task(self._run(), name=f"esl-client-{self.name}")
        self._task.add_done_callback(self._task_done)

    async def stop(self, *, timeout: float = 2.0) -> None:
        """Close the connection politely (``exit``), stop reconnecting; state becomes CLOSED."""
        if self._state is EslClientState.CLOSED and self._task is None:
            return
        if self._stop_event is not None:
            self._stop_event.set()
        conn = self._conn
        if conn is not None:
            await conn.close(timeout=timeout)
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._conn = None
        self._set_state(EslClientState.CLOSED)
        if self._connected_event is not None:
            self._connected_event.set()  # wake wait_connected(), which then sees CLOSED
        if self._events is not None:
            self._events.close()

    async def __aenter__(self) -> EslClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until CONNECTED; EslTimeout after ``timeout``, EslConnectionError if stopped."""
        if self._connected_event is None:
            raise EslConnectionError(f"ESL client {self.name} not started")
        try:
            async with asyncio.timeout(timeout):
                while self._state is not EslClientState.CONNECTED:
                    if self._state is EslClientState.CLOSED:
                        raise EslConnectionError(f"ESL client {self.name} was stopped")
                    await self._connected_event.wait()
        except TimeoutError:
            raise EslTimeout(f"ESL {self.name} not connected within {timeout}s") from None

    # ----------------------------------------------------------------- commands and events

    def _live(self) -> EslConnection:
        conn = self._conn
        if self._state is not EslClientState.CONNECTED or conn is None or conn.closed:
            raise EslConnectionError(f"ESL {self.name} is not connected ({self._state.value})")
        return conn

    async def api(self, command: str, *, timeout: float = 10.0) -> str:
        """``api`` on the live connection; EslConnectionError at once if there is none."""
        return await self._live().api(command, timeout=timeout)

    async def bgapi(self, command: str, *, timeout: float = 30.0) -> str:
        """``bgapi`` on the live connection; EslConnectionError at once if there is none."""
        return await self._live().bgapi(command, timeout=timeout)

    async def next_event(self, timeout: float | None = None) -> EslEvent:
        if self._events is None:
            raise EslConnectionError(f"ESL client {self.name} not started")
        event = await self._events.get(timeout)
        if event is None:
            raise EslConnectionError(f"ESL client {self.name} was stopped")
        return event

    async def events(self) -> AsyncIterator[EslEvent]:
        """Events from every connection in turn, until :meth:`stop`."""
        if self._events is None:
            raise EslConnectionError(f"ESL client {self.name} not started")
        while True:
            event = await self._events.get(None)
            if event is None:
                return
            yield event

    @property
    def dropped_events(self) -> int:
        return self._events.dropped if self._events is not None else 0

    # ----------------------------------------------------------------- background task

    def _set_state(self, state: EslClientState) -> None:
        if state is not self._state:
            log.debug(
                "esl client state",
                extra={"fields": {"node": self.name, "from": self._state.value, "to": state.value}},
            )
            self._state = state
        if self._connected_event is not None and state is not EslClientState.CLOSED:
            if state is EslClientState.CONNECTED:
                self._connected_event.set()
            else:
                self._connected_event.clear()

    def _deliver(self, event: EslEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("esl on_event callback raised", extra={"fields": {"node": self.name}})
        elif self._events is not None:
            self._events.put(event)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # _run() logs what it can; this catches anything that escaped it.
            log.error(
                "esl client task died",
                extra={"fields": {"node": self.name, "error": repr(exc)}},
            )

    async def _pause(self, delay: float) -> None:
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop_event.wait()

    def _stopping(self) -> bool:
        return self._stop_event is not None and self._stop_event.is_set()

    async def _open(self) -> EslConnection:
        conn: EslConnection | None = None
        try:
            conn = await EslConnection.open(
                self.host,
                self.port,
                self._password,
                timeout=self._connect_timeout,
                on_event=self._deliver,
                connect=self._connect,
            )
            if self._subscriptions:
                await conn.subscribe(*self._subscriptions)
        except BaseException:
            if conn is not None:
                await conn.close(timeout=0.5)
            raise
        return conn

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        refusals = 0  # consecutive auth refusals: logged once, retried slowly
        try:
            while not self._stopping():
                self._set_state(EslClientState.CONNECTING)
                try:
                    conn = await self._open()
                except EslError as exc:
                    self.failures += 1
                    self.last_error = exc
                    self._set_state(EslClientState.DISCONNECTED)
                    if isinstance(exc, EslAuthError):
                        refusals += 1
                        delay = self._auth_retry_delay(refusals)
                        self._log_failure("esl authentication refused", exc, refusals, delay)
                    else:
                        delay = self._retry_delay(self.failures)
                        self._log_failure("esl connect failed", exc, self.failures, delay)
                    await self._pause(delay)
                    continue
                if self.failures:
                    log.info(
                        "esl reachable again",
                        extra={"fields": {"node": self.name, "failed_attempts": self.failures}},
                    )
                refusals = 0
                await self._connected(conn)
                if self._stopping():
                    break
                lived = loop.time() - self._connected_at
                self.failures = 1 if lived >= self._stable_after else self.failures + 1
                self.last_error = conn.close_reason
                self._set_state(EslClientState.DISCONNECTED)
                delay = self._retry_delay(self.failures)
                log.warning(
                    "esl connection lost",
                    extra={
                        "fields": {
                            "node": self.name,
                            "error": str(conn.close_reason),
                            "retry_in": round(delay, 3),
                        }
                    },
                )
                await self._pause(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug, not a network problem: say so loudly and stop, rather than spin.
            self.last_error = exc
            log.exception("esl client task crashed", extra={"fields": {"node": self.name}})
            if self._stop_event is not None:
                self._stop_event.set()
        finally:
            if self._conn is not None and self._conn.closed:
                self._conn = None
            if self._stopping():
                self._set_state(EslClientState.CLOSED)
                if self._connected_event is not None:
                    self._connected_event.set()

    async def _connected(self, conn: EslConnection) -> None:
        """Publish the connection, run the hook, and wait for it to go away."""
        self._connected_at = asyncio.get_running_loop().time()
        self._conn = conn
        self.connect_count += 1
        self._set_state(EslClientState.CONNECTED)
        log.info("esl connected", extra={"fields": {"node": self.name}})
        if self._on_connect is not None:
            await self._run_on_connect(conn)
        await conn.wait_closed()
        self._conn = None

    def _log_failure(self, message: str, exc: EslError, streak: int, delay: float) -> None:
        """The first failure of a streak is a warning; the rest are debug noise (a switch
        that is down for an hour must not write a line per probe)."""
        fields = {"node": self.name, "error": str(exc), "attempt": streak}
        log.log(
            logging.WARNING if streak == 1 else logging.DEBUG,
            message,
            extra={"fields": {**fields, "retry_in": round(delay, 3)}},
        )

    async def _run_on_connect(self, conn: EslConnection) -> None:
        assert self._on_connect is not None
        try:
            await self._on_connect(conn)
        except EslError as exc:
            log.warning(
                "esl on_connect hook failed",
                extra={"fields": {"node": self.name, "error": str(exc)}},
            )
        except Exception:
            log.exception("esl on_connect hook raised", extra={"fields": {"node": self.name}})

    def __repr__(self) -> str:
        return f"<EslClient {self.name} {self._state.value}>"

"""One authenticated inbound ESL socket: the ESL verbs over a wire that does the I/O.

:class:`EslConnection` is what callers hold: ``open`` (banner and ``auth``), ``api``,
``bgapi``, ``subscribe`` (``event plain``), ``command`` and ``close`` (``exit``). Under it,
:class:`_Wire` owns the socket: it writes each command together with queueing its reply future,
reads in one task, feeds the bytes to :class:`.EslFrameParser` and the frames to
:class:`.EslRouter`, and fails every waiter once when the socket goes away. Matching replies
and events is the router's (sans-IO); here is only what needs the socket or the clock.
"""

# Every wait takes an explicit ``timeout=`` that turns into EslTimeout: that is the contract
# callers rely on, so ruff's "use asyncio.timeout instead" advice does not apply here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from reconciler.esl.errors import (
    EslAuthError,
    EslCommandError,
    EslConnectionError,
    EslError,
    EslProtocolError,
    EslTimeout,
    as_connection_error,
)
from reconciler.esl.frames import (
    EslEvent,
    EslFrame,
    EslFrameParser,
    build_event_command,
    check_line,
    format_command,
)
from reconciler.esl.router import (
    API_RESPONSE,
    COMMAND_REPLY,
    EslRouter,
    EventCallback,
    EventSink,
)

__all__ = ["EslConnection", "OpenStream"]

# One logger for the whole ESL client, whichever module logs: operators tune it by this name.
log = logging.getLogger("reconciler.esl")

OpenStream = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Opens the byte stream to a switch: ``asyncio.open_connection(host, port)`` by default."""


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    # Futures we fail on shutdown may have been abandoned by their caller (timeout, cancel):
    # touching the exception keeps asyncio from logging "exception was never retrieved".
    if not fut.cancelled():
        fut.exception()


async def _open_stream(
    host: str, port: int, connect: OpenStream | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        if connect is None:
            return await asyncio.open_connection(host, port)
        return await connect()
    except OSError as exc:
        raise EslConnectionError(f"cannot connect to ESL at {host}:{port}: {exc}") from exc


class _Wire:
    """The socket under one connection: ordered writes, one reader task, one shutdown.

    Each write is a single ``transport.write`` done together with queueing its reply future in
    the router, with no await between, so the wire order and the FIFO order always agree even
    with many tasks writing. Whatever ends the socket (EOF, an OSError, bytes that are not ESL,
    ``abort``) ends it once: ``close_reason`` is set and every waiter fails.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        events: EventSink,
    ) -> None:
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._parser = EslFrameParser()
        banner: asyncio.Future[None] = self.new_future()
        self.router = EslRouter(peer, banner, events)
        self._closed_event = asyncio.Event()
        self.close_reason: EslError | None = None
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"esl-reader-{peer}")

    @property
    def is_shut(self) -> bool:
        """True once the socket side is done (EOF, failure or abort)."""
        return self._closed_event.is_set()

    @property
    def closed(self) -> bool:
        """True once unusable: shut, or a disconnect notice arrived (EOF is yet to come)."""
        return self._closed_event.is_set() or self.router.disconnect_notice

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    def new_future(self) -> asyncio.Future[Any]:
        fut = self._loop.create_future()
        fut.add_done_callback(_consume_exception)
        return fut

    def _send(self, data: str, expect: str) -> asyncio.Future[EslFrame]:
        if self.closed:
            reason = self.close_reason or "disconnect notice received"
            raise EslConnectionError(f"ESL connection to {self.peer} is closed: {reason}")
        fut: asyncio.Future[EslFrame] = self.new_future()
        # No await between queueing and writing: wire order == FIFO order, even with many tasks.
        self.router.expect(fut, expect)
        try:
            self._writer.write(data.encode("utf-8"))
        except (OSError, RuntimeError) as exc:
            err = EslConnectionError(f"write to {self.peer} failed: {exc}")
            self.abort(err)
            raise err from exc
        return fut

    async def request(self, data: str, expect: str, timeout: float | None, verb: str) -> EslFrame:
        """Write ``data`` and wait for its reply frame, which must be of type ``expect``."""
        fut = self._send(data, expect)
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
                return await fut
        except TimeoutError:
            raise EslTimeout(f"no reply to ESL {verb!r} within {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            err = EslConnectionError(f"write to {self.peer} failed: {exc}")
            self.abort(err)
            raise err from exc
        finally:
            if not fut.done():
                fut.cancel()  # keeps its FIFO slot: the late reply will be dropped

    async def _read_loop(self) -> None:
        peer = self.peer
        reason: EslError
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    suffix = " after a disconnect notice" if self.router.disconnect_notice else ""
                    reason = EslConnectionError(f"ESL connection closed by {peer}{suffix}")
                    break
                for headers, body in self._parser.feed(data):
                    self.router.route(headers, body)
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

    def _shutdown(self, reason: EslError) -> None:
        if self._closed_event.is_set():
            return
        self.close_reason = reason
        conn_reason = (
            reason
            if isinstance(reason, EslConnectionError | EslAuthError)
            else as_connection_error(reason)
        )
        self.router.fail_all(conn_reason)
        self.router.events.close()
        self._closed_event.set()
        self._writer.close()

    def abort(self, reason: EslError) -> None:
        """Shut down now, without waiting for the peer to read or close."""
        self._shutdown(reason)
        transport = self._writer.transport
        if not transport.is_closing():
            transport.abort()

    async def finish_reader(self, timeout: float) -> None:
        """Let the reader task end on its own for up to ``timeout``, then cancel it."""
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


class EslConnection:
    """One authenticated inbound ESL socket.

    Commands may be issued from many tasks at once: the wire keeps write order and reply order
    in step, and replies are matched in order. A command whose caller timed out keeps its place
    in the FIFO so that its late reply is discarded instead of being handed to the next caller.

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
        events = EventSink(event_buffer_size, on_event)
        self._wire = _Wire(reader, writer, f"{host}:{port}", events)
        self._router = self._wire.router
        self._subscribe_lock = asyncio.Lock()
        self._closing = False

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
        check_line(password, "password")
        peer = f"{host}:{port}"
        conn: EslConnection | None = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await _open_stream(host, port, connect)
                conn = cls(
                    reader,
                    writer,
                    host,
                    port,
                    on_event=on_event,
                    event_buffer_size=event_buffer_size,
                )
                await conn._router.banner
                reply = await conn._wire.request(
                    f"auth {password}\n\n", COMMAND_REPLY, None, "auth"
                )
        except TimeoutError:
            if conn is not None:
                conn._wire.abort(EslConnectionError(f"ESL handshake with {peer} timed out"))
            raise EslTimeout(f"ESL connect/auth to {peer} timed out after {timeout}s") from None
        except BaseException:
            if conn is not None:
                conn._wire.abort(EslConnectionError(f"ESL handshake with {peer} failed"))
            raise
        if not reply.reply_text.startswith("+OK"):
            conn._wire.abort(EslConnectionError(f"ESL authentication refused by {peer}"))
            # Deliberately not echoing what we sent: it holds the password.
            raise EslAuthError(f"ESL authentication refused by {peer}: {reply.reply_text}")
        log.debug("esl connected", extra={"fields": {"peer": peer}})
        return conn

    @property
    def closed(self) -> bool:
        """True once the socket is unusable (closed, failed, or a disconnect notice arrived)."""
        return self._wire.closed

    @property
    def close_reason(self) -> EslError | None:
        """Why the socket went away; None while it is up."""
        return self._wire.close_reason

    async def wait_closed(self) -> None:
        """Return when the connection has gone away, for whatever reason."""
        await self._wire.wait_closed()

    @property
    def dropped_events(self) -> int:
        return self._router.events.dropped

    async def api(self, command: str, *, timeout: float = 10.0) -> str:
        """Run ``api <command>`` and return the api/response body exactly as sent."""
        check_line(command, "api command")
        frame = await self._wire.request(f"api {command}\n\n", API_RESPONSE, timeout, "api")
        return frame.body

    async def bgapi(
        self, command: str, *, timeout: float = 30.0, job_uuid: str | None = None
    ) -> str:
        """Run ``bgapi <command>`` and return the body of its ``BACKGROUND_JOB`` event.

        The Job-UUID is chosen here (``job_uuid`` if given) and registered before sending, so
        the event is matched even if it overtakes our processing of the command/reply.
        """
        check_line(command, "bgapi command")
        job_id = job_uuid or str(uuid.uuid4())
        check_line(job_id, "Job-UUID")
        try:
            async with asyncio.timeout(timeout):
                if not self._router.receives_jobs:
                    await self._subscribe(("BACKGROUND_JOB",), None, by_user=False)
                job: asyncio.Future[str] = self._wire.new_future()
                self._router.watch_job(job_id, job)
                try:
                    reply = await self._wire.request(
                        f"bgapi {command}\nJob-UUID: {job_id}\n\n", COMMAND_REPLY, None, "bgapi"
                    )
                    if not reply.reply_text.startswith("+OK"):
                        raise EslCommandError(
                            f"bgapi refused: {reply.reply_text}", reply.reply_text
                        )
                    return await job
                finally:
                    self._router.forget_job(job_id)
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
        self, names: tuple[str, ...], timeout: float | None, *, by_user: bool
    ) -> None:
        async with self._subscribe_lock:
            wanted = self._router.subscription_with(names)
            command = build_event_command(wanted)
            reply = await self._wire.request(f"{command}\n\n", COMMAND_REPLY, timeout, "event")
            if not reply.reply_text.startswith("+OK"):
                raise EslCommandError(
                    f"event subscription refused: {reply.reply_text}", reply.reply_text
                )
            self._router.subscribed(wanted, names, by_user=by_user)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return self._router.subscriptions

    async def command(
        self,
        command: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
    ) -> EslFrame:
        """Send a raw command (plus optional headers) and return its command/reply frame."""
        frame = format_command(command, headers)
        verb = command.split(" ", 1)[0]
        return await self._wire.request(frame, COMMAND_REPLY, timeout, verb)

    async def next_event(self, timeout: float | None = None) -> EslEvent:
        """The next buffered event; EslConnectionError once closed and drained."""
        closed = f"ESL connection to {self.host}:{self.port} is closed"
        return await self._router.events.next(timeout, closed=closed)

    async def events(self) -> AsyncIterator[EslEvent]:
        """Iterate over buffered events until the connection closes."""
        while (event := await self._router.events.get(None)) is not None:
            yield event

    async def close(self, *, timeout: float = 2.0) -> None:
        """Say ``exit``, read ``+OK bye`` and the disconnect notice, then close the socket."""
        if self._closing or self._wire.is_shut:
            await self._wire.finish_reader(timeout)
            return
        self._closing = True
        if not self._router.disconnect_notice:
            with contextlib.suppress(EslError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wire.request("exit\n\n", COMMAND_REPLY, None, "exit")
                    await self._wire.wait_closed()  # disconnect notice, then EOF
        self._wire.abort(EslConnectionError(f"ESL connection to {self.host}:{self.port} closed"))
        await self._wire.finish_reader(timeout)

    async def __aenter__(self) -> EslConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<EslConnection {self.host}:{self.port} {state}>"

"""The daemon's HTTP listeners (xml_curl, and the web portal on its own port), bounded.

FreeSWITCH's SIP authentication waits on our answers (one pending fetch stalls the whole
profile), so the listener must keep answering while anyone else connects and stays silent.
aiohttp bounds a request's header sizes and closes idle keep-alive connections, but has no
deadline for the first request of a connection on every supported version, no cap on open
connections, and reads a body as slowly as it is sent. Idle sockets then pile up until the
process runs out of file descriptors (systemd's default is 1,024) and accepting stops.

``ListenerLimits`` holds the bounds; ``start_server`` applies them:

* a connection must deliver a complete request head within ``header_timeout`` of connecting,
  and is closed after ``idle_timeout`` without receiving a byte;
* beyond ``max_connections``, silent connections are closed, least recently active first.
  Silent means no request head ``EVICT_SILENT`` seconds after connecting (or no byte for
  ``EVICT_IDLE`` seconds after a request) and nothing waiting unread in the kernel: a
  FreeSWITCH lookup sends its request right after connecting, so it is never taken for an
  idler even when thousands of connections are accepted before its bytes are read. A
  newcomer is admitted up to a hard cap (half as many again) while no silent connection
  can make room; at the hard cap a silent connection older than ``EVICT_GRACE`` makes room,
  or the newcomer is refused. Both caps, and the accept backlog the event loop may take in
  one burst before the guard sees it, stay within the listener's own share of the
  process's file-descriptor limit (``fd_share``, ``connection_caps``): xml_curl holds at
  most half, the portal a quarter, and the last quarter stays for PostgreSQL, the event
  sockets and files, so no flood of one listener can take what the other or a pass needs;
* aiohttp's own keep-alive timeout, lingering time and header limits come from the same
  value; ``reconciler.serve.xmlcurl_app`` applies ``max_body_bytes`` and ``body_timeout`` to
  xml_curl. A listener with ``long_requests`` (the portal: server-sent event streams)
  reads every body within ``body_timeout`` before its handler runs, and a connection
  whose request is still being answered is neither idle-closed nor evicted;
* with ``max_per_address``, one client address holds at most that many connections (the
  portal: one flooder cannot fill the cap for everyone; xml_curl has none, a switch opens
  many);
* with TLS the handshake runs inside the guard (``loop.start_tls``), so a connection that
  never finishes it is counted, capped and timed out like one that never sends a head;
* aiohttp's "Error handling request" lines (one per bad request, with a traceback) go
  through a ``LogThrottle``; a client's malformed HTTP is one short line, no traceback.

A port that cannot be bound raises ``ListenerUnavailable``: one line naming the listener,
the address and the setting that changes it. The guard wraps aiohttp's protocol
(forwarding the ``asyncio.Protocol`` calls), so it needs nothing private from aiohttp.

Neighbours: ``reconciler.serve.xmlcurl_app`` (the application served), ``reconciler.daemon`` (calls
``start_server`` for each listener and ``runner.cleanup()`` at shutdown).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import os
import socket
import ssl
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from reconciler.core.errors import Permanent
from reconciler.serve.logthrottle import LogThrottle

log = logging.getLogger(__name__)

EVICT_SILENT = 0.05  # seconds without a request head after which a connection may be evicted
EVICT_GRACE = 0.005  # ... at the hard cap: only one accepted in the same burst is spared
EVICT_IDLE = 1.0  # seconds without a byte (after a request) after which it may be evicted
EVICT_SCAN = 32  # least recently active connections looked at for one to evict at admission
SWEEP_INTERVAL = 0.5
MAX_BACKLOG = 1024  # a deep accept queue: a burst of idle connects must not crowd out lookups
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """Bounds of one listener. Defaults suit xml_curl: FreeSWITCH's largest captured body is
    ~6 KB and it opens one connection per fetch."""

    max_body_bytes: int = 64 * 1024  # larger: 413
    header_timeout: float = 5.0  # connect -> complete request head
    body_timeout: float = 5.0  # request head -> complete body (408 after)
    keepalive_timeout: float = 15.0  # between requests on a kept-alive connection
    max_connections: int = 512
    max_header_field_bytes: int = 8190
    fd_share: float = 0.5  # of the process's file-descriptor limit, at most
    max_per_address: int = 0  # open connections of one client address (0: no limit)
    long_requests: bool = False  # answers may outlast idle_timeout (event streams)

    @property
    def idle_timeout(self) -> float:
        """No byte for this long closes a connection that has sent a request."""
        return self.keepalive_timeout + self.body_timeout


class ConnectionCaps(NamedTuple):
    """How many connections one listener holds: beyond ``cap`` silent ones are trimmed, at
    ``hard`` newcomers are refused; the kernel queues up to ``backlog`` more, which the
    event loop may accept in one burst before the guard sees any of them."""

    cap: int
    hard: int
    backlog: int


def connection_caps(limits: ListenerLimits) -> ConnectionCaps:
    """``max_connections``, half as many again, and a backlog of 1,024; all lowered so that
    one listener never holds more than its ``fd_share`` of the file descriptors this
    process may open (the rest is for the database, the event sockets, the other
    listener, files)."""
    cap = limits.max_connections
    hard = cap + cap // 2
    backlog = MAX_BACKLOG
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return ConnectionCaps(cap, hard, backlog)
    if soft == resource.RLIM_INFINITY:
        return ConnectionCaps(cap, hard, backlog)
    budget = max(64, int(soft * limits.fd_share))
    backlog = min(backlog, budget // 4)
    if hard + backlog > budget:
        hard = budget - backlog
        cap = min(cap, hard * 2 // 3)
    return ConnectionCaps(cap, hard, backlog)


class ListenerUnavailable(Permanent):
    """A listener's address cannot be bound (taken, not local, no permission)."""


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    limits: ListenerLimits | None = None,
    *,
    reuse_address: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    what: str = "listener",
    shutdown_timeout: float = 60.0,
    sock: socket.socket | None = None,
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` within ``limits``; stop it with ``runner.cleanup()``.
    The bound port (for ``port=0``) is ``bound_port(runner)``. ``what`` names the listener
    and the setting that moves it in a ``ListenerUnavailable``. ``sock``: an already bound
    and listening socket to serve instead (an xml_curl worker's, inherited from ``pbx run``)."""
    limits = limits or ListenerLimits()
    in_flight: set[asyncio.BaseTransport] = set()
    if limits.long_requests:
        app.middlewares.insert(0, _bounded_request(limits, in_flight))
    server_log = ThrottledLogger(log, "errors handling requests")
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.keepalive_timeout,
        lingering_time=min(1.0, limits.body_timeout),
        max_field_size=limits.max_header_field_bytes,
        max_line_size=limits.max_header_field_bytes,
        logger=server_log,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    site = GuardedSite(
        runner, host, port, limits, reuse_address=reuse_address, ssl_context=ssl_context
    )
    site.sock = sock
    site.in_flight = in_flight
    site.server_log = server_log
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        shown = f"[{host}]" if ":" in host else host
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenerUnavailable(f"{what}: cannot listen on {shown}:{port}: {reason}") from exc
    except BaseException:
        await runner.cleanup()
        raise
    cap = connection_caps(limits).cap
    if cap < limits.max_connections:
        log.warning(
            "listener %s: connection cap lowered from %d to %d by the file-descriptor limit "
            "(raise LimitNOFILE)",
            site.name,
            limits.max_connections,
            cap,
        )
    return runner


def bound_port(runner: web.AppRunner) -> int | None:
    """The port the runner listens on (None before it started)."""
    for address in runner.addresses:
        return int(address[1])
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bounded_request(limits: ListenerLimits, in_flight: set[asyncio.BaseTransport]) -> Middleware:
    """The body within ``body_timeout`` (a form or JSON body is then read from memory), and
    the connection marked busy while its answer runs (an event stream is not idle)."""

    @web.middleware
    async def bounded_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            in_flight.add(transport)
        try:
            if _body_pending(request):
                try:
                    async with asyncio.timeout(limits.body_timeout):
                        await request.read()
                except TimeoutError:
                    response = web.Response(status=408, text="request body too slow\n")
                    response.force_close()
                    return response
            return await handler(request)
        finally:
            if transport is not None:
                in_flight.discard(transport)

    return bounded_request


def _body_pending(request: web.Request) -> bool:
    if not request.body_exists or request.content.is_eof():
        return False
    return not request.content_type.startswith("multipart/")  # read as a stream


class ThrottledLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger for one listener: "Error handling request" comes once per
    bad request, so a flood of them is bounded like every other line a peer causes. A
    client's malformed HTTP is its own fault: one line, its text shortened, no traceback."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        super().__init__(logger, {})
        self._throttle = LogThrottle(logger, what)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        exc_info = kwargs.pop("exc_info", None)
        if level < logging.WARNING:
            self.logger.log(level, msg, *args, exc_info=exc_info, **kwargs)
            return
        if isinstance(exc_info, HttpProcessingError):
            detail = ascii(exc_info.message)[:120]
            shown = f"{msg}: {exc_info.code} {type(exc_info).__name__} %s"
            self._throttle.log(level, shown, *args, detail)
            return
        self._throttle.log(level, str(msg), *args, exc_info=exc_info)

    def flush(self) -> None:
        self._throttle.flush()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a ``ConnectionGuard``."""

    __slots__ = (
        "_guard",
        "_host",
        "_limits",
        "_port",
        "_reuse_address",
        "in_flight",
        "server_log",
        "sock",
    )

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        limits: ListenerLimits,
        *,
        reuse_address: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, backlog=connection_caps(limits).backlog, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limits = limits
        self._reuse_address = reuse_address
        self._guard: ConnectionGuard | None = None
        self.in_flight: set[asyncio.BaseTransport] = set()
        self.server_log: ThrottledLogger | None = None
        self.sock: socket.socket | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def port(self) -> int | None:
        sockets = getattr(self._server, "sockets", None)  # asyncio's and uvloop's servers
        if sockets:
            return int(sockets[0].getsockname()[1])
        return self._port

    @property
    def guard(self) -> ConnectionGuard | None:
        return self._guard

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None  # set by runner.setup()
        guard = ConnectionGuard(server, self._limits, loop, self.in_flight, self._ssl_context)
        if self.sock is not None:
            self._server = await loop.create_server(
                guard.protocol, sock=self.sock, backlog=self._backlog
            )
        else:
            self._server = await loop.create_server(
                guard.protocol,
                self._host,
                self._port,
                backlog=self._backlog,
                reuse_address=self._reuse_address,
            )
        guard.start()
        self._guard = guard

    async def stop(self) -> None:
        if self._guard is not None:
            self._guard.stop()
        if self.server_log is not None:
            self.server_log.flush()
        await super().stop()


class ConnectionGuard:
    """Tracks every open connection of one listener, least recently active first."""

    def __init__(
        self,
        make_handler: Callable[[], asyncio.Protocol],
        limits: ListenerLimits,
        loop: asyncio.AbstractEventLoop,
        in_flight: set[asyncio.BaseTransport] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._make_handler = make_handler
        self._limits = limits
        self._loop = loop
        self.in_flight = in_flight if in_flight is not None else set()
        self.tls = tls
        self.cap, self.hard_cap, _backlog = connection_caps(limits)
        # insertion order = least recently active first (moved to the end on each read)
        self._open: dict[GuardedConnection, None] = {}
        self._per_address: dict[str, int] = {}  # open connections by peer address
        self._sweeper: asyncio.TimerHandle | None = None
        self._trimmer: asyncio.TimerHandle | None = None
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self._log = LogThrottle(log, "connection limit events")

    @property
    def open_count(self) -> int:
        return len(self._open)

    def protocol(self) -> asyncio.Protocol:
        """The protocol factory handed to ``loop.create_server``."""
        return GuardedConnection(self, self._make_handler())

    def start(self) -> None:
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def stop(self) -> None:
        for timer in (self._sweeper, self._trimmer):
            if timer is not None:
                timer.cancel()
        self._sweeper = self._trimmer = None
        self._log.flush()

    def now(self) -> float:
        return self._loop.time()

    @property
    def limits(self) -> ListenerLimits:
        return self._limits

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def busy(self, connection: GuardedConnection) -> bool:
        """A request on it is still being answered (listeners with ``long_requests``)."""
        return connection.transport in self.in_flight

    def admit(self, connection: GuardedConnection) -> bool:
        """Register a new connection; False when it must be closed (at the hard cap with
        no silent connection to make room, or its address holds ``max_per_address``)."""
        if self._limits.max_per_address and not self._admit_address(connection):
            return False
        count = len(self._open)
        if count >= self.cap:
            at_hard_cap = count >= self.hard_cap
            victim = self._silent_one(EVICT_GRACE if at_hard_cap else EVICT_SILENT)
            if victim is not None:
                self._evict(victim)
            elif at_hard_cap:
                self.refused += 1
                self._log.log(logging.WARNING, "listener at %d connections: refused one", count)
                self._release_address(connection)
                return False
            elif self._trimmer is None:
                self._trimmer = self._loop.call_later(EVICT_SILENT, self._trim)
        self._open[connection] = None
        return True

    def _silent_one(self, grace: float = EVICT_SILENT) -> GuardedConnection | None:
        """Among the least recently active, one that may be evicted, or None."""
        now = self.now()
        for index, candidate in enumerate(self._open):
            if index >= EVICT_SCAN:
                return None
            if candidate.silent(now, grace) and not self.busy(candidate):
                return candidate
        return None

    def _evict(self, victim: GuardedConnection) -> None:
        self.evicted += 1
        self._log.log(
            logging.WARNING, "listener over %d connections: closed a silent one", self.cap
        )
        self._forget(victim)
        victim.close()

    def _trim(self) -> None:
        """Back to the cap: close silent connections, least recently active first."""
        self._trimmer = None
        while len(self._open) > self.cap:
            victim = self._silent_one()
            if victim is None:
                self._trimmer = self._loop.call_later(EVICT_SILENT, self._trim)
                return
            self._evict(victim)

    def touch(self, connection: GuardedConnection) -> None:
        if connection in self._open:
            del self._open[connection]
            self._open[connection] = None

    def _admit_address(self, connection: GuardedConnection) -> bool:
        held = self._per_address.get(connection.peer, 0)
        if held >= self._limits.max_per_address:
            self.refused += 1
            self._log.log(
                logging.WARNING, "an address holds %d connections: refused one more", held
            )
            return False
        self._per_address[connection.peer] = held + 1
        return True

    def _release_address(self, connection: GuardedConnection) -> None:
        if self._limits.max_per_address:
            held = self._per_address.pop(connection.peer, 0) - 1
            if held > 0:
                self._per_address[connection.peer] = held

    def _forget(self, connection: GuardedConnection) -> None:
        if self._open.pop(connection, False) is None:  # it was open: it counted
            self._release_address(connection)

    def closed(self, connection: GuardedConnection) -> None:
        self._forget(connection)

    def _sweep(self) -> None:
        now = self.now()
        limits = self._limits
        expired = [
            c
            for c in self._open
            if (not c.head_seen and now - c.opened_at > limits.header_timeout)
            or (c.head_seen and now - c.active_at > limits.idle_timeout and not self.busy(c))
        ]
        for connection in expired:
            self.timed_out += 1
            self._forget(connection)
            connection.close()
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard's bookkeeping around it. With
    TLS, the guard's protocol is the one the TLS layer decrypts for (``loop.start_tls``)."""

    __slots__ = (
        "_early",
        "_guard",
        "_handshake",
        "_inner",
        "_inner_made",
        "_tail",
        "active_at",
        "head_seen",
        "opened_at",
        "peer",
        "transport",
    )

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._inner_made = False
        self._early: list[bytes] = []
        self._handshake: asyncio.Task[None] | None = None
        self._tail = b""
        self.transport: asyncio.Transport | None = None
        self.head_seen = False
        self.peer = ""  # the client's address, when the listener counts them
        self.opened_at = self.active_at = guard.now()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP server's are
        if self._guard.limits.max_per_address:
            peer = transport.get_extra_info("peername")
            self.peer = str(peer[0]) if peer else ""
        if not self._guard.admit(self):
            self.transport.abort()  # aiohttp never hears of it: no task, no timers
        elif self._guard.tls is None:
            self._inner_made = True
            self._inner.connection_made(transport)
        else:
            self.transport.pause_reading()  # not a byte before the TLS layer takes over
            self._handshake = self._guard.loop.create_task(self._start_tls(self.transport))

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        """The handshake within ``header_timeout``; then aiohttp gets the decrypted side."""
        guard = self._guard
        assert guard.tls is not None
        try:
            tls = await guard.loop.start_tls(
                raw,
                self,
                guard.tls,
                server_side=True,
                ssl_handshake_timeout=guard.limits.header_timeout,
            )
        except Exception:  # a failed or timed-out handshake: nothing to answer
            guard.closed(self)
            raw.abort()
            return
        if tls is None or tls.is_closing():
            guard.closed(self)
            return
        self.transport = tls
        self._inner_made = True
        self._inner.connection_made(tls)
        early, self._early = self._early, []
        for data in early:  # decrypted before this task resumed
            self._inner.data_received(data)

    def data_received(self, data: bytes) -> None:
        guard = self._guard
        self.active_at = guard.now()
        if not self.head_seen:
            seen = self._tail + data if self._tail else data
            if _HEAD_END in seen:
                self.head_seen = True
                self._tail = b""
            else:
                self._tail = seen[-3:]
        guard.touch(self)
        if self._inner_made:
            self._inner.data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner_made else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.closed(self)
        if self._inner_made:
            self._inner_made = False
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner_made:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner_made:
            self._inner.resume_writing()

    def silent(self, now: float, grace: float) -> bool:
        """Nothing from the peer: no request head ``grace`` seconds after connecting (or no
        byte for ``EVICT_IDLE`` after one), not even bytes still unread in the kernel."""
        if self.head_seen:
            quiet = now - self.active_at >= EVICT_IDLE
        else:
            quiet = now - self.opened_at >= grace
        return quiet and not self._bytes_waiting()

    def _bytes_waiting(self) -> bool:
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is None:
            return False
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, waiting, True)
        except (OSError, ValueError):
            return False
        return waiting[0] > 0

    def close(self) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.cancel()
        if self.transport is not None:
            self.transport.abort()

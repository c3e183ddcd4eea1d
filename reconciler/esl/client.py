"""One node kept connected: :class:`EslClient` and the loop that reconnects it.

:class:`EslClient` is the lifecycle callers see (an explicit :class:`EslClientState`, ``start``,
``stop``, ``api``, events that outlive each connection). :class:`_Reconnector` is the loop
behind it and the only code that counts failures and decides how long to wait: it asks the
injected ``retry_delay`` / ``auth_retry_delay`` and logs an outage once per streak. How the
socket is opened and how long to wait are the caller's; this module knows ESL, not retry
strategy. Neighbours: :mod:`.connection` (one socket), :mod:`.router` (event buffer).
"""

# Every wait takes an explicit ``timeout=`` that turns into EslTimeout: that is the contract
# callers rely on, so ruff's "use asyncio.timeout instead" advice does not apply here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

from reconciler.esl.connection import EslConnection, OpenStream
from reconciler.esl.errors import EslAuthError, EslConnectionError, EslError, EslTimeout
from reconciler.esl.frames import EslEvent, build_event_command, check_line
from reconciler.esl.router import EventCallback, EventSink

__all__ = ["EslClient", "EslClientState", "OnConnect", "RetryDelay"]

# One logger for the whole ESL client, whichever module logs: operators tune it by this name.
log = logging.getLogger("reconciler.esl")

OnConnect = Callable[[EslConnection], Awaitable[None]]
RetryDelay = Callable[[int], float]
"""Seconds to wait before the next connect attempt, given the consecutive failures so far
(1 after the first failure). Injected: the caller owns the retry strategy and its jitter."""


class EslClientState(enum.Enum):
    """DISCONNECTED → CONNECTING → CONNECTED → DISCONNECTED ... until ``stop()``: CLOSED.

    Explicit so that callers (and ``wait_connected``) ask one question instead of inferring
    the state from which attributes happen to be set."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


def _one_second(failures: int) -> float:
    """The default pause between attempts: callers inject their own jittered policy."""
    return 1.0


def _guarded_task(run: Coroutine[Any, Any, None], *, node: str) -> asyncio.Task[None]:
    """Start the client's background task, named, so that its unexpected death is logged
    (the loop logs what it can; this catches anything that escaped it) instead of lost."""

    def died(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("esl client task died", extra={"fields": {"node": node, "error": repr(exc)}})

    task = asyncio.create_task(run, name=f"esl-client-{node}")
    task.add_done_callback(died)
    return task


class _Reconnector:
    """The background loop of one :class:`EslClient`: connect, subscribe, run the hook, wait
    for the connection to end, count and log, pause, again, until stopped.

    Apart from the client so that the client is its public lifecycle and this is the one place
    that counts failures (as the :class:`EslClient` docstring says) and picks the delays.
    """

    def __init__(
        self,
        name: str,
        dial: Callable[[], Awaitable[EslConnection]],
        *,
        subscriptions: tuple[str, ...],
        on_connect: OnConnect | None,
        publish: Callable[[EslConnection | None], None],
        set_state: Callable[[EslClientState], None],
        retry_delay: RetryDelay,
        auth_retry_delay: RetryDelay,
        stable_after: float,
    ) -> None:
        self._name = name
        self._dial = dial
        self._subscriptions = subscriptions
        self._on_connect = on_connect
        self._publish = publish
        self._set_state = set_state
        self._retry_delay = retry_delay
        self._auth_retry_delay = auth_retry_delay
        self._stable_after = stable_after
        self._refusals = 0  # consecutive auth refusals: logged once, retried slowly
        self.failures = 0
        self.last_error: BaseException | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, hold, reconnect until ``stop`` is set; a bug stops the loop, loudly."""
        try:
            while not stop.is_set():
                conn = await self._attempt(stop)
                if conn is not None:
                    await self._hold(conn, stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug, not a network problem: say so loudly and stop, rather than spin.
            self.last_error = exc
            log.exception("esl client task crashed", extra={"fields": {"node": self._name}})
            stop.set()

    async def _attempt(self, stop: asyncio.Event) -> EslConnection | None:
        """One connect; a failure is counted, logged and waited out, and gives None."""
        self._set_state(EslClientState.CONNECTING)
        try:
            return await self._open()
        except EslError as exc:
            await self._pause(self._failed(exc), stop)
            return None

    def _failed(self, exc: EslError) -> float:
        """Count and log a failed connect; return how long to wait before the next one."""
        self.failures += 1
        self.last_error = exc
        self._set_state(EslClientState.DISCONNECTED)
        if isinstance(exc, EslAuthError):
            self._refusals += 1
            delay = self._auth_retry_delay(self._refusals)
            self._log_failure("esl authentication refused", exc, self._refusals, delay)
        else:
            delay = self._retry_delay(self.failures)
            self._log_failure("esl connect failed", exc, self.failures, delay)
        return delay

    async def _hold(self, conn: EslConnection, stop: asyncio.Event) -> None:
        """Serve ``conn`` until it goes away; unless stopping, count that and wait."""
        if self.failures:
            log.info(
                "esl reachable again",
                extra={"fields": {"node": self._name, "failed_attempts": self.failures}},
            )
        self._refusals = 0
        loop = asyncio.get_running_loop()
        connected_at = loop.time()
        await self._serve(conn)
        if stop.is_set():
            return
        lived = loop.time() - connected_at
        self.failures = 1 if lived >= self._stable_after else self.failures + 1
        self.last_error = conn.close_reason
        self._set_state(EslClientState.DISCONNECTED)
        delay = self._retry_delay(self.failures)
        log.warning(
            "esl connection lost",
            extra={
                "fields": {
                    "node": self._name,
                    "error": str(conn.close_reason),
                    "retry_in": round(delay, 3),
                }
            },
        )
        await self._pause(delay, stop)

    async def _open(self) -> EslConnection:
        """Connect, authenticate and subscribe; a half-opened connection is closed again."""
        conn: EslConnection | None = None
        try:
            conn = await self._dial()
            if self._subscriptions:
                await conn.subscribe(*self._subscriptions)
        except BaseException:
            if conn is not None:
                await conn.close(timeout=0.5)
            raise
        return conn

    async def _serve(self, conn: EslConnection) -> None:
        """Publish the connection, run the hook, and wait for it to go away."""
        self._publish(conn)
        log.info("esl connected", extra={"fields": {"node": self._name}})
        if self._on_connect is not None:
            await self._run_on_connect(self._on_connect, conn)
        await conn.wait_closed()
        self._publish(None)

    async def _run_on_connect(self, on_connect: OnConnect, conn: EslConnection) -> None:
        try:
            await on_connect(conn)
        except EslError as exc:
            log.warning(
                "esl on_connect hook failed",
                extra={"fields": {"node": self._name, "error": str(exc)}},
            )
        except Exception:
            log.exception("esl on_connect hook raised", extra={"fields": {"node": self._name}})

    @staticmethod
    async def _pause(delay: float, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()

    def _log_failure(self, message: str, exc: EslError, streak: int, delay: float) -> None:
        """The first failure of a streak is a warning; the rest are debug noise (a switch
        that is down for an hour must not write a line per probe)."""
        fields = {"node": self._name, "error": str(exc), "attempt": streak}
        log.log(
            logging.WARNING if streak == 1 else logging.DEBUG,
            message,
            extra={"fields": {**fields, "retry_in": round(delay, 3)}},
        )


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
        check_line(password, "password")
        if wanted := tuple(subscriptions):
            build_event_command(wanted)  # fail fast on bad names, not in the background
        self.host = host
        self.port = port
        self.name = name or f"{host}:{port}"
        # One sink for every connection in turn: events outlive reconnects.
        self._events = EventSink(event_buffer_size, on_event, log_fields={"node": self.name})
        dial = functools.partial(
            EslConnection.open,
            host,
            port,
            password,
            timeout=connect_timeout,
            on_event=self._events.deliver,
            connect=connect,
        )
        self._reconnector = _Reconnector(
            self.name,
            dial,
            subscriptions=wanted,
            on_connect=on_connect,
            publish=self._publish,
            set_state=self._set_state,
            retry_delay=retry_delay,
            auth_retry_delay=auth_retry_delay or retry_delay,
            stable_after=stable_after,
        )
        self._state = EslClientState.DISCONNECTED
        self._conn: EslConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_event: asyncio.Event | None = None
        self._connected_event: asyncio.Event | None = None
        self.connect_count = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def state(self) -> EslClientState:
        return self._state

    @property
    def connection(self) -> EslConnection | None:
        """The live connection, or None while not CONNECTED."""
        return self._conn if self._state is EslClientState.CONNECTED else None

    @property
    def failures(self) -> int:
        """Consecutive failures so far (see the class docstring)."""
        return self._reconnector.failures

    @property
    def last_error(self) -> BaseException | None:
        """Why the last attempt failed or the last connection ended."""
        return self._reconnector.last_error

    async def start(self) -> None:
        """Start the background connect/reconnect task (idempotent)."""
        if self._state is EslClientState.CLOSED:
            raise EslConnectionError(f"ESL client {self.name} was stopped")
        if self._task is not None:
            return
        self._stop_event = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._task = _guarded_task(self._run(self._stop_event), node=self.name)

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
        if self._stop_event is None:
            raise EslConnectionError(f"ESL client {self.name} not started")
        return await self._events.next(timeout, closed=f"ESL client {self.name} was stopped")

    async def events(self) -> AsyncIterator[EslEvent]:
        """Events from every connection in turn, until :meth:`stop`."""
        if self._stop_event is None:
            raise EslConnectionError(f"ESL client {self.name} not started")
        while (event := await self._events.get(None)) is not None:
            yield event

    @property
    def dropped_events(self) -> int:
        return self._events.dropped

    # ----------------------------------------------------------------- background task

    def _set_state(self, state: EslClientState) -> None:
        if state is not self._state:
            log.debug(
                "esl client state",
                extra={"fields": {"node": self.name, "from": self._state.value, "to": state.value}},
            )
            self._state = state
        if self._connected_event is not None:
            # wait_connected() sleeps on this: wake it at CONNECTED, and at CLOSED to give up.
            if state in (EslClientState.CONNECTED, EslClientState.CLOSED):
                self._connected_event.set()
            else:
                self._connected_event.clear()

    def _publish(self, conn: EslConnection | None) -> None:
        """The reconnector hands over each new connection, and None once it is gone."""
        self._conn = conn
        if conn is not None:
            self.connect_count += 1
            self._set_state(EslClientState.CONNECTED)

    async def _run(self, stop: asyncio.Event) -> None:
        """The background task: the reconnect loop, then tidy up whatever ended it."""
        try:
            await self._reconnector.run(stop)
        finally:
            if self._conn is not None and self._conn.closed:
                self._conn = None
            if stop.is_set():
                self._set_state(EslClientState.CLOSED)

    def __repr__(self) -> str:
        return f"<EslClient {self.name} {self._state.value}>"

"""Where each ESL frame goes, sans-IO: replies to the requests waiting for them, events out.

Wire facts this relies on (shared/freeswitch/REFERENCE.md and the ESL transcripts):

* The switch answers ``command/reply`` (auth, bgapi, event, exit) and ``api/response`` frames
  strictly in the order the commands were sent, one answer per command, so replies are matched
  to a FIFO of waiting futures. ``text/event-plain`` events may be interleaved anywhere.
* ``auth/request`` is the banner on connect; ``text/rude-rejection`` replaces it when the ESL
  ACL refuses the peer; ``text/disconnect-notice`` precedes the server closing the socket.

The router reads, writes and awaits nothing: the connection registers a future before writing
each command (:meth:`EslRouter.expect`) and hands it every parsed frame
(:meth:`EslRouter.route`). So the matching is tested frame by frame from the transcripts, and
the connection (:mod:`.connection`) is left with the socket.
"""

# The event buffer's waits take an explicit ``timeout=`` that turns into EslTimeout: that is
# the contract callers rely on, so ruff's "use asyncio.timeout instead" does not apply here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, cast

from reconciler.esl.errors import (
    EslAuthError,
    EslConnectionError,
    EslError,
    EslProtocolError,
    EslTimeout,
    copy_error,
)
from reconciler.esl.frames import EslEvent, EslFrame, decode, parse_event_plain

__all__ = [
    "API_RESPONSE",
    "AUTH_REQUEST",
    "COMMAND_REPLY",
    "DISCONNECT_NOTICE",
    "EVENT_PLAIN",
    "RUDE_REJECTION",
    "EslRouter",
    "EventCallback",
    "EventSink",
]

# One logger for the whole ESL client, whichever module logs: operators tune it by this name.
log = logging.getLogger("reconciler.esl")

AUTH_REQUEST: Final = "auth/request"
COMMAND_REPLY: Final = "command/reply"
API_RESPONSE: Final = "api/response"
EVENT_PLAIN: Final = "text/event-plain"
DISCONNECT_NOTICE: Final = "text/disconnect-notice"
RUDE_REJECTION: Final = "text/rude-rejection"
_JOB_SUBSCRIPTIONS: Final = ("BACKGROUND_JOB", "ALL")

EventCallback = Callable[[EslEvent], None]

_CLOSED: Final = object()


class EventSink:
    """Where events go: the user's ``on_event`` callback when given, else a bounded buffer.

    Events are handed over in the reader, which must never block or die because of a consumer:
    a reader that waits stops draining the socket, and the switch kills a listener that falls
    500 events behind. So a raising callback is logged, and a full buffer drops (and counts).
    """

    def __init__(
        self,
        limit: int,
        on_event: EventCallback | None = None,
        *,
        log_fields: Mapping[str, str] | None = None,
    ) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._limit = limit
        self._on_event = on_event
        self._extra = {"fields": dict(log_fields)} if log_fields else None
        self._closed = False
        self.dropped = 0

    def deliver(self, event: EslEvent) -> None:
        if self._on_event is None:
            self._put(event)
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("esl on_event callback raised", extra=self._extra)

    def _put(self, event: EslEvent) -> None:
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

    async def next(self, timeout: float | None, *, closed: str) -> EslEvent:
        """Next event; EslConnectionError(``closed``) once closed and drained."""
        event = await self.get(timeout)
        if event is None:
            raise EslConnectionError(closed)
        return event


class EslRouter:
    """Matches reply frames to waiting requests in order, correlates background jobs, and
    delivers every other event to ``events``.

    A request whose caller gave up (its future is done) keeps its FIFO slot, so its late reply
    is dropped instead of being handed to the next caller. ``BACKGROUND_JOB`` events nobody
    asked for are dropped too, unless the user subscribed to them: a connection subscribes on
    its own when ``bgapi`` needs the results, and must not flood its user with other jobs'.
    """

    def __init__(
        self,
        peer: str,
        banner: asyncio.Future[None],
        events: EventSink,
    ) -> None:
        self.peer = peer
        self.banner = banner
        self.events = events
        self._pending: deque[tuple[asyncio.Future[EslFrame], str]] = deque()
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._subscribed: list[str] = []
        self._deliver_bg_jobs = False
        self.disconnect_notice = False

    # ----------------------------------------------------------------- requests

    def expect(self, reply: asyncio.Future[EslFrame], content_type: str) -> None:
        """Queue the waiter for the command about to be written (same order as the wire)."""
        self._pending.append((reply, content_type))

    def watch_job(self, job_uuid: str, result: asyncio.Future[str]) -> None:
        """Route the ``BACKGROUND_JOB`` event with this Job-UUID to ``result``.

        Registered before the bgapi is sent: the event may overtake its command/reply."""
        self._jobs[job_uuid] = result

    def forget_job(self, job_uuid: str) -> None:
        self._jobs.pop(job_uuid, None)

    # ----------------------------------------------------------------- subscriptions

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return tuple(self._subscribed)

    @property
    def receives_jobs(self) -> bool:
        """Whether the switch already sends us ``BACKGROUND_JOB`` events."""
        return any(name in self._subscribed for name in _JOB_SUBSCRIPTIONS)

    def subscription_with(self, names: tuple[str, ...]) -> list[str]:
        """Everything subscribed so far plus ``names``: the switch gets the full set each time."""
        wanted = [*self._subscribed]
        for name in names:
            for token in name.split():
                if token not in wanted:
                    wanted.append(token)
        return wanted

    def subscribed(self, wanted: list[str], names: tuple[str, ...], *, by_user: bool) -> None:
        """Record an accepted subscription; ``by_user``: ``names`` were asked for by the user."""
        self._subscribed = wanted
        if by_user and any(t in _JOB_SUBSCRIPTIONS for n in names for t in n.split()):
            self._deliver_bg_jobs = True

    # ----------------------------------------------------------------- frames

    def route(self, headers: dict[str, str], body: bytes) -> None:
        """Take one frame; EslProtocolError when it is a reply nobody asked for (desync)."""
        ctype = headers.get("Content-Type", "")
        if ctype in (COMMAND_REPLY, API_RESPONSE):
            self._reply(ctype, EslFrame(MappingProxyType(headers), decode(body)))
        elif ctype == EVENT_PLAIN:
            self._event(parse_event_plain(body))
        elif ctype == AUTH_REQUEST:
            if not self.banner.done():
                self.banner.set_result(None)
        elif ctype == DISCONNECT_NOTICE:
            self.disconnect_notice = True
            self.fail_all(
                EslConnectionError(
                    f"ESL peer {self.peer} sent a disconnect notice: {decode(body).strip()!r}"
                )
            )
        elif ctype == RUDE_REJECTION:
            err = EslAuthError(f"ESL peer {self.peer} rejected us (ACL): {decode(body).strip()}")
            if not self.banner.done():
                self.banner.set_exception(err)
            self.fail_all(err)
        else:
            log.debug("esl frame ignored", extra={"fields": {"content_type": ctype}})

    def _reply(self, ctype: str, frame: EslFrame) -> None:
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

    def _event(self, event: EslEvent) -> None:
        if event.name == "BACKGROUND_JOB":
            job = self._jobs.get(event.headers.get("Job-UUID", ""))
            if job is not None:
                if not job.done():
                    job.set_result(event.body)
                return
            if not self._deliver_bg_jobs:
                return  # another client's job, seen only because bgapi() subscribed us
        self.events.deliver(event)

    def fail_all(self, reason: EslError) -> None:
        """Fail every waiter (replies, jobs, the banner) with its own copy of ``reason``."""
        while self._pending:
            fut, _ = self._pending.popleft()
            if not fut.done():
                fut.set_exception(copy_error(reason))
        for job in self._jobs.values():
            if not job.done():
                job.set_exception(copy_error(reason))
        if not self.banner.done():
            self.banner.set_exception(copy_error(reason))

"""mod_voicemail on every node, for the portal and the leader's retention: the
``VoicemailBoxes`` the rest of the daemon is given.

Each node's ``VoicemailEngine`` rides the EVENTS lane of the node's ``NodeSession`` (its few
``vm_*`` commands are quick reads and single-row changes, never a bulk push) and runs on
every daemon (``Runs.EVERY_DAEMON``: each serves its own portal). It subscribes to
``MESSAGE_WAITING`` and ``vm::maintenance``: mod_voicemail fires both when a message is left,
heard or deleted (``update_mwi``), and every one moves ``version``, which the portal's live
pages wait on. Each node keeps its boxes' listings (``ListingCache``): an event naming a box
drops that box's listing before ``version`` moves, so a live page re-listing after an event
never reads the listing the event made old; concurrent readers of one box share one
``vm_list``.

mod_voicemail's ``vm_read`` and ``vm_delete`` act on a message id alone, whatever box the
command names (``mod_voicemail.c``: ``... where uuid='%q'``), so a change is made only after
listing the box on that node shows the id in it: an id of another box, or of another
tenant's, is never changed. That check never reads the cache: it sends its own ``vm_list``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reconciler.core.voicemail_box import (
    NoSuchMessage,
    VoicemailBoxes,
    VoicemailMessage,
    VoicemailRefused,
    VoicemailUnavailable,
)
from reconciler.esl import EslClient, EslClientState, EslConnection, EslEvent
from reconciler.switch.engine import Lane, Runs
from reconciler.switch.errors import NodeTimeout, NodeUnreachable, translated
from reconciler.switch.session import NodeSession
from reconciler.switch.voicemail.cache import Box, ListingCache, box_key
from reconciler.switch.voicemail.listing import (
    delete_command,
    list_command,
    parse_list,
    read_command,
)

log = logging.getLogger(__name__)

MAINTENANCE = "vm::maintenance"
MERGES_KEPT = 64  # merged listings remembered (a tenant admin's page, a person's boxes)
MOVED_MERGED = 8  # boxes moved at once beyond which a merge is made again from scratch
SUBSCRIPTIONS = ("MESSAGE_WAITING", "CUSTOM", MAINTENANCE)


class VoicemailEngine:
    """One node's mod_voicemail: its ``vm_*`` commands and the events saying a box moved."""

    lane = Lane.EVENTS
    runs = Runs.EVERY_DAEMON
    subscriptions = SUBSCRIPTIONS

    def __init__(
        self,
        session: NodeSession,
        on_change: Callable[[], None],
        *,
        api_timeout: float,
        cache: ListingCache | None = None,
    ) -> None:
        self.session = session
        self.name = session.name
        self._on_change = on_change
        self._api_timeout = api_timeout
        self._client: EslClient | None = None
        self.cache = cache or ListingCache()
        self._listing: dict[Box, tuple[int, asyncio.Future[tuple[VoicemailMessage, ...]]]] = {}
        session.add(self)

    @property
    def client(self) -> EslClient:
        return self._client or self.session.client(self.lane)

    def attach(self, client: EslClient) -> None:
        self._client = client

    @property
    def connected(self) -> bool:
        return self.client.state is EslClientState.CONNECTED

    async def on_connect(self, conn: EslConnection) -> None:
        """A (re)connect may have missed messages: every box is listed again."""
        self.cache.clear()
        self._on_change()

    def on_event(self, event: EslEvent) -> None:
        name = event.get("Event-Name")
        if name == "MESSAGE_WAITING":
            box, _, domain = (event.get("MWI-Message-Account") or "").partition("@")
            self._moved(box, domain)
        elif event.get("Event-Subclass") == MAINTENANCE:
            self._moved(event.get("VM-User") or "", event.get("VM-Domain") or "")

    def _moved(self, box: str, domain: str) -> None:
        """A box changed: its listing goes (all of them when the event names none), then
        the portal is told."""
        if box and domain:
            self.cache.drop(box_key(box, domain))
        else:
            self.cache.clear()
        self._on_change()

    async def api(self, command: str) -> str:
        with translated(self.name):
            return await self.client.api(command, timeout=self._api_timeout)

    def cached(self, box: str, domain: str) -> tuple[VoicemailMessage, ...] | None:
        return self.cache.get(box_key(box, domain), time.monotonic())

    async def listing(self, box: str, domain: str) -> tuple[VoicemailMessage, ...]:
        """The box's messages, newest first: cached, or one ``vm_list`` shared by every
        reader who asks while it runs (unless the box moved since it was sent)."""
        key = box_key(box, domain)
        found = self.cache.get(key, time.monotonic())
        if found is not None:
            return found
        pending = self._listing.get(key)
        if pending is None or not self.cache.unchanged(key, pending[0]):
            since = self.cache.generation()
            future = asyncio.ensure_future(self._list(key, box, domain, since))
            pending = self._listing[key] = (since, future)
            future.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(pending[1])

    def _settled(self, key: Box, done: asyncio.Future[tuple[VoicemailMessage, ...]]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: a failure every reader gave up on is not logged
        if key in self._listing and self._listing[key][1] is done:
            del self._listing[key]

    async def _list(
        self, key: Box, box: str, domain: str, since: int
    ) -> tuple[VoicemailMessage, ...]:
        listed = tuple(
            sorted(
                parse_list(await self.api(list_command(box, domain)), self.name), key=newest_first
            )
        )
        self.cache.put(key, listed, time.monotonic(), since)
        return listed


def newest_first(message: VoicemailMessage) -> tuple[float, str]:
    return (-message.created.timestamp(), message.uuid)


class VoicemailSwitches:
    """Every node's mod_voicemail together; the ``VoicemailBoxes`` of the daemon."""

    def __init__(
        self,
        sessions: Iterable[NodeSession],
        *,
        api_timeout: float = 10.0,
        fresh_for: float = 30.0,
        max_messages: int = 200_000,
    ) -> None:
        """``fresh_for``: seconds a listing is trusted without an event (an event lost in
        flight is healed then); ``max_messages``: held per node over every box."""
        self._version = 0
        self._changed = asyncio.Event()
        self._merges: OrderedDict[tuple[str, tuple[str, ...]], _Merge] = OrderedDict()
        self.nodes: tuple[VoicemailEngine, ...] = tuple(
            VoicemailEngine(
                session,
                self._bump,
                api_timeout=api_timeout,
                cache=ListingCache(fresh_for=fresh_for, max_messages=max_messages),
            )
            for session in sessions
        )

    @property
    def version(self) -> int:
        return self._version

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._version <= after:
                    await self._changed.wait()
        return self._version

    async def messages(self, box: str, domain: str) -> Sequence[VoicemailMessage]:
        return list(await self.boxes_messages((box,), domain))

    async def boxes_messages(self, boxes: Sequence[str], domain: str) -> Sequence[VoicemailMessage]:
        """The boxes' messages over the connected nodes, newest first: cached listings at
        once, the others listed together; the merge is remembered while no box moves (a
        page of a tenant's 10,000 messages is then a slice)."""
        parts = await self._listings(boxes, domain)
        key = (domain.lower(), tuple(boxes))
        before = self._merges.get(key)
        merge = _Merge.of(parts) if before is None else before.updated(parts)
        self._merges[key] = merge
        self._merges.move_to_end(key)
        while len(self._merges) > MERGES_KEPT:
            self._merges.popitem(last=False)
        return merge.messages

    async def _listings(
        self, boxes: Sequence[str], domain: str
    ) -> tuple[tuple[VoicemailMessage, ...], ...]:
        """Every (node, box) listing: cached ones as they are, the others listed at once."""
        connected = [node for node in self.nodes if node.connected]
        found: dict[str, list[tuple[VoicemailMessage, ...]]] = {box: [] for box in boxes}
        missing: list[tuple[VoicemailEngine, str]] = []
        for node in connected:
            for box in found:
                cached = node.cached(box, domain)
                if cached is None:
                    missing.append((node, box))
                else:
                    found[box].append(cached)
        replies = await asyncio.gather(
            *(node.listing(box, domain) for node, box in missing), return_exceptions=True
        )
        failed: set[str] = set()
        for (node, box), reply in zip(missing, replies, strict=True):
            if isinstance(reply, (NodeUnreachable, NodeTimeout)):
                if node.name not in failed:
                    log.warning("vm_list failed", extra={"fields": {"node": node.name}})
                failed.add(node.name)
                continue
            if isinstance(reply, BaseException):
                raise reply
            found[box].append(reply)
        if any(not lists for lists in found.values()):
            raise VoicemailUnavailable("no switch answered")
        return tuple(listed for lists in found.values() for listed in lists)

    async def mark(self, message: VoicemailMessage, *, heard: bool) -> None:
        command = read_command(message.box, message.domain, message.uuid, heard=heard)
        await self._change(message, command)

    async def delete(self, message: VoicemailMessage) -> None:
        await self._change(message, delete_command(message.box, message.domain, message.uuid))

    async def _change(self, message: VoicemailMessage, command: str) -> None:
        """``command`` on the message's node, once its box there is seen to hold it."""
        node = next((n for n in self.nodes if n.name == message.node and n.connected), None)
        if node is None:
            raise VoicemailUnavailable(f"{message.node or 'the switch'} is not connected")
        try:
            listed = parse_list(await node.api(list_command(message.box, message.domain)))
            if all(m.uuid != message.uuid for m in listed):
                raise NoSuchMessage(f"no message {message.uuid} in {message.box}@{message.domain}")
            reply = (await node.api(command)).strip()
        except (NodeUnreachable, NodeTimeout) as exc:
            raise VoicemailUnavailable(str(exc)) from exc
        finally:
            node.cache.drop(box_key(message.box, message.domain))  # whatever the reply said
        if not reply.startswith("+OK"):
            raise VoicemailRefused(reply or "(empty reply)")


Listing = tuple[VoicemailMessage, ...]


@dataclass(frozen=True, slots=True)
class _Merge:
    """Several boxes' listings merged newest first, with each message's sort key: when a
    box moves, only its changed messages are taken out and put in (a message left in one
    of a tenant's 100 boxes costs a few bisects, not a sort of 10,000)."""

    parts: tuple[Listing, ...]
    messages: list[VoicemailMessage]  # never changed once handed out
    keys: list[tuple[float, str]]

    @classmethod
    def of(cls, parts: tuple[Listing, ...]) -> _Merge:
        ordered = sorted(((newest_first(m), m) for part in parts for m in part), key=_first)
        return cls(parts, [m for _, m in ordered], [k for k, _ in ordered])

    def updated(self, parts: tuple[Listing, ...]) -> _Merge:
        if len(parts) != len(self.parts):
            return _Merge.of(parts)
        moved = [(a, b) for a, b in zip(self.parts, parts, strict=True) if a is not b]
        if not moved:
            return self
        if len(moved) > MOVED_MERGED:
            return _Merge.of(parts)
        messages, keys = list(self.messages), list(self.keys)
        for old, new in moved:
            kept = set(old) & set(new)
            for message in old:
                if message not in kept:
                    key = newest_first(message)
                    at = bisect.bisect_left(keys, key)
                    while at < len(keys) and keys[at] == key and messages[at] != message:
                        at += 1  # the same message listed by another node
                    if at < len(keys) and keys[at] == key:
                        del keys[at], messages[at]
            for message in new:
                if message not in kept:
                    key = newest_first(message)
                    at = bisect.bisect_left(keys, key)
                    keys.insert(at, key)
                    messages.insert(at, message)
        return _Merge(parts, messages, keys)


def _first(pair: tuple[tuple[float, str], VoicemailMessage]) -> tuple[float, str]:
    return pair[0]


def as_boxes(switches: VoicemailSwitches) -> VoicemailBoxes:
    """The switches are ``VoicemailBoxes`` (mypy checks it here, structurally)."""
    return switches

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
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

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
        return list((await self.boxes_messages((box,), domain))[box])

    async def boxes_messages(
        self, boxes: Sequence[str], domain: str
    ) -> Mapping[str, Sequence[VoicemailMessage]]:
        """Each box's messages over the connected nodes, newest first: cached listings at
        once, the others listed together."""
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
        return {box: _merged(lists) for box, lists in found.items()}

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


def _merged(lists: Sequence[tuple[VoicemailMessage, ...]]) -> Sequence[VoicemailMessage]:
    if len(lists) == 1:
        return lists[0]
    return sorted((m for listed in lists for m in listed), key=newest_first)


def as_boxes(switches: VoicemailSwitches) -> VoicemailBoxes:
    """The switches are ``VoicemailBoxes`` (mypy checks it here, structurally)."""
    return switches

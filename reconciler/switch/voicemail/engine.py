"""mod_voicemail on every node, for the portal and the leader's retention: the
``VoicemailBoxes`` the rest of the daemon is given.

Each node's ``VoicemailEngine`` rides the EVENTS lane of the node's ``NodeSession`` (its few
``vm_*`` commands are quick reads and single-row changes, never a bulk push) and runs on
every daemon (``Runs.EVERY_DAEMON``: each serves its own portal). It subscribes to
``MESSAGE_WAITING`` and ``vm::maintenance``: mod_voicemail fires both when a message is left,
heard or deleted (``update_mwi``), and every one moves ``version``, which the portal's live
pages wait on. Nothing is cached: a box is listed when it is asked for.

mod_voicemail's ``vm_read`` and ``vm_delete`` act on a message id alone, whatever box the
command names (``mod_voicemail.c``: ``... where uuid='%q'``), so a change is made only after
listing the box on that node shows the id in it: an id of another box, or of another
tenant's, is never changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence

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
        self, session: NodeSession, on_change: Callable[[], None], *, api_timeout: float
    ) -> None:
        self.session = session
        self.name = session.name
        self._on_change = on_change
        self._api_timeout = api_timeout
        self._client: EslClient | None = None
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
        """A (re)connect may have missed messages: the portal looks again."""
        self._on_change()

    def on_event(self, event: EslEvent) -> None:
        name = event.get("Event-Name")
        if name == "MESSAGE_WAITING" or event.get("Event-Subclass") == MAINTENANCE:
            self._on_change()

    async def api(self, command: str) -> str:
        with translated(self.name):
            return await self.client.api(command, timeout=self._api_timeout)


class VoicemailSwitches:
    """Every node's mod_voicemail together; the ``VoicemailBoxes`` of the daemon."""

    def __init__(self, sessions: Iterable[NodeSession], *, api_timeout: float = 10.0) -> None:
        self._version = 0
        self._changed = asyncio.Event()
        self.nodes: tuple[VoicemailEngine, ...] = tuple(
            VoicemailEngine(session, self._bump, api_timeout=api_timeout) for session in sessions
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
        command = list_command(box, domain)
        connected = [node for node in self.nodes if node.connected]
        replies = await asyncio.gather(
            *(node.api(command) for node in connected), return_exceptions=True
        )
        found: list[VoicemailMessage] = []
        answered = 0
        for node, reply in zip(connected, replies, strict=True):
            if isinstance(reply, (NodeUnreachable, NodeTimeout)):
                log.warning("vm_list failed", extra={"fields": {"node": node.name}})
                continue
            if isinstance(reply, BaseException):
                raise reply
            answered += 1
            found.extend(parse_list(reply, node.name))
        if not answered:
            raise VoicemailUnavailable("no switch answered")
        found.sort(key=lambda m: (-m.created.timestamp(), m.uuid))
        return found

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
        if not reply.startswith("+OK"):
            raise VoicemailRefused(reply or "(empty reply)")


def as_boxes(switches: VoicemailSwitches) -> VoicemailBoxes:
    """The switches are ``VoicemailBoxes`` (mypy checks it here, structurally)."""
    return switches

"""Voicemail messages as the portal and the leader's retention see them, and what they ask
of the switches (``VoicemailBoxes``): records and a port, no I/O.

Messages are runtime facts owned by mod_voicemail (its database, its lamps): the reconciler
lists them and changes them only through the module's own API (``vm_list``, ``vm_read``,
``vm_delete``), never by touching files, so the lamps stay right. Every message carries the
``node`` that listed it: a change goes to that switch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class VoicemailMessage:
    """One message as mod_voicemail lists it; ``path`` is the switch's file (the portal
    serves it only from inside the tenant's own folder). ``caller_name`` and
    ``caller_number`` come from the caller: hostile text, escaped wherever shown."""

    uuid: str
    box: str
    domain: str
    folder: str
    created: datetime
    heard: datetime | None
    path: str
    caller_name: str
    caller_number: str
    seconds: int
    node: str = ""

    @property
    def new(self) -> bool:
        return self.heard is None


class VoicemailUnavailable(Exception):
    """No switch answered (none connected, or every one failed): nothing is known."""


class NoSuchMessage(LookupError):
    """The box (on that switch) holds no message of that id: deleted meanwhile, or never
    this box's."""


class VoicemailRefused(Exception):
    """A switch answered a change with an error (``-ERR ...``): the message is unchanged."""


class VoicemailBoxes(Protocol):
    """What the portal and the leader ask of the switches' mod_voicemail."""

    @property
    def version(self) -> int:
        """Grows whenever a switch says a box changed (a new message, one heard or deleted)."""
        ...

    async def changed(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        """Wait until ``version`` exceeds ``after`` (or the timeout); returns the version."""
        ...

    async def messages(self, box: str, domain: str) -> Sequence[VoicemailMessage]:
        """Every message of one box over the connected switches, newest first;
        ``VoicemailUnavailable`` when none answered."""
        ...

    async def boxes_messages(self, boxes: Sequence[str], domain: str) -> Sequence[VoicemailMessage]:
        """The messages of several boxes of one domain together, newest first (a tenant
        admin's page); ``VoicemailUnavailable`` when no switch answered for one of them."""
        ...

    async def mark(self, message: VoicemailMessage, *, heard: bool) -> None:
        """Heard (the lamp's count drops) or new again, on the message's switch."""
        ...

    async def delete(self, message: VoicemailMessage) -> None:
        """Gone from mod_voicemail's database and disk, on the message's switch."""
        ...

"""One node's box listings as ``vm_list`` last answered them, so a page view is not a
``vm_list`` per box (a tenant admin's page listed every box over ESL at every view and at
every live update).

An entry is dropped by whatever says its box moved: the node's ``MESSAGE_WAITING`` and
``vm::maintenance`` events (they name the box), the engine's own ``vm_read``/``vm_delete``,
and a reconnect (events may have been missed: everything goes). Two limits close the gaps
events leave: an entry older than ``fresh_for`` seconds is listed again (an event lost in
flight), and at most ``max_messages`` messages are held over all boxes (the least recently
read boxes go first). A listing that was in flight while its box was dropped is not kept
(``generation``): it may predate the change. Pure state, no I/O; the clock is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.core.voicemail_box import VoicemailMessage

Box = tuple[str, str]  # (box, domain lower-cased): how events and commands name it
MARKS_KEPT = 16_384  # boxes dropped since the last clear (each ~150 bytes) before a clear


def box_key(box: str, domain: str) -> Box:
    return (box, domain.lower())


@dataclass(frozen=True, slots=True)
class _Entry:
    messages: tuple[VoicemailMessage, ...]
    listed_at: float


class ListingCache:
    """Listings by box, newest first, bounded in age and in messages held."""

    def __init__(self, *, fresh_for: float = 30.0, max_messages: int = 200_000) -> None:
        self.fresh_for = fresh_for
        self.max_messages = max_messages
        self._entries: OrderedDict[Box, _Entry] = OrderedDict()
        self._held = 0
        self._generation = 0
        self._floor = 0  # listings sent before this generation are never kept
        self._dropped_at: dict[Box, int] = {}

    @property
    def held(self) -> int:
        """Messages held over every box."""
        return self._held

    def get(self, key: Box, now: float) -> tuple[VoicemailMessage, ...] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry.listed_at >= self.fresh_for:
            self.drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.messages

    def generation(self) -> int:
        """Taken before a ``vm_list`` is sent; ``put`` keeps its answer only if the box
        was not dropped since."""
        return self._generation

    def unchanged(self, key: Box, since: int) -> bool:
        """The box was not dropped since ``since`` (a listing sent then is still true)."""
        return since >= self._floor and self._dropped_at.get(key, -1) < since

    def put(self, key: Box, messages: Sequence[VoicemailMessage], now: float, since: int) -> None:
        if not self.unchanged(key, since) or len(messages) > self.max_messages:
            return
        self._remove(key)
        self._entries[key] = _Entry(tuple(messages), now)
        self._held += len(messages)
        while self._held > self.max_messages:
            self._remove(next(iter(self._entries)))

    def drop(self, key: Box) -> None:
        """The box moved: list it again next time (and forget a listing in flight)."""
        self._dropped_at[key] = self._generation
        self._generation += 1
        self._remove(key)
        if len(self._dropped_at) > MARKS_KEPT:
            self.clear()  # bounded marks: refusing every listing in flight is always safe

    def clear(self) -> None:
        """Everything may have changed (a reconnect): every box is listed again."""
        self._entries.clear()
        self._held = 0
        self._dropped_at = {}
        self._generation += 1
        self._floor = self._generation

    def _remove(self, key: Box) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._held -= len(entry.messages)

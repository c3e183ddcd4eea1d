"""Today's figures of each queue (answered, abandoned, how long callers waited), tallied
from what the presence cache shows over time: a caller seen waiting and then answered is
answered, one who leaves the queue unanswered is abandoned (hung up, or timed out).

Pure: the caller hands each queue's current callers and the time. The figures live in the
memory of one daemon: they start when it starts (or at midnight UTC) and are lost on a
restart; each daemon counts the callers its own presence cache sees.

Limits, said plainly: the tally sees the cache as often as it is handed it (the portal
does so whenever the cache changes, at most once a second), so a wait is measured to
within that; a caller who comes and goes between two looks is not counted; callers
already answered when a queue is first seen are not counted; and while a switch is not
connected, callers that vanish with it are not taken for abandoned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from reconciler.core.presence import QueueMember

ANSWERED = "Answered"


@dataclass(slots=True)
class QueueFigures:
    """One queue's day so far."""

    answered: int = 0
    abandoned: int = 0
    answered_within: int = 0  # answered within the service level's seconds
    longest_wait: float = 0.0  # seconds, answered or abandoned

    def service_level(self) -> float | None:
        """Share of the day's callers answered within the target (abandoned ones count
        against it); None before any caller."""
        total = self.answered + self.abandoned
        return self.answered_within / total if total else None


@dataclass(frozen=True, slots=True)
class _Seen:
    answered: bool
    joined_at: datetime | None


class QueueToday:
    """Every queue's ``QueueFigures`` of the current UTC day. ``observe`` one queue's
    current callers; ``figures`` reads them."""

    def __init__(self, target_seconds: float = 20.0) -> None:
        self.target_seconds = target_seconds
        self._day: date | None = None
        self._figures: dict[str, QueueFigures] = {}
        self._seen: dict[str, dict[str, _Seen]] = {}

    def figures(self, queue: str, now: datetime) -> QueueFigures:
        self._roll(now)
        return self._figures.get(queue) or QueueFigures()

    def observe(
        self, queue: str, members: Iterable[QueueMember], now: datetime, *, complete: bool = True
    ) -> None:
        """``members``: the queue's callers now (fs name ``queue``). ``complete``: every
        switch is connected (else a vanished caller may only be out of sight)."""
        self._roll(now)
        before = self._seen.get(queue)
        current = {m.uuid: _Seen(m.state == ANSWERED, m.joined_at) for m in members}
        if not current and not before:  # most queues, most of the time: nothing to do
            self._seen[queue] = current
            return
        figures = self._figures.setdefault(queue, QueueFigures())
        if before is not None:
            for uuid, seen in current.items():
                had = before.get(uuid)
                if seen.answered and not (had and had.answered):
                    self._count(figures, seen.joined_at, now, answered=True)
            if complete:
                for uuid, had in before.items():
                    if uuid not in current and not had.answered:
                        self._count(figures, had.joined_at, now, answered=False)
        self._seen[queue] = current

    def _count(
        self, figures: QueueFigures, joined: datetime | None, now: datetime, *, answered: bool
    ) -> None:
        wait = max(0.0, (now - joined).total_seconds()) if joined else 0.0
        figures.longest_wait = max(figures.longest_wait, wait)
        if answered:
            figures.answered += 1
            figures.answered_within += wait <= self.target_seconds
        else:
            figures.abandoned += 1

    def _roll(self, now: datetime) -> None:
        today = now.date()
        if today != self._day:
            self._day = today
            self._figures = {}

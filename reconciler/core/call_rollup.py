"""Call totals from a daily rollup: which part of a range the rollup answers, and the totals
of grouped counts.

A tenant's ``calls_daily`` holds, per UTC day, the a legs grouped by what the totals need
(direction, outcome, queue, and for a queue call that was answered, how long it rang, capped
at ``RING_CAP``), with their count and talk seconds. A month's totals then read a few
thousand groups instead of a few hundred thousand calls. The whole days of a range come from
the rollup, the partial days at its ends from the raw table grouped the same way, and both
go through ``totals_of``: the same arithmetic whichever way the groups were counted.

What the rollup cannot answer (an extension, a number, the calls of one member or agent, a
service level beyond ``RING_CAP``) is counted from the raw table: ``rollup_answers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from reconciler.core.call_query import CallQuery, CallTotals, QueueLevel
from reconciler.core.call_record import Outcome

RING_CAP = 3600  # longest service level the rollup answers (the portal accepts 1 to 3600)
NO_RING = -1  # the ``ring`` of a group that is not an answered queue call
MISSED = frozenset({Outcome.NO_ANSWER.value, Outcome.BUSY.value, Outcome.ABANDONED.value})


@dataclass(frozen=True, slots=True)
class CallGroup:
    """Calls that share what the totals tell apart (``queue`` is '' for none)."""

    direction: str
    outcome: str
    queue: str
    ring: int  # NO_RING, else the seconds an answered queue call rang, within 0..RING_CAP+1
    calls: int
    talk_seconds: int


@dataclass(frozen=True, slots=True)
class DaySplit:
    """A range as whole UTC days ``[first_day, end_day)`` (``None``: open; ``days`` False when
    the range holds no whole day) and the partial ranges at its ends."""

    days: bool
    first_day: date | None
    end_day: date | None
    edges: tuple[tuple[datetime | None, datetime | None], ...]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def split_days(since: datetime | None, until: datetime | None) -> DaySplit:
    """``[since, until)`` as the whole UTC days inside it and the partial ends around them."""
    since = _utc(since) if since is not None else None
    until = _utc(until) if until is not None else None
    first = None
    if since is not None:
        first = since.date() if since == _midnight(since.date()) else since.date() + timedelta(1)
    end = until.date() if until is not None else None
    whole = first is None or end is None or first < end
    if not whole and since is not None and until is not None:
        # no whole day inside: the range is its own edge
        return DaySplit(False, None, None, ((since, until),) if since < until else ())
    edges: list[tuple[datetime | None, datetime | None]] = []
    if since is not None and first is not None and since < _midnight(first):
        edges.append((since, _midnight(first)))
    if until is not None and end is not None and _midnight(end) < until:
        edges.append((_midnight(end), until))
    return DaySplit(True, first, end, tuple(edges))


def rollup_answers(query: CallQuery, service_seconds: int) -> bool:
    """Whether the rollup holds what the totals of ``query`` need."""
    return (
        query.extension is None
        and not query.number
        and query.only_extensions is None
        and 0 <= service_seconds <= RING_CAP
    )


def average(total: int, count: int) -> float:
    """Average talk, rounded as the portal shows it (one arithmetic for every path)."""
    return round(total / count, 1) if count else 0.0


def totals_of(groups: list[CallGroup], service_seconds: int) -> CallTotals:
    """The totals of counted groups (the rollup's and the raw table's alike)."""
    calls = answered = missed = talk = 0
    queues: dict[str, list[int]] = {}
    for g in groups:
        calls += g.calls
        if g.outcome == Outcome.ANSWERED.value:
            answered += g.calls
            talk += g.talk_seconds
        elif g.outcome in MISSED:
            missed += g.calls
        if g.queue:
            level = queues.setdefault(g.queue, [0, 0, 0])
            level[0] += g.calls
            if g.outcome == Outcome.ANSWERED.value:
                level[1] += g.calls
                if 0 <= g.ring <= service_seconds:
                    level[2] += g.calls
    return CallTotals(
        calls=calls,
        answered=answered,
        missed=missed,
        average_talk_seconds=average(talk, answered),
        queues=tuple(QueueLevel(q, *queues[q]) for q in sorted(queues)),
    )

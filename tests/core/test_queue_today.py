"""Today's queue figures from successive looks at a queue's callers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.presence import QueueMember
from reconciler.core.queue_today import QueueToday

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
Q = "support@acme.example.com"


def caller(uuid: str, state: str = "Waiting", joined: datetime = T0) -> QueueMember:
    return QueueMember("fs1", Q, uuid, "555", "Caller", state, joined)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_answered_abandoned_longest_wait_and_service_level() -> None:
    today = QueueToday(target_seconds=20)
    today.observe(Q, [], at(0))
    today.observe(Q, [caller("a"), caller("b"), caller("c")], at(1))
    today.observe(Q, [caller("a", "Answered"), caller("b"), caller("c")], at(10))
    today.observe(Q, [caller("a", "Answered"), caller("b", "Trying")], at(30))  # c hung up
    today.observe(Q, [caller("b", "Answered")], at(45))  # a done: not abandoned
    f = today.figures(Q, at(50))
    assert (f.answered, f.abandoned, f.answered_within, f.longest_wait) == (2, 1, 1, 45.0)
    assert f.service_level() == 1 / 3


def test_callers_answered_before_the_first_look_are_not_counted() -> None:
    today = QueueToday()
    today.observe(Q, [caller("a", "Answered")], at(5))
    today.observe(Q, [], at(6))
    assert today.figures(Q, at(7)).answered == 0 and today.figures(Q, at(7)).abandoned == 0


def test_callers_vanishing_with_a_switch_are_not_abandoned() -> None:
    today = QueueToday()
    today.observe(Q, [caller("a")], at(1))
    today.observe(Q, [], at(2), complete=False)
    assert today.figures(Q, at(3)).abandoned == 0


def test_a_new_day_starts_from_zero() -> None:
    today = QueueToday()
    today.observe(Q, [caller("a")], at(0))
    today.observe(Q, [], at(5))
    assert today.figures(Q, at(6)).abandoned == 1
    assert today.figures(Q, at(86400)).abandoned == 0
    assert today.figures(Q, at(86400)).service_level() is None

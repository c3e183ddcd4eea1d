"""Peer-caused log lines: the first few per interval, then one summary line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reconciler.serve.logthrottle import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger="test.throttle")
    return logging.getLogger("test.throttle")


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.throttle"]


def test_first_burst_is_logged_then_counted(logger, clock, caplog) -> None:
    throttle = LogThrottle(logger, "odd things", burst=3, interval=60, clock=clock)
    for i in range(10):
        throttle.log(logging.WARNING, "odd %d", i)
    assert messages(caplog) == ["odd 0", "odd 1", "odd 2"]
    assert throttle.suppressed == 7


def test_next_interval_starts_with_a_summary_of_the_last(logger, clock, caplog) -> None:
    throttle = LogThrottle(logger, "odd things", burst=2, interval=60, clock=clock)
    for i in range(5):
        throttle.log(logging.WARNING, "odd %d", i)
    clock.now = 61
    throttle.log(logging.WARNING, "odd %d", 5)
    assert messages(caplog) == [
        "odd 0",
        "odd 1",
        "3 more odd things in the last 60 s were not logged",
        "odd 5",
    ]


def test_flush_writes_the_summary_and_nothing_when_all_were_logged(logger, clock, caplog):
    throttle = LogThrottle(logger, "odd things", burst=2, interval=60, clock=clock)
    throttle.log(logging.WARNING, "once")
    throttle.flush()
    assert messages(caplog) == ["once"]
    for _ in range(4):
        throttle.log(logging.WARNING, "again")
    throttle.flush()
    assert messages(caplog)[-1] == "2 more odd things in the last 60 s were not logged"


async def test_the_summary_comes_at_the_end_of_the_interval_even_if_the_flood_stops(
    logger, caplog
) -> None:
    throttle = LogThrottle(logger, "odd things", burst=1, interval=0.1)
    for _ in range(3):
        throttle.log(logging.WARNING, "odd")
    await asyncio.sleep(0.3)
    assert messages(caplog) == ["odd", "2 more odd things in the last 0 s were not logged"]

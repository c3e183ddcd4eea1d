"""Log lines caused by remote peers, bounded: the first few per interval, then one summary.

Whoever can reach the xml_curl port decides how often a "malformed request" happens. One
line each lets a flood fill the disk and bury the lines that matter; none at all hides an
attack. So each kind of event logs its first ``burst`` occurrences per ``interval`` and then
one line saying how many more there were.

Neighbours: ``reconciler.serve.xmlcurl_app`` (malformed requests, internal errors),
``reconciler.serve.listener`` (refused and evicted connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any


class LogThrottle:
    """One kind of event (``what``, e.g. "malformed xml_curl requests") on one logger."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._window_end = float("-inf")
        self._logged = 0
        self._suppressed = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def suppressed(self) -> int:
        """Events not logged in the current interval (so far)."""
        return self._suppressed

    def log(self, level: int, message: str, *args: Any, exc_info: bool = False) -> None:
        now = self._clock()
        if now >= self._window_end:
            self.flush()
            self._window_end = now + self._interval
        if self._logged < self._burst:
            self._logged += 1
            self._logger.log(level, message, *args, exc_info=exc_info)
            return
        self._suppressed += 1
        if self._suppressed == 1:
            self._summarize_later(self._window_end - now)

    def flush(self) -> None:
        """Write the summary of the current interval now (also at shutdown) and start anew."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._suppressed:
            self._logger.warning(
                "%d more %s in the last %.0f s were not logged",
                self._suppressed,
                self._what,
                self._interval,
            )
        self._logged = 0
        self._suppressed = 0
        self._window_end = float("-inf")

    def _summarize_later(self, delay: float) -> None:
        """The summary comes at the end of the interval even if the flood stops before."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next event or flush() writes it
        self._timer = loop.call_later(max(0.0, delay), self.flush)

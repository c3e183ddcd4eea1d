"""Why a pass runs. Level-triggered: many requests before the next pass make one pass.

Sources: start-up, file changes (debounced), the jittered interval, SIGHUP, a git commit,
NOTIFY from another writer, database (re)connection, leadership, and retries after a
failure (which wait out their backoff: a broken database must not cause a retry storm).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class TriggerBatch:
    reasons: frozenset[str]
    full: bool
    notified: frozenset[str]  # tenants another writer applied (from NOTIFY)

    @property
    def label(self) -> str:
        return ",".join(sorted(self.reasons))


class Triggers:
    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._reasons: set[str] = {"startup"}
        self._full = True
        self._notified: set[str] = set()
        self._wake = asyncio.Event()
        self._wake.set()
        self._not_before = 0.0  # loop time before which no pass starts (retry backoff)

    def request(self, reason: str, *, full: bool = False) -> None:
        self._reasons.add(reason)
        self._full = self._full or full
        self._wake.set()

    def notify(self, tenants: frozenset[str]) -> None:
        self._notified |= tenants
        self.request("notify")

    def retry_after(self, delay: float, *, full: bool = True) -> None:
        """Ask for a retry that starts no sooner than ``delay`` seconds from now, whatever
        else asks meanwhile."""
        loop = asyncio.get_running_loop()
        self._not_before = loop.time() + delay
        self.request("retry", full=full)

    def request_later(self, reason: str, delay: float) -> None:
        """Ask for an incremental pass ``delay`` seconds from now."""
        asyncio.get_running_loop().call_later(delay, self.request, reason)

    async def next(self) -> TriggerBatch:
        """Wait for a request (or the jittered interval), then for any retry backoff."""
        timeout = self.interval * random.uniform(0.9, 1.1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        if not self._wake.is_set():
            self.request("interval", full=True)
        wait = self._not_before - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._wake.clear()
        batch = TriggerBatch(frozenset(self._reasons), self._full, frozenset(self._notified))
        self._reasons, self._full, self._notified = set(), False, set()
        return batch

    def wake(self) -> None:
        """Unblock ``next`` (shutdown)."""
        self._wake.set()

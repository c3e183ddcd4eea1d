"""Login throttling: failed attempts per account and all attempts per client address, each
in a sliding window, in memory (one portal process: a restart forgets, which only ever
lets someone try again sooner).

The account key is the email as typed (lowercased), whether or not an account exists, so
a throttled unknown address looks exactly like a throttled real one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from reconciler.web.config import RateLimit
from reconciler.web.errors import RateLimited

MAX_KEYS = 100_000  # a flood of distinct keys must not grow memory without bound


class SlidingWindow:
    """Timestamps of recent events per key; ``check`` refuses once the window is full."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= MAX_KEYS:
                self._evict()
            events = self._events[key] = deque()
        horizon = self.clock() - self.limit.window
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def _evict(self) -> None:
        horizon = self.clock() - self.limit.window
        stale = [k for k, ev in self._events.items() if not ev or ev[-1] <= horizon]
        for key in stale or list(self._events)[: MAX_KEYS // 10]:
            del self._events[key]

    def check(self, key: str) -> None:
        events = self._recent(key)
        if len(events) >= self.limit.attempts:
            raise RateLimited(events[0] + self.limit.window - self.clock())

    def hit(self, key: str) -> None:
        self._recent(key).append(self.clock())

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


class LoginLimiter:
    """Both windows of the login form."""

    def __init__(
        self,
        per_account: RateLimit,
        per_address: RateLimit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = SlidingWindow(per_account, clock)
        self.addresses = SlidingWindow(per_address, clock)

    def before_attempt(self, email: str, address: str) -> None:
        """Raises ``RateLimited``; counts the attempt against the address."""
        self.addresses.check(address)
        self.accounts.check(email.lower())
        self.addresses.hit(address)

    def failed(self, email: str) -> None:
        self.accounts.hit(email.lower())

    def succeeded(self, email: str) -> None:
        self.accounts.clear(email.lower())

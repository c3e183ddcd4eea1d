"""Login throttling, in memory (one daemon: a restart forgets, which only ever lets someone
try again sooner). Three counters, none of them a lock-out button for strangers:

* per account **and** client address: ``attempts`` free failures, then each further attempt
  waits twice as long as the one before (1 s, 2 s, 4 s ... up to the window); forgotten
  after a day without a failure, ended by a success. Guessing from one place slows to a
  crawl; the owner elsewhere is untouched.
* per client address: failures across all accounts in a sliding window (password spraying).
  Successful logins do not count: an office behind one NAT logs in at shift start.
* per account, all addresses together: a cap far above what a person types (distributed
  guessing). An address that logged in to that account before is exempt, so the owner
  keeps working while a botnet hits the cap; a super admin can ``clear`` it.

Every attempt **reserves** a failure before its password is checked (and gives it back
when it succeeds or was never judged), so concurrent attempts cannot all pass the check
before the first failure is counted.

The account key is the email as typed (lowercased), whether or not an account exists, so
a throttled unknown address looks exactly like a throttled real one.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.web.config import RateLimit
from reconciler.web.errors import RateLimited

MAX_KEYS = 100_000  # a flood of distinct keys must not grow memory without bound
FIRST_DELAY = 1.0  # seconds, doubled for every failure beyond the free ones
STREAK_MEMORY = 24 * 3600.0  # a streak of failures is forgotten after a day without one


class Throttled(RateLimited):
    """``RateLimited`` that says which counter refused (``key``), for the audit."""

    def __init__(self, retry_after: float, key: str) -> None:
        super().__init__(retry_after)
        self.key = key


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

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may act again; None when it may now."""
        events = self._recent(key)
        if len(events) >= self.limit.attempts:
            return events[0] + self.limit.window - self.clock()
        return None

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimited(wait)

    def hit(self, key: str) -> None:
        self._recent(key).append(self.clock())

    def take_back(self, key: str) -> None:
        """Undo the latest ``hit`` (a reservation that turned out not to be a failure)."""
        events = self._events.get(key)
        if events:
            events.pop()

    def count(self, key: str) -> int:
        return len(self._recent(key)) if key in self._events else 0

    def tracked(self) -> list[str]:
        return list(self._events)

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


@dataclass(slots=True)
class _Streak:
    failures: int
    last: float


class Backoff:
    """Per key: ``limit.attempts`` free failures, then a delay doubling from
    ``FIRST_DELAY`` up to ``limit.window`` before each further attempt. A streak is
    forgotten after ``STREAK_MEMORY`` without a failure, so waiting out the longest delay
    never buys a fresh set of free attempts (a success ends it at once)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._streaks: OrderedDict[str, _Streak] = OrderedDict()

    def delay(self, failures: int) -> float:
        if failures < self.limit.attempts:
            return 0.0
        return float(min(self.limit.window, FIRST_DELAY * 2 ** (failures - self.limit.attempts)))

    def _streak(self, key: str) -> _Streak | None:
        streak = self._streaks.get(key)
        quiet = max(STREAK_MEMORY, self.delay(streak.failures)) if streak else 0.0
        if streak is not None and self.clock() - streak.last > quiet:
            del self._streaks[key]
            return None
        return streak

    def retry_after(self, key: str) -> float | None:
        streak = self._streak(key)
        if streak is None:
            return None
        wait = streak.last + self.delay(streak.failures) - self.clock()
        return wait if wait > 0 else None

    def hit(self, key: str) -> None:
        streak = self._streak(key)
        if streak is None:
            if len(self._streaks) >= MAX_KEYS:
                self._streaks.popitem(last=False)
            streak = self._streaks[key] = _Streak(0, self.clock())
        streak.failures += 1
        streak.last = self.clock()
        self._streaks.move_to_end(key)

    def take_back(self, key: str) -> None:
        streak = self._streaks.get(key)
        if streak is not None:
            streak.failures = max(0, streak.failures - 1)

    def failures(self, key: str) -> int:
        streak = self._streak(key)
        return streak.failures if streak else 0

    def clear(self, key: str) -> None:
        self._streaks.pop(key, None)

    def clear_where(self, keep: Callable[[str], bool]) -> int:
        gone = [key for key in self._streaks if not keep(key)]
        for key in gone:
            del self._streaks[key]
        return len(gone)

    def tracked(self) -> list[str]:
        return list(self._streaks)


@dataclass(frozen=True, slots=True)
class Lock:
    """An account some counter currently holds back (what a super admin may clear)."""

    email: str
    failures: int
    retry_after: float


class LoginLimiter:
    """The counters of the login form; see the module docstring for the rules."""

    def __init__(
        self,
        per_account_address: RateLimit,
        per_address: RateLimit,
        per_account: RateLimit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pairs = Backoff(per_account_address, clock)
        self.addresses = SlidingWindow(per_address, clock)
        self.accounts = SlidingWindow(per_account, clock)
        self._known: OrderedDict[str, None] = OrderedDict()  # pairs that logged in before

    def reserve(self, email: str, address: str) -> None:
        """Raises ``Throttled``; otherwise counts the attempt as a failure until
        ``succeeded`` or ``release`` says otherwise (no await between check and count)."""
        email, pair = email.lower(), _pair(email, address)
        refusals = [
            ("address " + address, self.addresses.retry_after(address)),
            ("account+address " + pair, self.pairs.retry_after(pair)),
        ]
        if pair not in self._known:
            refusals.append(("account " + email, self.accounts.retry_after(email)))
        for key, wait in refusals:
            if wait is not None:
                raise Throttled(wait, key)
        self.addresses.hit(address)
        self.pairs.hit(pair)
        self.accounts.hit(email)

    def release(self, email: str, address: str) -> None:
        """The attempt was never judged (the server was busy): it costs nothing."""
        email = email.lower()
        self.addresses.take_back(address)
        self.pairs.take_back(_pair(email, address))
        self.accounts.take_back(email)

    def succeeded(self, email: str, address: str) -> None:
        email, pair = email.lower(), _pair(email, address)
        self.addresses.take_back(address)
        self.accounts.take_back(email)
        self.pairs.clear(pair)
        self._known[pair] = None
        self._known.move_to_end(pair)
        if len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)

    def clear(self, email: str) -> int:
        """A super admin lifts every counter of one account; returns the failures forgotten."""
        email = email.lower()
        prefix = email + " "
        forgotten = self.accounts.count(email)
        self.accounts.clear(email)
        pairs = sum(self.pairs.failures(k) for k in self.pairs.tracked() if k.startswith(prefix))
        self.pairs.clear_where(lambda key: not key.startswith(prefix))
        return max(forgotten, pairs)

    def locks(self, limit: int = 100) -> list[Lock]:
        """Accounts held back right now, by the cap or from some address; most failures first."""
        found: dict[str, Lock] = {}
        for key in self.pairs.tracked():
            wait = self.pairs.retry_after(key)
            if wait is not None:
                email = key.rsplit(" ", 1)[0]
                found[email] = Lock(email, self.pairs.failures(key), wait)
        for email in self.accounts.tracked():
            wait = self.accounts.retry_after(email)
            if wait is not None:
                found[email] = Lock(email, self.accounts.count(email), wait)
        return sorted(found.values(), key=lambda lock: (-lock.failures, lock.email))[:limit]


def _pair(email: str, address: str) -> str:
    return f"{email.lower()} {address}"


class RefusalAudit:
    """One audit row per throttled key and window, not one per refused request: the first
    refusal is audited, the rest are counted and their number goes into the next row."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._open: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key: (until, count)

    def first(self, key: str, retry_after: float) -> tuple[bool, int]:
        """(audit this one?, refusals of the previous window that were not audited)."""
        now = self.clock()
        until, counted = self._open.pop(key, (0.0, 0))
        if now < until:
            self._open[key] = (max(until, now + retry_after), counted + 1)
            return False, 0
        self._open[key] = (now + retry_after, 0)
        if len(self._open) > MAX_KEYS:
            self._open.popitem(last=False)
        return True, counted

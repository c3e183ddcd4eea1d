"""A per-address budget of requests that nobody is authenticated for, kept in memory and
decided before anything else runs: a flood of bogus bearer tokens or cookies from one
address is answered 429 without a database round trip once the budget is spent.

Only requests that may cost a lookup spend the budget: those carrying a credential (a bearer
token or a session cookie) and writes (a login form). A page or static file fetched with no
credential reads no database, so an office behind one NAT address opening the login page at
shift start spends nothing but its logins. Such a request takes a token from its address's bucket when it arrives and gives it back
when it turns out to be authenticated (a valid session or API token); so concurrency
cannot overrun the budget, and people who are logged in do not spend it. While an address
has no tokens left, every request from it (logged in or not: telling them apart costs a
lookup) is refused until the bucket refills. The budget holds ``attempts`` requests and
refills at ``attempts`` per ``window`` seconds.

A refusal is answered after ``REFUSAL_DELAY``: waiting costs no CPU, and the portal shares
its event loop with xml_curl, so a flooder that waits for its answers (as HTTP clients do)
gets a few refusals a second per connection instead of as many as the loop can render.
Measured with bench/bench_portal_flood.py (16 connections of bogus tokens): xml_curl p50
0.73 ms against 0.68 ms unloaded; answering 429 at once let the flood take the loop (p50
5 ms, p99 34 ms), worse than the database round trips it replaced (p50 1.4 ms, p99 19 ms).

An IPv6 client is counted by its /64 (one host usually holds the whole network); how many
addresses are remembered is bounded, full buckets are forgotten first.

Neighbours: ``web.middleware`` (who is calling), ``web.ratelimit`` (the login form's own
per-account and per-address windows), ``serve.listener`` (connection caps and timeouts).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from reconciler.web.config import RateLimit
from reconciler.web.context import client_addr, identity_of, portal_of
from reconciler.web.errors import RateLimited

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REFUSAL_DELAY = 0.5  # seconds before a 429: costs no CPU, slows a flooder that waits
READS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ADDRESSES = 100_000  # a flood of distinct addresses must not grow memory without bound


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class AddressBudget:
    """Token buckets per client address (``RateLimit``: capacity ``attempts``, refilled over
    ``window`` seconds)."""

    def __init__(
        self,
        limit: RateLimit,
        clock: Callable[[], float] = time.monotonic,
        refusal_delay: float = REFUSAL_DELAY,
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.refusal_delay = refusal_delay
        self._rate = limit.attempts / max(limit.window, 1e-9)
        self._buckets: dict[str, _Bucket] = {}
        self.refused = 0

    def take(self, address: str) -> float | None:
        """None when the request may go on; else the seconds until one would."""
        now = self.clock()
        bucket = self._refilled(address, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        self.refused += 1
        return (1.0 - bucket.tokens) / self._rate

    def refund(self, address: str) -> None:
        """The request was authenticated: it did not spend the budget."""
        bucket = self._buckets.get(address)
        if bucket is not None:
            bucket.tokens = min(float(self.limit.attempts), bucket.tokens + 1.0)

    def _refilled(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_ADDRESSES:
                self._forget_some(now)
            bucket = self._buckets[address] = _Bucket(float(self.limit.attempts), now)
            return bucket
        capacity = float(self.limit.attempts)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        return bucket

    def _forget_some(self, now: float) -> None:
        """Full buckets first (nothing to remember); else the oldest tenth."""
        capacity = float(self.limit.attempts)
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self._rate >= capacity
        ]
        for key in full or list(self._buckets)[: MAX_ADDRESSES // 10]:
            del self._buckets[key]


def address_key(address: str) -> str:
    """The bucket of a client address: IPv6 by its /64, anything else as given."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def may_cost_a_lookup(request: web.Request) -> bool:
    """A write, or a request carrying a credential ``authenticate`` would look up."""
    return (
        request.method not in READS
        or "Authorization" in request.headers
        or portal_of(request).cookie_name in request.cookies
    )


ADDRESS_BUDGET = web.AppKey("pbx_address_budget", AddressBudget)


@web.middleware
async def unauthenticated_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Runs before ``authenticate``: a spent budget is refused before any lookup."""
    if not may_cost_a_lookup(request):
        return await handler(request)
    budget = request.app[ADDRESS_BUDGET]
    address = address_key(client_addr(request))
    retry_after = budget.take(address)
    if retry_after is not None:
        await asyncio.sleep(budget.refusal_delay)  # a flooder waiting for answers gets few
        raise RateLimited(retry_after)
    try:
        return await handler(request)
    finally:
        if identity_of(request) is not None:
            budget.refund(address)

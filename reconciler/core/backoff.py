"""The one retry-delay rule: exponential growth, capped, with full jitter.

Full jitter (a uniform draw between 0 and the capped exponential) spreads the retries of
many clients (daemons after a database restart, nodes after a network blink) instead of
synchronizing them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def full_jitter(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before retry number ``attempt`` (0 for the first retry): uniform in
    ``[0, min(cap, base * 2**attempt)]``."""
    ceiling = min(cap, base * (2 ** min(max(attempt, 0), 32)))
    return (rng or random).uniform(0.0, ceiling)


@dataclass
class Backoff:
    """Counts consecutive failures; ``next_delay()`` after a failure, ``reset()`` after a
    success. ``floor`` keeps a minimum delay so a draw near 0 never spins."""

    base: float
    cap: float
    floor: float = 0.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        delay = max(
            self.floor, full_jitter(self.failures, base=self.base, cap=self.cap, rng=self.rng)
        )
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

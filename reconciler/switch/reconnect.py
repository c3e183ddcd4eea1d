"""How soon a node is tried again: the reconnect policy the ESL clients are given.

A switch that restarts must be back in service within about 2 s of its event socket
accepting connections (measured on a real 1.10.12: a backoff that grew to 30 s while it was
down made that 1 to 11 s). Connecting to a closed port costs almost nothing, so a node that
is down is probed at a short interval (full jitter, capped at ``probe_cap``, never below
``probe_floor`` so a draw near zero cannot spin) however long it has been down. A refused
password or ACL is different: a person has to fix it, so those attempts back off longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reconciler.core.backoff import full_jitter


@dataclass(frozen=True)
class ReconnectPolicy:
    """Delays in seconds; ``failures`` / ``refusals`` count from 1 (the ESL client's
    consecutive failures). ``stable_after``: a connection that lived this long ends a
    streak (one that dies sooner counts as a failure: no resync storm on a flapping node)."""

    probe_base: float = 0.2
    probe_cap: float = 1.0
    probe_floor: float = 0.2
    auth_base: float = 2.0
    auth_cap: float = 60.0
    stable_after: float = 10.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def probe_delay(self, failures: int) -> float:
        """Before the next attempt on an unreachable node: at most ``probe_cap``."""
        drawn = full_jitter(failures - 1, base=self.probe_base, cap=self.probe_cap, rng=self.rng)
        return min(self.probe_cap, max(self.probe_floor, drawn))

    def auth_delay(self, refusals: int) -> float:
        """Before the next attempt after the switch refused our password (or ACL)."""
        drawn = full_jitter(refusals - 1, base=self.auth_base, cap=self.auth_cap, rng=self.rng)
        return max(self.probe_floor, drawn)

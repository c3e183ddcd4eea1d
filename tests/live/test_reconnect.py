"""How soon a node is tried again: short jittered probes while it is down, however long."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from reconciler.switch import ReconnectPolicy


@given(st.integers(1, 10_000), st.integers(0, 2**32))
def test_a_down_node_is_probed_within_the_cap_and_never_below_the_floor(
    failures: int, seed: int
) -> None:
    policy = ReconnectPolicy(rng=random.Random(seed))
    assert policy.probe_floor <= policy.probe_delay(failures) <= policy.probe_cap <= 1.0


def test_probes_are_jittered_not_in_lockstep() -> None:
    policy = ReconnectPolicy(rng=random.Random(3))
    delays = {round(policy.probe_delay(20), 6) for _ in range(50)}
    assert len(delays) > 40


def test_a_refused_password_backs_off_much_longer() -> None:
    class Ceiling(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    policy = ReconnectPolicy(rng=Ceiling())
    assert [policy.auth_delay(n) for n in (1, 2, 3, 10)] == [2.0, 4.0, 8.0, 60.0]
    assert policy.probe_delay(10) == 1.0

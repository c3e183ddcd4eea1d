"""The leader's periodic rounds: a round only while this daemon leads and a pass has run."""

from __future__ import annotations

import asyncio

from reconciler.daemon.leader_rounds import run_leader_rounds
from reconciler.reconcile import Reconciler
from reconciler.store.runner import ConnectionRunner

PASSED: Reconciler = object()  # type: ignore[assignment]  # a round only passes it on


async def test_a_round_runs_only_while_leading_with_a_pass_behind_it() -> None:
    # each tick: (the last pass's reconciler, whether this daemon leads)
    script = [(None, True), (PASSED, False), (PASSED, False), (PASSED, True)]
    ticks: list[tuple[Reconciler | None, bool]] = []
    rounds: list[tuple[int, Reconciler]] = []
    stop = asyncio.Event()

    def reconciler() -> Reconciler | None:
        ticks.append(script[len(ticks)])
        return ticks[-1][0]

    async def one_round(runner: ConnectionRunner, passed: Reconciler) -> None:
        rounds.append((len(ticks), passed))
        stop.set()

    await asyncio.wait_for(
        run_leader_rounds(
            "test", one_round, lambda: None, reconciler, lambda: ticks[-1][1], 0.001, stop
        ),
        10,
    )
    assert rounds == [(4, PASSED)]


async def test_stop_ends_the_loop_while_it_waits() -> None:
    stop = asyncio.Event()
    loop = asyncio.create_task(
        run_leader_rounds("test", _never, lambda: None, lambda: None, lambda: True, 3600, stop)
    )
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(loop, 10)


async def _never(runner: ConnectionRunner, passed: Reconciler) -> None:
    raise AssertionError("no round without a pass")

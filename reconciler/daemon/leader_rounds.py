"""The leader's periodic rounds (call and voicemail retention): one round every
``interval`` seconds while this daemon leads, until ``stop``.

The leader only, so several daemons do not repeat the same deletes; a round reads the
reconciler of the last pass. Each loop has a connection runner of its own (one connection,
in a thread): never the pass's connection, never the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from reconciler.reconcile import Reconciler
from reconciler.store.runner import ConnectionRunner

Round = Callable[[ConnectionRunner, Reconciler], Awaitable[object]]
"""One round, given the loop's runner and the last pass's reconciler."""


async def run_leader_rounds(
    name: str,
    one_round: Round,
    dsn: Callable[[], str | None],
    reconciler: Callable[[], Reconciler | None],
    is_leader: Callable[[], bool],
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Until ``stop``: ``one_round`` every ``interval`` seconds while this daemon leads."""
    runner = ConnectionRunner(dsn, size=1, name=name)
    try:
        while not stop.is_set():
            current = reconciler()
            if current is not None and is_leader():
                await one_round(runner, current)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        await runner.close()

"""Watching the spec directory: a debounced "something changed" signal.

The watcher says *that* files changed, never *what*: the pass re-reads the directory through
the spec loader, which decides what is new. A directory that does not exist (yet) is waited
for, never read as empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from reconciler.core.logs import event

log = logging.getLogger(__name__)


async def watch_spec_dir(
    directory: Path,
    on_change: Callable[[], None],
    stop: asyncio.Event,
    *,
    debounce_ms: int = 200,
    retry_seconds: float = 2.0,
) -> None:
    """Call ``on_change`` after each debounced batch of file events, until ``stop`` is set."""
    from watchfiles import awatch  # heavy import; only the daemon needs it

    while not stop.is_set():
        if not await asyncio.to_thread(directory.is_dir):
            await _sleep_or_stop(stop, retry_seconds)
            continue
        try:
            async for _changes in awatch(
                directory, debounce=debounce_ms, step=50, stop_event=stop, recursive=True
            ):
                on_change()
        except (OSError, RuntimeError) as exc:
            event(log, "file watch failed; retrying", logging.WARNING, error=str(exc))
            await _sleep_or_stop(stop, retry_seconds)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return

"""Named, guarded background tasks: an unexpected exit is logged, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from reconciler.core.logs import event

log = logging.getLogger(__name__)


class TaskSupervisor:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []
        self.stopping = False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, one_shot: bool = False) -> None:
        """Run ``coro`` as task ``name``. A crash is logged with its traceback; a long-lived
        task (not ``one_shot``) that returns is logged as an error too."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(lambda t: self._done(t, one_shot))
        self._tasks.append(task)

    def _done(self, task: asyncio.Task[Any], one_shot: bool) -> None:
        if task.cancelled() or self.stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s crashed", task.get_name(), exc_info=exc)
        elif not one_shot:
            event(log, "background task ended unexpectedly", logging.ERROR, task=task.get_name())

    async def cancel_all(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

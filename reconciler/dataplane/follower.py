"""The generation a worker serves: the file is polled every ``POLL_SECONDS`` and a new one
is mapped only when it is whole (checksums; sections of the data file this worker verified
before are trusted again: appended bytes never change) and of this database; otherwise the
last good generation keeps serving. A file that is gone means the control plane withdrew it (another
database): the worker then fails closed, answering "not found" until a new one appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from reconciler.core.identity import DatabaseIdentity
from reconciler.core.logs import event
from reconciler.serve.generation import GenerationRaced, MappedGeneration, open_generation
from reconciler.serve.persist import SnapshotError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05

_Stamp = tuple[int, int, int, int]


class GenerationFollower:
    def __init__(
        self,
        path: Path,
        *,
        dsn_fingerprint: str,
        expected_identity: DatabaseIdentity | None = None,
    ) -> None:
        self.path = path
        self._fingerprint = dsn_fingerprint
        self._expected = expected_identity
        self.current: MappedGeneration | None = None
        self._stamp: _Stamp | None = None
        self.refused = 0  # generations seen but not served (torn, foreign, unreadable)

    def get(self) -> MappedGeneration | None:
        """For the request path: the generation being served, or None (fail closed)."""
        return self.current

    def check(self) -> None:
        """One poll: map the file if it changed, keep the last good one if it is unusable."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.current is not None:
                event(log, "generation withdrawn: answering not found", logging.WARNING,
                      worker=os.getpid())  # fmt: skip
                self._swap(None)
            self._stamp = None
            return
        except OSError:
            return  # cannot tell: keep serving what we have
        stamp = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            generation = open_generation(
                self.path,
                expected_identity=self._expected,
                dsn_fingerprint=self._fingerprint,
                previous=self.current,  # its sections, verified, are not read again
            )
        except GenerationRaced:
            self._stamp = None  # replaced while it was opened: read the new one next poll
            return
        except SnapshotError as exc:
            self.refused += 1
            event(log, "generation not served: keeping the last good one", logging.WARNING,
                  error=str(exc), worker=os.getpid())  # fmt: skip
            return
        self._swap(generation)

    def _swap(self, generation: MappedGeneration | None) -> None:
        # answers are computed synchronously on this loop: nothing holds the old mapping now
        old, self.current = self.current, generation
        if old is not None:
            old.close()
        if generation is not None:
            event(log, "serving generation", generation=generation.generation, worker=os.getpid())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)

    def close(self) -> None:
        self._swap(None)

"""The snapshot the daemon serves: swapped whole, rebuilt off the event loop, persisted for
restarts while PostgreSQL is down."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import AppliedState
from reconciler.serve import Snapshot, build_snapshot, load_snapshot, save_snapshot

log = logging.getLogger(__name__)


class ServedSnapshot:
    def __init__(self, path: Path, metrics: Metrics) -> None:
        self.path = path
        self._metrics = metrics
        self.current: Snapshot | None = None
        self.built_at: str | None = None
        self.from_disk = False

    def get(self) -> Snapshot | None:
        """For the request path: one attribute read, the old or the new snapshot, whole."""
        return self.current

    @property
    def stale(self) -> bool:
        """Nothing built from the database yet (none at all, or only the persisted one)."""
        return self.current is None or self.from_disk

    def load_persisted(self) -> None:
        if not self.path.exists():
            return
        try:
            snapshot = load_snapshot(self.path, freeze=True)
        except Exception as exc:  # a corrupt file must not stop the daemon
            event(
                log,
                "persisted snapshot unreadable",
                logging.WARNING,
                path=str(self.path),
                error=str(exc),
            )
            return
        self._swap(snapshot, source="disk")
        self.from_disk = True

    async def rebuild(self, applied: AppliedState) -> None:
        state, hashes = dict(applied.state), dict(applied.a1_hashes)
        generation = f"{int(time.time() * 1000):x}"
        snapshot = await asyncio.to_thread(
            # frozen: kept out of the cyclic GC, whose passes over 100k objects stall the loop
            lambda: build_snapshot(state, hashes, generation=generation, freeze=True)
        )
        self._swap(snapshot, source="database")
        self.from_disk = False
        for problem in snapshot.problems:
            event(log, "snapshot problem", logging.WARNING, problem=problem)
        try:
            await asyncio.to_thread(save_snapshot, snapshot, self.path)
        except OSError as exc:
            event(log, "snapshot not persisted", logging.WARNING, error=str(exc))

    def _swap(self, snapshot: Snapshot, *, source: str) -> None:
        self.current = snapshot
        self.built_at = datetime.now(UTC).isoformat(timespec="seconds")
        counts = snapshot.counts()
        self._metrics.snapshot_generation_time.set(time.time())
        self._metrics.snapshot_users.set(counts["users"])
        event(log, "snapshot swapped", source=source, generation=snapshot.generation, **counts)

    def describe(self) -> dict[str, object] | None:
        if self.current is None:
            return None
        return {
            "generation": self.current.generation,
            "built_at": self.built_at,
            "source": "disk" if self.from_disk else "database",
            **self.current.counts(),
        }

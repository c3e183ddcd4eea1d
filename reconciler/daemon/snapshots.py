"""The snapshot the daemon serves: swapped whole, rebuilt off the event loop, persisted for
restarts while PostgreSQL is down, and bound to the database it was built from.

A persisted file is served at start only when it belongs to the configured database: the
database answers with its identity (``store.identity``), or, while it is unreachable, the
file's DSN fingerprint (never the password) names the same one. On every (re)connection a
snapshot still served from the file is checked again, and dropped when it is another
database's. An empty snapshot never replaces a file holding users (``serve.persist``), and a
file that cannot be written is visible in ``/readyz`` and the metrics, never just a warning.

With xml_curl workers (``generation_path``), every snapshot served is also written as a
generation file for them (``serve.generation``), under the same identity and the same
never-empty rule; a snapshot that may not be served (none, or another database's) removes
the file, and the workers then fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.identity import DatabaseIdentity
from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import AppliedState
from reconciler.serve import (
    PersistStatus,
    Snapshot,
    SnapshotNotPersisted,
    build_snapshot,
    load_snapshot,
    read_snapshot_header,
    save_snapshot,
)
from reconciler.serve.generation import write_generation
from reconciler.serve.snapshot import declares_users
from reconciler.store import StoreUnavailable

log = logging.getLogger(__name__)

IdentityProbe = Callable[[float], DatabaseIdentity | None]
"""``probe(timeout)``: the configured database's identity; None when it has none yet (never
migrated); ``StoreUnavailable`` when it cannot be asked."""


class ServedSnapshot:
    def __init__(
        self,
        path: Path,
        metrics: Metrics,
        *,
        fingerprint: str,
        probe: IdentityProbe,
        generation_path: Path | None = None,
        roots: AudioRoots = DEFAULT_ROOTS,
    ) -> None:
        self.path = path
        self._roots = roots
        self.generation_path = generation_path
        self._metrics = metrics
        self._fingerprint = fingerprint
        self._probe = probe
        self._identity: DatabaseIdentity | None = None  # of the connected database
        self._disk_identity: DatabaseIdentity | None = None  # of the file being served
        self.current: Snapshot | None = None
        self.built_at: str | None = None
        self.from_disk = False
        self.persist_status = PersistStatus(False, None, "not written yet")

    def get(self) -> Snapshot | None:
        """For the request path: one attribute read, the old or the new snapshot, whole."""
        return self.current

    @property
    def stale(self) -> bool:
        """Nothing built from the database yet (none at all, or only the persisted one)."""
        return self.current is None or self.from_disk

    async def load_persisted(self) -> None:
        await self._load_persisted()
        if self.current is None:
            self._withdraw_generation()
        elif self._disk_identity is not None:
            await self._write_generation(self.current, self._disk_identity, allow_empty=True)

    async def _load_persisted(self) -> None:
        if not self.path.exists():
            return
        try:  # a database that answers says which it is; else the DSN must name the same one
            expected = await asyncio.to_thread(self._probe, 2.0)
        except StoreUnavailable:
            expected = None
        else:
            if expected is None:
                event(log, "persisted snapshot not used: the database is new", logging.WARNING)
                return
        try:
            snapshot = load_snapshot(
                self.path,
                expected_identity=expected,
                dsn_fingerprint=self._fingerprint,
                freeze=True,
            )
            header = read_snapshot_header(self.path)
        except Exception as exc:  # a corrupt or foreign file must not stop the daemon
            event(log, "persisted snapshot not used", logging.WARNING, error=str(exc))
            return
        self._disk_identity = header.identity
        self.persist_status = PersistStatus(True, header.written_at, "served from the file")
        self._swap(snapshot, source="disk")
        self.from_disk = True

    async def connected(self) -> None:
        """The database (re)connected: it may be another one now. A snapshot still served
        from the file must be of this database, or it is no longer served."""
        self._identity = None
        if not self.from_disk:
            return
        try:
            identity = await asyncio.to_thread(self._probe, 5.0)
        except StoreUnavailable:
            return  # cannot tell yet: keep serving
        if identity is None or identity != self._disk_identity:
            self.current, self.from_disk = None, False
            self._withdraw_generation()
            event(log, "persisted snapshot dropped: written for another database", logging.WARNING)

    async def rebuild(self, applied: AppliedState) -> None:
        state, hashes = dict(applied.state), dict(applied.a1_hashes)
        generation = f"{int(time.time() * 1000):x}"
        snapshot = await asyncio.to_thread(
            # frozen: kept out of the cyclic GC, whose passes over 100k objects stall the loop
            lambda: build_snapshot(
                state, hashes, generation=generation, freeze=True, roots=self._roots
            )
        )
        self._swap(snapshot, source="database")
        self.from_disk = False
        for problem in snapshot.problems:
            event(log, "snapshot problem", logging.WARNING, problem=problem)
        await self._persist(snapshot, allow_empty=not declares_users(state))

    async def _persist(self, snapshot: Snapshot, *, allow_empty: bool) -> None:
        if self._identity is None:
            with contextlib.suppress(StoreUnavailable):
                self._identity = await asyncio.to_thread(self._probe, 5.0)
        identity = self._identity
        try:
            if identity is None:
                raise SnapshotNotPersisted("snapshot not written: database identity unknown")
            await self._write_generation(snapshot, identity, allow_empty=allow_empty)
            self.persist_status = await asyncio.to_thread(
                lambda: save_snapshot(
                    snapshot,
                    self.path,
                    identity=identity,
                    dsn_fingerprint=self._fingerprint,
                    allow_empty=allow_empty,
                )
            )
            self._metrics.snapshot_persisted_time.set(self.persist_status.persisted_at or 0)
        except SnapshotNotPersisted as exc:
            self.persist_status = self.persist_status.failed(str(exc))
            self._metrics.snapshot_persist_failures.inc()
            event(log, "snapshot not persisted", logging.WARNING, error=str(exc))

    async def _write_generation(
        self, snapshot: Snapshot, identity: DatabaseIdentity, *, allow_empty: bool
    ) -> None:
        """The workers' copy. Refused or failed: they keep the last good generation."""
        path = self.generation_path
        if path is None:
            return
        try:
            await asyncio.to_thread(
                lambda: write_generation(
                    snapshot,
                    path,
                    identity=identity,
                    dsn_fingerprint=self._fingerprint,
                    allow_empty=allow_empty,
                )
            )
        except SnapshotNotPersisted as exc:
            self._metrics.snapshot_persist_failures.inc()
            event(log, "generation not written", logging.WARNING, error=str(exc))

    def _withdraw_generation(self) -> None:
        if self.generation_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.generation_path.unlink()

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
            "persisted": self.persist_status.persisted,
            **self.current.counts(),
        }

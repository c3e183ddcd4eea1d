"""The snapshot the daemon serves: rebuilt off the event loop when the applied state
changes, persisted as the one generation file (``serve.generation``), served from that
file's mapping, and bound to the database it was built from.

The generation file is what a restart serves at once (mapped, not parsed: milliseconds at
any size), what the xml_curl workers follow, and what this process's own listener answers
from: once written, the built ``Snapshot`` leaves this process's heap and the records live
in the page cache, shared with the workers. Only while the file cannot be written (state
dir full or read-only) is the new snapshot served from memory here; the workers keep the
last good generation, and /readyz and ``pbx_snapshot_persist_failures_total`` say so.

A persisted file is served at start only when it belongs to the configured database: the
database answers with its identity (``store.identity``), or, while it is unreachable, the
file's DSN fingerprint (never the password) names the same one. On every (re)connection a
generation still served from the file is checked again. A file that may not be served
(another database's, torn, a database never migrated) is removed: the workers then fail
closed. An empty snapshot never replaces a file holding users (``serve.persist``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.identity import DatabaseIdentity
from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import AppliedState
from reconciler.serve import PersistStatus, SnapshotNotPersisted, build_snapshot
from reconciler.serve.generation import MappedGeneration, open_generation, write_generation
from reconciler.serve.persist import LEGACY_SNAPSHOT_FILE, SnapshotError
from reconciler.serve.snapshot import Lookups, Snapshot, declares_users
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
        roots: AudioRoots = DEFAULT_ROOTS,
    ) -> None:
        self.path = path  # the generation file
        self._roots = roots
        self._metrics = metrics
        self._fingerprint = fingerprint
        self._probe = probe
        self._identity: DatabaseIdentity | None = None  # of the connected database
        self._disk_identity: DatabaseIdentity | None = None  # of the file being served
        self.current: Lookups | None = None
        self.built_at: str | None = None
        self.from_disk = False
        self.persist_status = PersistStatus(False, None, "not written yet")
        # With xml_curl workers: waits until they serve a generation (set by the serving side)
        self.propagate: Callable[[str], Awaitable[bool]] | None = None

    def get(self) -> Lookups | None:
        """For the request path: one attribute read, the old or the new view, whole."""
        return self.current

    @property
    def stale(self) -> bool:
        """Nothing built from the database yet (none at all, or only the persisted one)."""
        return self.current is None or self.from_disk

    @property
    def in_heap(self) -> bool:
        """Served from a ``Snapshot`` in this process's memory (the file could not be
        written), not from the generation's mapping."""
        return isinstance(self.current, Snapshot)

    async def load_persisted(self) -> None:
        _remove_legacy(self.path.parent / LEGACY_SNAPSHOT_FILE)
        if not self.path.exists():
            return
        try:  # a database that answers says which it is; else the DSN must name the same one
            expected = await asyncio.to_thread(self._probe, 2.0)
        except StoreUnavailable:
            expected = None
        else:
            if expected is None:
                event(log, "persisted generation not used: the database is new", logging.WARNING)
                self._withdraw()
                return
        try:
            mapped = await asyncio.to_thread(
                lambda: open_generation(
                    self.path, expected_identity=expected, dsn_fingerprint=self._fingerprint
                )
            )
        except SnapshotError as exc:  # a torn or foreign file must not stop the daemon
            event(log, "persisted generation not used", logging.WARNING, error=str(exc))
            self._withdraw()
            return
        self._disk_identity = mapped.header.identity
        self.persist_status = PersistStatus(True, mapped.header.written_at, "served from the file")
        self._swap(mapped, source="disk")
        self.from_disk = True

    async def connected(self) -> None:
        """The database (re)connected: it may be another one now. A generation still served
        from the file must be of this database, or it is no longer served."""
        self._identity = None
        if not self.from_disk:
            return
        try:
            identity = await asyncio.to_thread(self._probe, 5.0)
        except StoreUnavailable:
            return  # cannot tell yet: keep serving
        if identity is None or identity != self._disk_identity:
            self._swap(None, source="none")
            self.from_disk = False
            self._withdraw()
            event(log, "persisted generation dropped: written for another database",
                  logging.WARNING)  # fmt: skip

    async def rebuild(self, applied: AppliedState) -> None:
        """Build, serve at once from memory, persist, then serve from the file's mapping."""
        state, hashes = dict(applied.state), dict(applied.a1_hashes)
        pins = dict(applied.voicemail_hashes)
        gateways = tuple(applied.platform.gateways.values())
        generation = f"{int(time.time() * 1000):x}"
        snapshot = await asyncio.to_thread(
            # frozen: kept out of the cyclic GC, whose passes over 100k objects stall the loop
            lambda: build_snapshot(
                state,
                hashes,
                voicemail_hashes=pins,
                generation=generation,
                freeze=True,
                roots=self._roots,
                gateways=gateways,
            )
        )
        self._swap(snapshot, source="database")
        self.from_disk = False
        for problem in snapshot.problems:
            event(log, "snapshot problem", logging.WARNING, problem=problem)
        mapped = await self._persist(snapshot, allow_empty=not declares_users(state))
        if mapped is not None and self.current is snapshot:
            self._swap(mapped, source="file", quiet=True)
            # The switches are told next (queue loads fetch from the workers): let the
            # workers serve this generation first.
            if self.propagate is not None and not await self.propagate(mapped.generation):
                event(log, "xml_curl workers still serve an older generation", logging.WARNING,
                      generation=mapped.generation)  # fmt: skip

    async def _persist(self, snapshot: Snapshot, *, allow_empty: bool) -> MappedGeneration | None:
        """Write the generation and map it back; None when it is not on disk (the status
        and the metrics say why)."""
        if self._identity is None:
            with contextlib.suppress(StoreUnavailable):
                self._identity = await asyncio.to_thread(self._probe, 5.0)
        identity = self._identity
        try:
            if identity is None:
                raise SnapshotNotPersisted("snapshot not written: database identity unknown")
            mapped = await asyncio.to_thread(
                lambda: self._write_and_map(snapshot, identity, allow_empty=allow_empty)
            )
        except SnapshotNotPersisted as exc:
            self.persist_status = self.persist_status.failed(str(exc))
            self._metrics.snapshot_persist_failures.inc()
            event(log, "snapshot not persisted", logging.WARNING, error=str(exc))
            return None
        written_at = mapped.header.written_at
        self.persist_status = PersistStatus(
            True, written_at, f"{mapped.user_count} users written to {self.path}"
        )
        self._metrics.snapshot_persisted_time.set(written_at)
        return mapped

    def _write_and_map(
        self, snapshot: Snapshot, identity: DatabaseIdentity, *, allow_empty: bool
    ) -> MappedGeneration:
        write_generation(snapshot, self.path, identity=identity,
                         dsn_fingerprint=self._fingerprint, allow_empty=allow_empty)  # fmt: skip
        try:
            return open_generation(  # written, checksummed, fsynced and renamed just now
                self.path, expected_identity=identity, dsn_fingerprint=self._fingerprint,
                verify=False,
            )  # fmt: skip
        except SnapshotError as exc:  # replaced under us
            raise SnapshotNotPersisted(f"generation written but not readable: {exc}") from exc

    def _withdraw(self) -> None:
        """No generation for the workers: they fail closed."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _swap(self, view: Lookups | None, *, source: str, quiet: bool = False) -> None:
        # lookups run synchronously on this loop: none is reading the old mapping now
        old, self.current = self.current, view
        if isinstance(old, MappedGeneration) and old is not view:
            old.close()
        if view is None or quiet:
            return
        self.built_at = datetime.now(UTC).isoformat(timespec="seconds")
        counts = view.counts()
        self._metrics.snapshot_generation_time.set(time.time())
        self._metrics.snapshot_users.set(counts["users"])
        event(log, "snapshot swapped", source=source, generation=view.generation, **counts)

    def describe(self) -> dict[str, object] | None:
        if self.current is None:
            return None
        return {
            "generation": self.current.generation,
            "built_at": self.built_at,
            "source": "disk" if self.from_disk else "database",
            "persisted": self.persist_status.persisted,
            "in_heap": self.in_heap,
            **self.current.counts(),
        }

    def close(self) -> None:
        self._swap(None, source="none")


def _remove_legacy(path: Path) -> None:
    """``snapshot.json`` of an earlier version: no longer read, and it holds A1 hashes."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        event(log, "removed the snapshot file of an earlier version", path=str(path))

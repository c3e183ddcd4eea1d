"""The snapshot the daemon serves: written off the event loop when the applied state
changes, as the one persisted generation (``serve.generation``), served from its mapping,
and bound to the database it was built from.

The generation is what a restart serves at once (mapped, not parsed: milliseconds at any
size), what the xml_curl workers follow, and what this process's own listener answers
from. It is written tenant by tenant (``serve.generation_writer``): only the tenants whose
records changed are rendered, one at a time, so the served view never sits whole in this
process's heap, and an edit of one tenant costs that tenant's bytes, not everyone's. Only
while the generation cannot be written (state dir full or read-only) is the new view built
in memory and served from here; the workers keep the last good generation, and /readyz and
``pbx_snapshot_persist_failures_total`` say so.

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
from reconciler.daemon.early import IdentityProbe, check_persisted
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import AppliedState
from reconciler.serve import PersistStatus, SnapshotNotPersisted, build_snapshot
from reconciler.serve.generation import MappedGeneration, open_generation, remove_generation
from reconciler.serve.generation_writer import GenerationWriter
from reconciler.serve.persist import LEGACY_SNAPSHOT_FILE, SnapshotError
from reconciler.serve.snapshot import Lookups, Snapshot, declares_users
from reconciler.store import StoreUnavailable

log = logging.getLogger(__name__)


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
        self.path = path  # the generation's index
        self._roots = roots
        self._writer = GenerationWriter(path, roots=roots)
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
        mapped = await asyncio.to_thread(check_persisted, self.path, self._fingerprint, self._probe)
        if mapped is None:  # none, or withdrawn (the workers fail closed)
            self._writer.forget()
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
        """Write the new generation (only the tenants that changed are rendered) and serve
        its mapping; while it cannot be written, build the view in memory and serve that."""
        # AppliedState replaces these mappings, never changes them: no copy needed
        state, hashes, pins = applied.state, applied.a1_hashes, applied.voicemail_hashes
        gateways = tuple(applied.platform.gateways.values())
        generation = f"{int(time.time() * 1000):x}"
        allow_empty = not declares_users(state)
        try:
            identity = await self._database_identity()
            written = await asyncio.to_thread(
                lambda: self._writer.write(
                    state,
                    hashes,
                    pins,
                    generation=generation,
                    identity=identity,
                    dsn_fingerprint=self._fingerprint,
                    allow_empty=allow_empty,
                    gateways=gateways,
                )
            )
            mapped = await asyncio.to_thread(self._map_written, identity)
        except SnapshotNotPersisted as exc:
            self.persist_status = self.persist_status.failed(str(exc))
            self._metrics.snapshot_persist_failures.inc()
            event(log, "snapshot not persisted", logging.WARNING, error=str(exc))
            await self._serve_from_memory(applied, generation)
            return
        self._swap(mapped, source="database", rendered=written.rendered)
        self.from_disk = False
        self._log_problems(written.problems)
        written_at = mapped.header.written_at
        self.persist_status = PersistStatus(
            True, written_at, f"{mapped.user_count} users written to {self.path}"
        )
        self._metrics.snapshot_persisted_time.set(written_at)
        # The switches are told next (queue loads fetch from the workers): let the workers
        # serve this generation first.
        if self.propagate is not None and not await self.propagate(mapped.generation):
            event(log, "xml_curl workers still serve an older generation", logging.WARNING,
                  generation=mapped.generation)  # fmt: skip

    async def _serve_from_memory(self, applied: AppliedState, generation: str) -> None:
        """The generation could not be written: this process serves the new view from its
        heap (the workers keep the last good generation)."""
        state, hashes = applied.state, applied.a1_hashes
        pins = applied.voicemail_hashes
        gateways = tuple(applied.platform.gateways.values())
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
        self._log_problems(snapshot.problems)

    def _log_problems(self, problems: tuple[str, ...]) -> None:
        for problem in problems:
            event(log, "snapshot problem", logging.WARNING, problem=problem)

    async def _database_identity(self) -> DatabaseIdentity:
        if self._identity is None:
            with contextlib.suppress(StoreUnavailable):
                self._identity = await asyncio.to_thread(self._probe, 5.0)
        if self._identity is None:
            raise SnapshotNotPersisted("snapshot not written: database identity unknown")
        return self._identity

    def _map_written(self, identity: DatabaseIdentity) -> MappedGeneration:
        try:
            return open_generation(  # written, checksummed, fsynced and renamed just now
                self.path, expected_identity=identity, dsn_fingerprint=self._fingerprint,
                verify=False,
            )  # fmt: skip
        except SnapshotError as exc:  # replaced under us
            self._writer.forget()
            raise SnapshotNotPersisted(f"generation written but not readable: {exc}") from exc

    def _withdraw(self) -> None:
        """No generation for the workers: they fail closed."""
        self._writer.forget()
        remove_generation(self.path)

    def _swap(self, view: Lookups | None, *, source: str, rendered: int | None = None) -> None:
        # lookups run synchronously on this loop: none is reading the old mapping now
        old, self.current = self.current, view
        if isinstance(old, MappedGeneration) and old is not view:
            old.close()
        if view is None:
            return
        self.built_at = datetime.now(UTC).isoformat(timespec="seconds")
        counts = view.counts()
        self._metrics.snapshot_generation_time.set(time.time())
        self._metrics.snapshot_users.set(counts["users"])
        if rendered is not None:  # tenants rendered for it: the others' sections were reused
            counts["rendered"] = rendered
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

"""The daemon's upkeep of tenants' audio on the switches' storage.

After every pass attempt, every daemon copies the valid tenants' sounds from git into the
sounds root (``sources.tenant_sounds``; each daemon writes its own node's disk, or the same
shared files atomically). The leader also deletes audio older than each tenant's retention
(``core.retention``), at most once per ``prune_every`` seconds: audited per tenant, counted
in ``pbx_audio_pruned_total{kind}``, and only ever inside ``<root>/<tenant id>/`` with no
link followed. A failure (a full disk, a directory that is not writable) is reported in
``/status`` and never stops a pass or a call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.audio_roots import AudioRoots
from reconciler.core.logs import event
from reconciler.core.recording_names import (
    ANSWERED_DIR,
    answered_note,
    is_call_uuid,
    note_name,
)
from reconciler.core.retention import RetentionPolicy, expired, policies
from reconciler.daemon.metrics import Metrics
from reconciler.reconcile import Reconciler
from reconciler.sources.tenant_sounds import SoundSync, SoundSyncer
from reconciler.store import PostgresStore
from reconciler.store.accounts import record_audit

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0
# voicemail retention goes through mod_voicemail's own API (vm_delete), never unlink:
# daemon/voicemail_retention.py; only recordings are pruned here
PRUNED_KINDS = ("recordings",)


class AudioUpkeep:
    def __init__(
        self,
        specs_dir: Path,
        roots: AudioRoots,
        metrics: Metrics,
        *,
        prune_every: float = PRUNE_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.roots = roots
        self.sounds = SoundSyncer(specs_dir, Path(roots.sounds))
        self._metrics = metrics
        self._prune_every = prune_every
        self._clock = clock
        self._last_prune: float | None = None
        self._syncing: asyncio.Task[dict[str, SoundSync]] | None = None
        self.pruned: dict[str, dict[str, int]] = {}
        self._tenants: dict[str, str] = {}  # domain -> tenant id, of the applied state
        self.prune_errors: dict[str, str] = {}

    def answered(self, event: Mapping[str, str]) -> None:
        """A ``bridge-agent-start``: note who answered beside the caller's recording
        (``core.recording_names``), written off the event loop; several daemons write the
        same note, atomically."""
        agent, queue = event.get("CC-Agent") or "", event.get("CC-Queue") or ""
        uuid = event.get("CC-Member-Session-UUID") or ""
        tenant = self._tenants.get(agent.partition("@")[2].lower())
        note = answered_note(agent, queue)
        if tenant is None or not note or not is_call_uuid(uuid):
            return
        folder = Path(self.roots.recordings) / tenant / ANSWERED_DIR
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _write_note, folder, uuid, note)

    def after_pass(self, reconciler: Reconciler | None) -> None:
        """On the event loop after each attempt: start a sounds sync unless one runs."""
        if reconciler is None:
            return
        self._tenants = {
            ts.tenant.domain.lower(): tid for tid, ts in reconciler.applied.state.items()
        }
        if self._syncing is not None and not self._syncing.done():
            return
        applied = reconciler.applied
        valid = set(applied.state) - set(applied.spec_status)
        self._syncing = asyncio.create_task(
            asyncio.to_thread(self.sounds.sync, valid), name="sounds"
        )

    async def wait_synced(self) -> None:
        if self._syncing is not None:
            await self._syncing

    def prune(self, store: PostgresStore | None, reconciler: Reconciler) -> None:
        """Leader, in the pass's worker thread: delete audio past its retention."""
        now = self._clock()
        if self._last_prune is not None and now - self._last_prune < self._prune_every:
            return
        self._last_prune = now
        specs = reconciler.last_specs
        if specs is None:
            return
        platform = specs.platform.retention if specs.platform is not None else None
        declared = {tid: loaded.spec.retention for tid, loaded in specs.tenants.items()}
        for tenant, kept in policies(declared, platform).items():
            if tenant in reconciler.applied.state:
                self._prune_tenant(store, tenant, kept, now)

    def _prune_tenant(
        self, store: PostgresStore | None, tenant: str, kept: RetentionPolicy, now: float
    ) -> None:
        for kind in PRUNED_KINDS:
            base = Path(getattr(self.roots, kind)) / tenant
            try:
                old = expired(_regular_files(base), kept.max_age(kind), now)
                for rel in old:
                    os.unlink(base / rel)
            except OSError as exc:
                self.prune_errors[tenant] = f"{kind} not pruned: {exc.strerror or exc}"
                continue
            self.prune_errors.pop(tenant, None)
            if not old:
                continue
            self._metrics.audio_pruned.labels(kind).inc(len(old))
            self.pruned.setdefault(tenant, {}).setdefault(kind, 0)
            self.pruned[tenant][kind] += len(old)
            detail = f"{len(old)} {kind} older than {getattr(kept, kind)} days deleted"
            event(log, "audio pruned", tenant=tenant, kind=kind, files=len(old))
            if store is not None:
                record_audit(
                    store.connection,
                    actor=None,
                    action="audio.prune",
                    result="ok",
                    tenant_id=tenant,
                    target=kind,
                    detail=detail,
                )

    def _roots(self) -> list[tuple[str, str]]:
        roots = self.roots
        return [
            ("recordings", roots.recordings),
            ("sounds", roots.sounds),
            ("voicemail", roots.voicemail),
        ]

    def status(self) -> dict[str, Any]:
        """``/status``'s ``audio``: roots, each tenant's last sounds sync and pruning."""
        sounds: Mapping[str, SoundSync] = self.sounds.last
        return {
            "roots": {
                "recordings": self.roots.recordings,
                "sounds": self.roots.sounds,
                "voicemail": self.roots.voicemail,
            },
            "sounds": {
                tenant: report.to_dict()
                for tenant, report in sounds.items()
                if report.copied or report.removed or report.drifted or report.error
            },
            "pruned": self.pruned,
            "storage": {kind: root_problem(Path(root)) for kind, root in self._roots()},
            "errors": {
                **{t: r.error for t, r in sounds.items() if r.error},
                **self.prune_errors,
            },
        }


LOW_SPACE = 200 * 1024 * 1024


def root_problem(root: Path) -> str | None:
    """What is wrong with an audio root for the switch and the daemon, or None: missing,
    not writable, or nearly full (recordings would stop mid-call)."""
    if not root.is_dir():
        return "missing (created by the first file written; check the mount)"
    if not os.access(root, os.W_OK | os.X_OK):
        return "not writable by the daemon"
    free = shutil.disk_usage(root).free
    if free < LOW_SPACE:
        return f"nearly full: {free // (1024 * 1024)} MiB free"
    return None


def _write_note(folder: Path, uuid: str, note: Mapping[str, str]) -> None:
    try:
        if folder.is_symlink():
            return
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{uuid}.tmp"
        temporary.write_text(json.dumps(note))
        os.replace(temporary, folder / note_name(uuid, note["agent"]))
    except OSError as exc:
        event(log, "answered note not written", logging.WARNING, error=str(exc))


def _regular_files(base: Path) -> Iterator[tuple[str, float]]:
    """``(relative path, mtime)`` of every regular file below ``base``; links are neither
    followed nor listed (a link to another tenant's file must never be deleted through)."""
    if base.is_symlink() or not base.is_dir():
        return
    for directory, dirs, names in os.walk(base, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
        for name in names:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                yield os.path.relpath(path, base), info.st_mtime


def archive_tenant_audio(roots: AudioRoots, tenant: str, archive: str) -> list[str]:
    """A pruned tenant's audio directories renamed beside its schema archive's name
    (``<root>/<tenant>`` -> ``<root>/<archive>``), never deleted. Returns the new paths."""
    moved: list[str] = []
    for root in (roots.recordings, roots.sounds, roots.voicemail):
        source = Path(root) / tenant
        if source.is_dir() and not source.is_symlink():
            target = Path(root) / archive
            source.rename(target)
            moved.append(str(target))
    return moved

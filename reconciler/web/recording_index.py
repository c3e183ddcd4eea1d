"""Each tenant's recordings, listed from memory and kept true to the disk.

Walking 10,000 files and reading every name back took hundreds of milliseconds per page
under load. The index keeps each directory's listing and revalidates it with one ``stat`` of
the directory per request: creating, deleting or renaming a file moves its directory's
mtime, so only a changed directory is listed again, and the disk stays the truth (a file
deleted on disk or by retention disappears at the next request). Two gaps a directory's
mtime leaves are closed: a directory changed within the clock tick of its listing (a listing
whose directory was modified less than ``RACY_SECONDS`` before it is taken again next time,
as git treats its "racy" index entries), and a recording still being written (it grows
without moving its directory's mtime: a file modified less than ``LIVE_SECONDS`` before it
was seen is stat'ed again at every request until it settles). Unlike inotify this needs no
watch per directory and works on shared storage (NFS), one of the supported shapes.

The index is per process (each daemon, each portal worker keeps its own) and per tenant;
one lock per tenant makes concurrent requests wait for one refresh instead of each walking
the tree.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.recording_names import (
    ANSWERED_DIR,
    RecordingName,
    RecordingNames,
    read_note_name,
)

RACY_SECONDS = 2.0
LIVE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Recording:
    name: RecordingName
    size: int
    mtime: float

    @property
    def day(self) -> str:
        return self.name.date or datetime.fromtimestamp(self.mtime, UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Recordings:
    """One tenant's recordings at one moment: newest first, and by call uuid."""

    newest_first: Sequence[Recording]
    by_call: Mapping[str, Sequence[Recording]]
    problem: str | None = None


NOTHING = Recordings((), {})


class _Listing:
    """One directory as last listed: its mtime then, its files and subdirectories."""

    __slots__ = ("files", "listed_at", "live", "mtime_ns", "subdirs")

    def __init__(self, mtime_ns: int, listed_at: float) -> None:
        self.mtime_ns = mtime_ns
        self.listed_at = listed_at
        self.files: dict[str, tuple[int, float]] = {}  # name -> (size, mtime)
        self.subdirs: list[str] = []  # relative paths, ending "/"
        self.live: set[str] = set()  # files still changing when seen

    def trusted(self, mtime_ns: int) -> bool:
        """Unchanged since listed, and not changed within a tick of the listing."""
        return mtime_ns == self.mtime_ns and self.listed_at - mtime_ns / 1e9 >= RACY_SECONDS


def _directory_mtime(path: str) -> int | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return info.st_mtime_ns if stat.S_ISDIR(info.st_mode) else None


def _list(path: str, rel: str, mtime_ns: int, now: float, *, sizes: bool = True) -> _Listing:
    """List ``path``: regular files and directories, no link followed, hidden entries (notes,
    a copy in progress) skipped."""
    listing = _Listing(mtime_ns, now)
    try:
        entries = os.scandir(path)
    except OSError:
        return listing  # deleted or unreadable while listed: the next stat says which
    with entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    listing.subdirs.append(f"{rel}{entry.name}/")
                elif entry.is_file(follow_symlinks=False):
                    if not sizes:
                        listing.files[entry.name] = (0, 0.0)
                        continue
                    info = entry.stat(follow_symlinks=False)
                    listing.files[entry.name] = (info.st_size, info.st_mtime)
                    if now - info.st_mtime < LIVE_SECONDS:
                        listing.live.add(entry.name)
            except OSError:
                continue  # deleted while listed
    return listing


class TenantRecordings:
    """The recordings below one tenant's directory."""

    def __init__(self, base: Path) -> None:
        self._base = str(base)
        self._lock = threading.Lock()
        self._dirs: dict[str, _Listing] = {}
        self._notes: _Listing | None = None
        self._names_key: object = None
        self._parsed: dict[str, RecordingName | None] = {}  # path -> name without its agent
        self._current: Recordings = NOTHING

    def read(self, names: RecordingNames, names_key: object) -> Recordings:
        """The recordings now (``names_key`` says when ``names``, the tenant's templates, changed)."""
        with self._lock:
            changed = self._refresh()
            if names_key != self._names_key:
                self._names_key = names_key
                self._parsed = {}
                changed = True
            if changed:
                self._current = self._build(names)
            return self._current

    def _refresh(self) -> bool:
        """Bring the listings up to the disk; True when anything listed changed."""
        now = time.time()
        fresh: dict[str, _Listing] = {}
        changed = False
        pending = [""]
        while pending:
            rel = pending.pop()
            path = os.path.join(self._base, rel)
            mtime_ns = _directory_mtime(path)
            if mtime_ns is None:
                continue  # gone (or became a link) since its parent was listed
            listing = self._dirs.get(rel)
            if listing is None or not listing.trusted(mtime_ns):
                listing = _list(path, rel, mtime_ns, now)
                changed = True
            elif listing.live:
                changed |= _restat_live(path, listing, now)
            fresh[rel] = listing
            pending.extend(listing.subdirs)
        changed |= fresh.keys() != self._dirs.keys()
        self._dirs = fresh
        notes_path = os.path.join(self._base, ANSWERED_DIR)
        notes_mtime = _directory_mtime(notes_path)
        if notes_mtime is None:
            changed |= self._notes is not None
            self._notes = None
        elif self._notes is None or not self._notes.trusted(notes_mtime):
            self._notes = _list(notes_path, "", notes_mtime, now, sizes=False)
            changed = True
        return changed

    def _build(self, names: RecordingNames) -> Recordings:
        answered: dict[str, str] = {}
        for note in self._notes.files if self._notes is not None else ():
            read = read_note_name(note)
            if read is not None:
                answered[read[0]] = read[1]
        parsed: dict[str, RecordingName | None] = {}
        found: list[Recording] = []
        for rel, listing in self._dirs.items():
            for file_name, (size, mtime) in listing.files.items():
                path = rel + file_name
                name = self._parsed.get(path) if path in self._parsed else names.read(path)
                parsed[path] = name
                if name is None:
                    continue
                if name.queue is not None and name.uuid in answered:
                    name = replace(name, agent=answered[name.uuid])
                found.append(Recording(name, size, mtime))
        self._parsed = parsed
        found.sort(key=_newest_first)
        by_call: dict[str, list[Recording]] = {}
        for recording in found:
            if recording.name.uuid:
                by_call.setdefault(recording.name.uuid, []).append(recording)
        return Recordings(tuple(found), by_call)


def _restat_live(path: str, listing: _Listing, now: float) -> bool:
    """Stat again the files still being written; True when one changed."""
    changed = False
    for file_name in sorted(listing.live):
        try:
            info = os.stat(os.path.join(path, file_name), follow_symlinks=False)
        except OSError:
            listing.live.discard(file_name)
            listing.files.pop(file_name, None)
            changed = True
            continue
        seen = (info.st_size, info.st_mtime)
        if seen != listing.files.get(file_name):
            listing.files[file_name] = seen
            changed = True
        if now - info.st_mtime >= LIVE_SECONDS:
            listing.live.discard(file_name)
    return changed


def _newest_first(recording: Recording) -> tuple[float, str]:
    return (-recording.mtime, recording.name.path)


class RecordingIndex:
    """Every tenant's ``TenantRecordings`` below one recordings root, made on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tenants: dict[str, TenantRecordings] = {}
        self._lock = threading.Lock()

    def read(self, tenant_id: str, names: RecordingNames, names_key: object) -> Recordings:
        """The tenant's recordings, or none with the problem to show (a directory that is a
        link or cannot be read); a directory not made yet holds nothing."""
        base = self.root / tenant_id
        if base.is_symlink():
            return replace(NOTHING, problem="the recordings directory is a link: not followed")
        if not base.is_dir():
            return NOTHING  # nothing recorded yet
        if not os.access(base, os.R_OK | os.X_OK):
            return replace(NOTHING, problem="the recordings directory cannot be read (permissions)")
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            if tenant is None:
                tenant = self._tenants[tenant_id] = TenantRecordings(base)
        return tenant.read(names, names_key)

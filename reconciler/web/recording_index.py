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

A tenant's first walk (1.7 to 5.3 s for 10,000 files on a loaded machine) is never a request's
wait: the portal offers every tenant to a background thread at start (``warm``: one thread,
at the lowest CPU priority, in short steps with pauses between them), and a first listing
that finds its tenant not walked yet walks for at most ``first_wait`` seconds itself, then
answers from what is indexed so far, saying so (``Recordings.indexing``), while the thread
goes on with that tenant first. A tenant nobody has read for ``evict_after`` seconds is
dropped (``sweep``): memory follows the tenants people look at, and the next look walks again.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.core.model import TenantState
from reconciler.core.recording_names import (
    ANSWERED_DIR,
    RecordingName,
    RecordingNames,
    read_note_name,
)

log = logging.getLogger(__name__)

RACY_SECONDS = 2.0
STEP_SECONDS = 0.05  # one step of a background walk (the tenant's lock is held that long)
APPLY_BATCH = 256  # files of a first walk read into the index at once
FIRST_WAIT = 0.5  # a request's own walk of a tenant not indexed yet, at most
EVICT_AFTER = 1800.0  # a tenant not read for this long is dropped from memory
SWEEP_EVERY = 60.0
LIVE_SECONDS = 10.0
# a listing older than this is never shown without looking at the disk first
STALE_AFTER = 10.0


FILTER_KEYS = ("date", "queue", "extension", "agent")
# more changed files than this at once: sort everything again rather than insert each
REBUILD_AT = 500


@dataclass(frozen=True, slots=True)
class Recording:
    name: RecordingName
    size: int
    mtime: float

    @property
    def day(self) -> str:
        return self.name.date or datetime.fromtimestamp(self.mtime, UTC).date().isoformat()

    def filter_keys(self) -> list[tuple[str, str]]:
        """The ``(filter, value)`` pairs this recording is found under."""
        name = self.name
        found = [("date", self.day)]
        for key, value in (("queue", name.queue), ("extension", name.extension)):
            if value is not None:
                found.append((key, value))
        if name.agent is not None:
            found.append(("agent", name.agent))
        return found

    def matches(self, chosen: Mapping[str, str]) -> bool:
        keys = self.filter_keys()
        return all(item in keys for item in chosen.items())


def _order(recording: Recording) -> tuple[float, str]:
    """Newest first; the path breaks ties."""
    return (-recording.mtime, recording.name.path)


@dataclass(frozen=True, slots=True)
class Recordings:
    """One tenant's recordings at one moment (never changed once handed out: a change makes
    a new one): newest first, under each filter value, and by call uuid."""

    newest_first: Sequence[Recording]
    by_key: Mapping[tuple[str, str], Sequence[Recording]]
    by_call: Mapping[str, Sequence[Recording]]
    problem: str | None = None
    indexing: bool = False  # the first walk is not over: what was found so far

    def select(
        self, chosen: Mapping[str, str], allowed: Iterable[tuple[str, str]] | None = None
    ) -> Sequence[Recording]:
        """The recordings matching every ``chosen`` filter (newest first) and, when
        ``allowed`` is given, found under at least one of those keys (what a person may see:
        their extensions, their agents). Work in proportion to the smallest candidate list,
        never to the tenant's whole count."""
        lists: list[Sequence[Recording]] = [self.by_key.get(item, ()) for item in chosen.items()]
        permitted: set[int] | None = None
        if allowed is not None:
            union = {id(r): r for key in allowed for r in self.by_key.get(key, ())}
            permitted = set(union)
            lists.append(sorted(union.values(), key=_order))
        if not lists:
            return self.newest_first
        smallest = min(lists, key=len)
        if len(lists) == 1:
            return smallest
        return [
            r for r in smallest if r.matches(chosen) and (permitted is None or id(r) in permitted)
        ]


NOTHING = Recordings((), {}, {})


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


def _differing(rel: str, old: _Listing | None, new: _Listing | None) -> set[str]:
    """The paths whose file was added, removed or changed between two listings."""
    before = old.files if old is not None else {}
    after = new.files if new is not None else {}
    return {
        rel + name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    }


class TenantRecordings:
    """The recordings below one tenant's directory."""

    def __init__(self, base: Path) -> None:
        self._base = str(base)
        self._lock = threading.Lock()
        self._dirs: dict[str, _Listing] = {}
        self._notes: _Listing | None = None
        self._answered: dict[str, str] = {}  # caller's channel uuid -> agent
        self._names_key: object = None
        self._by_path: dict[str, Recording] = {}
        self._current: Recordings = NOTHING
        self._looked_at = -1e9  # time.monotonic() of the last look at the disk
        self._looking = False
        self._pending: list[str] | None = None  # the first walk's directories still to list
        self.warmed = False
        self.read_at = time.monotonic()  # the last read (or the end of the first walk)

    @property
    def size(self) -> int:
        return len(self._current.newest_first)

    def walk(self, names: RecordingNames, names_key: object, seconds: float) -> bool:
        """Go on with the first walk for about ``seconds`` (waiting at most that long for
        another walker's step), publishing what it found; True once the walk is over."""
        if self.warmed:
            return True
        if not self._lock.acquire(timeout=seconds):
            return False
        try:
            if self._pending is None:
                self._pending = [""]
                self._names_key = names_key
                self._refresh_notes(time.time())  # agents known before the files are read
            deadline = time.monotonic() + seconds
            changed: set[str] = set()
            while self._pending:  # at least one directory a step: always some progress
                changed |= self._walk_one(self._pending.pop())
                if len(changed) >= APPLY_BATCH:  # reading names costs more than listing
                    self._apply(changed, names)  # them: in batches, within the deadline
                    changed = set()
                if time.monotonic() >= deadline:
                    break
            if changed:
                self._apply(changed, names)
            if not self._pending:
                self.warmed = True
                self._looked_at = self.read_at = time.monotonic()
            return self.warmed
        finally:
            self._lock.release()

    def _walk_one(self, rel: str) -> set[str]:
        path = os.path.join(self._base, rel)
        mtime_ns = _directory_mtime(path)
        if mtime_ns is None:
            return set()
        listing = _list(path, rel, mtime_ns, time.time())
        self._dirs[rel] = listing
        assert self._pending is not None
        self._pending.extend(listing.subdirs)
        return _differing(rel, None, listing)

    def read(
        self,
        names: RecordingNames,
        names_key: object,
        fresh_for: float = 0.0,
        first_wait: float = FIRST_WAIT,
    ) -> Recordings:
        """The recordings (``names_key`` says when ``names``, the tenant's templates,
        changed: every path is read again). Before the first walk is over: after walking
        at most ``first_wait`` seconds, what is indexed so far (``indexing``). Within
        ``fresh_for`` seconds of the last look at the disk, from memory; up to
        ``STALE_AFTER`` seconds, from memory while a thread looks again (someone paging
        never waits for the walk); older, after looking."""
        self.read_at = time.monotonic()
        if not self.walk(names, names_key, first_wait):
            return replace(self._current, indexing=True)
        age = time.monotonic() - self._looked_at
        if names_key == self._names_key and age < max(fresh_for, STALE_AFTER if fresh_for else 0):
            if age >= fresh_for and not self._looking:
                self._looking = True  # one look at a time (a race starts two: harmless)
                threading.Thread(
                    target=self._update,
                    args=(names, names_key),
                    name="recordings-look",
                    daemon=True,
                ).start()
            return self._current
        return self._update(names, names_key)

    def _update(self, names: RecordingNames, names_key: object) -> Recordings:
        with self._lock:
            changed = self._refresh()
            if names_key != self._names_key:
                self._names_key = names_key
                self._by_path = {}
                changed = {d + name for d, listing in self._dirs.items() for name in listing.files}
                self._current = NOTHING
            if changed:
                self._apply(changed, names)
            self._looked_at = time.monotonic()
            self._looking = False
            return self._current

    def _refresh(self) -> set[str]:
        """Bring the listings up to the disk; the paths whose recording may have changed."""
        now = time.time()
        fresh: dict[str, _Listing] = {}
        changed: set[str] = set()
        pending = [""]
        while pending:
            rel = pending.pop()
            path = os.path.join(self._base, rel)
            mtime_ns = _directory_mtime(path)
            if mtime_ns is None:
                continue  # gone (or became a link) since its parent was listed
            old = self._dirs.get(rel)
            if old is None or not old.trusted(mtime_ns):
                listing = _list(path, rel, mtime_ns, now)
                changed |= _differing(rel, old, listing)
            else:
                listing = old
                if listing.live:
                    changed |= {rel + name for name in _restat_live(path, listing, now)}
            fresh[rel] = listing
            pending.extend(listing.subdirs)
        for rel in self._dirs.keys() - fresh.keys():
            changed |= _differing(rel, self._dirs[rel], None)
        self._dirs = fresh
        changed |= self._refresh_notes(now)
        return changed

    def _refresh_notes(self, now: float) -> set[str]:
        """Read ``.answered`` again when it moved; the paths of recordings whose agent did."""
        notes_path = os.path.join(self._base, ANSWERED_DIR)
        mtime_ns = _directory_mtime(notes_path)
        if mtime_ns is not None and self._notes is not None and self._notes.trusted(mtime_ns):
            return set()
        self._notes = (
            None if mtime_ns is None else _list(notes_path, "", mtime_ns, now, sizes=False)
        )
        answered: dict[str, str] = {}
        for note in self._notes.files if self._notes is not None else ():
            read = read_note_name(note)
            if read is not None:
                answered[read[0]] = read[1]
        moved = {
            u
            for u in answered.keys() | self._answered.keys()
            if answered.get(u) != self._answered.get(u)
        }
        self._answered = answered
        by_call = self._current.by_call
        return {r.name.path for uuid in moved for r in by_call.get(uuid, ())}

    def _derive(self, path: str, names: RecordingNames) -> Recording | None:
        directory, _, file_name = path.rpartition("/")
        listing = self._dirs.get(directory + "/" if directory else "")
        stat_of = listing.files.get(file_name) if listing is not None else None
        if stat_of is None:
            return None
        name = names.read(path, self._answered)
        return None if name is None else Recording(name, stat_of[0], stat_of[1])

    def _apply(self, changed: set[str], names: RecordingNames) -> None:
        """Make the next ``Recordings`` from the current one and the changed paths: each
        one removed and inserted in order; many at once, everything sorted again."""
        by_path = dict(self._by_path)
        removed: list[Recording] = []
        added: list[Recording] = []
        for path in changed:
            old = by_path.pop(path, None)
            new = self._derive(path, names)
            if old is not None:
                removed.append(old)
            if new is not None:
                by_path[path] = new
                added.append(new)
        self._by_path = by_path
        if len(changed) > REBUILD_AT or not self._current.newest_first:
            self._current = _sorted(by_path.values())
            return
        self._current = _updated(self._current, removed, added)


def _sorted(recordings: Iterable[Recording]) -> Recordings:
    newest_first = sorted(recordings, key=_order)
    by_key: dict[tuple[str, str], list[Recording]] = {}
    by_call: dict[str, list[Recording]] = {}
    for recording in newest_first:
        for key in recording.filter_keys():
            by_key.setdefault(key, []).append(recording)
        if recording.name.uuid:
            by_call.setdefault(recording.name.uuid, []).append(recording)
    return Recordings(newest_first, by_key, by_call)


def _remove(ordered: list[Recording], recording: Recording) -> None:
    at = bisect.bisect_left(ordered, _order(recording), key=_order)
    if at < len(ordered) and ordered[at] is recording:
        del ordered[at]


def _updated(current: Recordings, removed: list[Recording], added: list[Recording]) -> Recordings:
    """``current`` without ``removed`` and with ``added``; the lists touched are copied (the
    old ``Recordings`` may still be read by another request)."""
    newest_first = list(current.newest_first)
    by_key = dict(current.by_key)
    by_call = dict(current.by_call)
    copied: set[object] = set()

    def own(table: dict[Any, Sequence[Recording]], key: Any) -> list[Recording]:
        if (id(table), key) not in copied:
            copied.add((id(table), key))
            table[key] = list(table.get(key, ()))
        return table[key]  # type: ignore[return-value]

    for recording in removed:
        _remove(newest_first, recording)
        for key in recording.filter_keys():
            _remove(own(by_key, key), recording)
        if recording.name.uuid:
            _remove(own(by_call, recording.name.uuid), recording)
    for recording in added:
        bisect.insort(newest_first, recording, key=_order)
        for key in recording.filter_keys():
            bisect.insort(own(by_key, key), recording, key=_order)
        if recording.name.uuid:
            bisect.insort(own(by_call, recording.name.uuid), recording, key=_order)
    return Recordings(newest_first, by_key, by_call)


def _restat_live(path: str, listing: _Listing, now: float) -> set[str]:
    """Stat again the files still being written; the names of those that changed."""
    changed: set[str] = set()
    for file_name in sorted(listing.live):
        try:
            info = os.stat(os.path.join(path, file_name), follow_symlinks=False)
        except OSError:
            listing.live.discard(file_name)
            listing.files.pop(file_name, None)
            changed.add(file_name)
            continue
        seen = (info.st_size, info.st_mtime)
        if seen != listing.files.get(file_name):
            listing.files[file_name] = seen
            changed.add(file_name)
        if now - info.st_mtime >= LIVE_SECONDS:
            listing.live.discard(file_name)
    return changed


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What the index holds, for the metrics."""

    tenants: int
    recordings: int
    indexing: int
    evicted: int


class RecordingIndex:
    """Every tenant's ``TenantRecordings`` below one recordings root: made on first use or
    by the background walker (``warm``), dropped when not read for ``evict_after``."""

    def __init__(
        self,
        root: Path,
        fresh_for: float = 0.0,
        *,
        first_wait: float = FIRST_WAIT,
        evict_after: float = EVICT_AFTER,
    ) -> None:
        """``fresh_for``: seconds a look at the disk is trusted (0: look at every read)."""
        self.root = root
        self.fresh_for = fresh_for
        self.first_wait = first_wait
        self.evict_after = evict_after
        self._tenants: dict[str, TenantRecordings] = {}
        self._lock = threading.Lock()
        self._evicted = 0
        self._swept_at = time.monotonic()
        self._offered: set[str] = set()  # offered to the walker once: never again by itself
        self._queue: dict[str, tuple[RecordingNames, object]] = {}  # to walk, in order
        self._first: dict[str, tuple[RecordingNames, object]] = {}  # asked for: walked first
        self._walker: threading.Thread | None = None

    def _usable(self, tenant_id: str) -> str | None:
        """Why the tenant's directory cannot be read (None: it can, or does not exist)."""
        base = self.root / tenant_id
        if base.is_symlink():
            return "the recordings directory is a link: not followed"
        if base.is_dir() and not os.access(base, os.R_OK | os.X_OK):
            return "the recordings directory cannot be read (permissions)"
        return None

    def _tenant(self, tenant_id: str) -> TenantRecordings:
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            if tenant is None:
                tenant = self._tenants[tenant_id] = TenantRecordings(self.root / tenant_id)
            return tenant

    def read(self, tenant_id: str, names: RecordingNames, names_key: object) -> Recordings:
        """The tenant's recordings, or none with the problem to show (a directory that is a
        link or cannot be read); a directory not made yet holds nothing. A tenant not walked
        yet answers with what is indexed so far (``indexing``) and is walked next."""
        self._sweep_now_and_then()
        problem = self._usable(tenant_id)
        if problem is not None:
            return replace(NOTHING, problem=problem)
        if not (self.root / tenant_id).is_dir():
            return NOTHING  # nothing recorded yet
        found = self._tenant(tenant_id).read(names, names_key, self.fresh_for, self.first_wait)
        if found.indexing:
            with self._lock:
                self._first[tenant_id] = (names, names_key)
            self._start_walker()
        return found

    def warm(self, tenants: Iterable[tuple[str, RecordingNames, object]]) -> None:
        """Walk these tenants in the background (each offered once: an evicted tenant is
        walked again when someone reads it, not by this)."""
        with self._lock:
            for tenant_id, names, names_key in tenants:
                if tenant_id not in self._offered:
                    self._offered.add(tenant_id)
                    self._queue[tenant_id] = (names, names_key)
        self._start_walker()

    def _start_walker(self) -> None:
        with self._lock:
            if self._walker is not None or not (self._queue or self._first):
                return
            self._walker = threading.Thread(
                target=self._walk_all, name="recordings-warm", daemon=True
            )
            self._walker.start()

    def _next(self) -> tuple[str, RecordingNames, object] | None:
        with self._lock:
            for pending in (self._first, self._queue):
                if pending:
                    tenant_id = next(iter(pending))
                    return (tenant_id, *pending[tenant_id])
            self._walker = None
            return None

    def _walk_all(self) -> None:
        """The walker thread: lowest CPU priority, a step at a time with a pause as long
        as the step, tenants asked for first."""
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while (chosen := self._next()) is not None:
            tenant_id, names, names_key = chosen
            try:
                done = self._walk_step(tenant_id, names, names_key)
            except Exception:
                log.exception("recordings index: walking a tenant failed")
                done = True
            if done:
                with self._lock:
                    self._first.pop(tenant_id, None)
                    self._queue.pop(tenant_id, None)

    def _walk_step(self, tenant_id: str, names: RecordingNames, names_key: object) -> bool:
        if self._usable(tenant_id) is not None or not (self.root / tenant_id).is_dir():
            return True
        started = time.monotonic()
        done = self._tenant(tenant_id).walk(names, names_key, STEP_SECONDS)
        time.sleep(time.monotonic() - started)  # at most half of a core, the GIL let go
        return done

    def _sweep_now_and_then(self) -> None:
        if time.monotonic() - self._swept_at >= SWEEP_EVERY:
            self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """Drop the walked tenants nobody read for ``evict_after`` seconds; how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._swept_at = now
            idle = [
                tenant_id
                for tenant_id, tenant in self._tenants.items()
                if tenant.warmed and now - tenant.read_at >= self.evict_after
            ]
            for tenant_id in idle:
                del self._tenants[tenant_id]
            self._evicted += len(idle)
        return len(idle)

    def stats(self) -> IndexStats:
        with self._lock:
            tenants = list(self._tenants.values())
            evicted = self._evicted
        return IndexStats(
            tenants=len(tenants),
            recordings=sum(t.size for t in tenants),
            indexing=sum(1 for t in tenants if not t.warmed),
            evicted=evicted,
        )

    async def upkeep(self, state: Callable[[], Mapping[str, TenantState]]) -> None:
        """The portal's task: offer every tenant of the applied state to the walker (new
        tenants as they appear), and sweep, until cancelled."""
        while True:
            try:
                self.warm(tenant_names(ts) for ts in list(state().values()))
                await asyncio.to_thread(self.sweep)
            except Exception:
                log.exception("recordings index: warming or sweeping failed")
            await asyncio.sleep(min(SWEEP_EVERY, self.evict_after))


def tenant_names(ts: TenantState) -> tuple[str, RecordingNames, object]:
    """How the tenant's paths read back (its queues' templates, its domain), and a key that
    changes when that does."""
    templates = {q.name: q.record_template for q in ts.queues.values() if q.record_template}
    domain = ts.tenant.domain
    key = (domain, tuple(sorted(templates.items())))
    return ts.tenant.id, RecordingNames(templates, domain), key

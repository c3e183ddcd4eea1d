"""The call-record journal: mod_xml_cdr's posts made durable on this host before they are
acknowledged, then filed from it in batches.

Why: acknowledging a post only once PostgreSQL committed it ties the switch's hang-up
threads to a database transaction each (the rate was the posters' count over a commit's
latency); here a post costs an append and a share of one ``fdatasync``, and the filing
runs behind it, hundreds of records a transaction.

Shape: numbered segment files of frames (``CDR1``, length, CRC-32, payload); one flusher
writes every frame waiting and syncs once for all of them (group commit), then resolves
their appends. The reader walks frames from the checkpoint (the end of the last frame
filed, renamed into place after each batch committed) up to the last synced frame.
A crash between a batch's commit and its checkpoint replays that batch: filing is
idempotent by leg uuid, so nothing is lost and nothing is counted twice. A torn frame at
the end (a crash mid-write, never acknowledged) is cut at start-up. Segments wholly before
the checkpoint are deleted.

One process at a time: the journal holds an exclusive ``flock`` on ``lock`` in its folder
for as long as it is open (the kernel drops it when the process dies, even by SIGKILL); a
second daemon on the same state dir gets ``JournalBusy`` instead of writing, cutting or
filing frames the first one owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"CDR1"
HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of the payload
SEGMENT_BYTES = 64 * 1024 * 1024  # a new segment after this many bytes
SUFFIX = ".journal"
CHECKPOINT = "checkpoint"
LOCK = "lock"


class JournalBusy(Exception):
    """Another process holds the journal's lock."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the journal: a segment number and a byte offset in it."""

    segment: int
    offset: int


class Journal:
    """An append-only, fsync'd log of payloads in ``folder`` and how far it was filed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = _lock(folder / LOCK)  # first: nothing is read or cut without it
        try:
            self.filed = self._read_checkpoint()
            self.synced = self._recover()
            self._fd = os.open(self._path(self.synced.segment), os.O_WRONLY | os.O_CREAT, 0o600)
        except BaseException:
            os.close(self._lock)
            raise
        os.lseek(self._fd, self.synced.offset, os.SEEK_SET)
        self._waiting: list[tuple[list[bytes], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.appended = asyncio.Event()  # set after each sync: the reader has more

    # -- appending ----------------------------------------------------------------------

    async def append(self, payload: bytes) -> None:
        """Returns once ``payload`` is on disk (synced), together with every payload that
        arrived while the previous sync ran."""
        await self.append_many([payload])

    async def append_many(self, payloads: list[bytes]) -> None:
        """Returns once every one of ``payloads`` is on disk: one sync for all of them."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((payloads, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="cdr-journal-flush")
        await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                self.synced = await asyncio.to_thread(
                    self._write, [p for ps, _ in batch for p in ps]
                )
            except OSError as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self.appended.set()

    def _write(self, payloads: list[bytes]) -> Position:
        """Write and sync ``payloads`` (in the flusher's thread); the new synced end."""
        at = self.synced
        if at.offset >= SEGMENT_BYTES:
            os.close(self._fd)
            at = Position(at.segment + 1, 0)
            self._fd = os.open(self._path(at.segment), os.O_WRONLY | os.O_CREAT, 0o600)
            _sync_dir(self.folder)
        data = b"".join(HEADER.pack(MAGIC, len(p), zlib.crc32(p)) + p for p in payloads)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fdatasync(self._fd)
        return Position(at.segment, at.offset + len(data))

    # -- reading and filing ---------------------------------------------------------------

    def read(self, start: Position, limit: int) -> tuple[list[bytes], Position]:
        """Up to ``limit`` payloads synced after ``start``, and where they end."""
        payloads: list[bytes] = []
        at, end = start, self.synced
        while len(payloads) < limit and at < end:
            if at.segment < end.segment and not self._path(at.segment).exists():
                at = Position(at.segment + 1, 0)
                continue
            with self._path(at.segment).open("rb") as handle:
                handle.seek(at.offset)
                stop = end.offset if at.segment == end.segment else None
                while len(payloads) < limit and (stop is None or at.offset < stop):
                    payload = _frame(handle)
                    if payload is None:
                        break
                    payloads.append(payload)
                    at = Position(at.segment, handle.tell())
            if len(payloads) < limit and at.segment < end.segment:
                at = Position(at.segment + 1, 0)  # this segment is done
            else:
                break
        return payloads, at

    def mark_filed(self, position: Position) -> None:
        """Everything before ``position`` is filed: remember it, drop finished segments."""
        tmp = self.folder / f".{CHECKPOINT}.tmp"
        tmp.write_text(f"{position.segment} {position.offset}\n", encoding="ascii")
        os.replace(tmp, self.folder / CHECKPOINT)
        left, self.filed = self.filed, position
        if position.segment == left.segment:
            return
        for segment in self._segments():
            if segment < position.segment:
                with contextlib.suppress(FileNotFoundError):
                    self._path(segment).unlink()

    @property
    def backlog_bytes(self) -> int:
        """About how much is synced but not filed (segments count as full)."""
        if self.synced.segment == self.filed.segment:
            return self.synced.offset - self.filed.offset
        between = (self.synced.segment - self.filed.segment - 1) * SEGMENT_BYTES
        return between + SEGMENT_BYTES - self.filed.offset + self.synced.offset

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._lock)  # releases the flock

    # -- start-up -------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.folder / f"{segment:08d}{SUFFIX}"

    def _segments(self) -> list[int]:
        found = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            with contextlib.suppress(ValueError):
                found.append(int(path.name.removesuffix(SUFFIX)))
        return sorted(found)

    def _read_checkpoint(self) -> Position:
        try:
            segment, offset = (self.folder / CHECKPOINT).read_text(encoding="ascii").split()
            return Position(int(segment), int(offset))
        except (FileNotFoundError, ValueError):
            segments = self._segments()
            return Position(segments[0] if segments else 1, 0)

    def _recover(self) -> Position:
        """The end of the last whole frame of the last segment; a torn tail is cut."""
        segments = self._segments()
        last = max([self.filed.segment, *segments])
        path = self._path(last)
        if not path.exists():
            return Position(last, 0)
        start = self.filed.offset if last == self.filed.segment else 0
        with path.open("r+b") as handle:
            handle.seek(start)
            end = start
            while _frame(handle) is not None:
                end = handle.tell()
            if end < os.fstat(handle.fileno()).st_size:
                handle.truncate(end)  # torn: the switch was never told it was kept
                os.fsync(handle.fileno())
        return Position(last, end)


def _frame(handle: BinaryIO) -> bytes | None:
    """The next whole frame's payload from the binary file ``handle``, or None."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    magic, length, crc = HEADER.unpack(header)
    if magic != MAGIC:
        return None
    payload = handle.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    return payload


def _lock(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive flock; ``JournalBusy`` when
    another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalBusy(f"{path.parent} is held by another process") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

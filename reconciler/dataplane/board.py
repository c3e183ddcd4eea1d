"""The workers' board: one slot per xml_curl worker in a small shared memory file, where
the worker publishes its heartbeat and its request counts and the supervisor reads them.

Why shared memory rather than the supervisor asking each worker: a question over a socket
would itself wait behind the worker it is asking, and a scrape of /metrics would cost every
worker a request. Here the worker's event loop publishes every ``PUBLISH_SECONDS`` (its
counts, then the heartbeat); the supervisor reads without asking anything of anyone. A
heartbeat that stops moving is a worker whose loop is stuck (an infinite loop, SIGSTOP):
``reconciler.daemon.workers`` kills and replaces it.

The file is an anonymous ``memfd`` the workers inherit (nothing in the state dir, nothing
left behind); one writer per slot, so no lock: the reader may see a publish half done, off
by one request at worst, never a torn 8-byte value.

The supervisor writes one record of its own ahead of the slots: whether the newest
generation it built is on disk (``PersistStatus``), so each worker's /readyz says so when the
state dir is full or read-only and it keeps serving the last good generation.

Slot layout (little-endian, 8-byte fields): pid, heartbeat, the tag of the generation the
worker serves (``generation_tag``; 0: none), then requests by section and
result (``Section`` x ``Result``), then per section the latency histogram as counts per
bucket of ``XMLCURL_BUCKETS`` plus +Inf, then per section the sum of seconds (a double).

Counters stay monotonic across restarts: the supervisor folds a departed worker's last
published counts into ``retired`` before the slot is zeroed for its replacement (what
the worker answered after its last publish, at most ``PUBLISH_SECONDS`` of it, is lost).
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.serve.outcomes import Result, Section
from reconciler.serve.persist import PersistStatus

# xml_curl answers should be sub-millisecond: buckets start well below 1 ms.
XMLCURL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0)
PUBLISH_SECONDS = 0.1

SECTIONS = tuple(Section)
RESULTS = tuple(Result)
_SECTION_INDEX: dict[str, int] = {s.value: i for i, s in enumerate(SECTIONS)}
_RESULT_INDEX: dict[str, int] = {r.value: i for i, r in enumerate(RESULTS)}
_REQUESTS = len(SECTIONS) * len(RESULTS)
_BUCKETS = len(XMLCURL_BUCKETS) + 1  # the last is +Inf
_LAYOUT = struct.Struct(
    f"<QQQ{_REQUESTS}Q{len(SECTIONS) * _BUCKETS}Q{len(SECTIONS)}d"
)  # fmt: skip
SLOT_BYTES = (_LAYOUT.size + 63) // 64 * 64  # a cache line apart
_CONTROL = struct.Struct("<Qd")  # persisted (0 unknown, 1 yes, 2 no), persisted_at
CONTROL_BYTES = 64
NOT_PERSISTED = (
    "the control plane could not write its newest generation (state dir full or read-only?): "
    "serving the last good one"
)


@dataclass
class WorkerCounts:
    """What worker(s) answered: requests[section][result], buckets[section] (not
    cumulative, +Inf last) and seconds[section]."""

    requests: list[list[int]] = field(
        default_factory=lambda: [[0] * len(RESULTS) for _ in SECTIONS]
    )
    buckets: list[list[int]] = field(default_factory=lambda: [[0] * _BUCKETS for _ in SECTIONS])
    seconds: list[float] = field(default_factory=lambda: [0.0] * len(SECTIONS))

    def observe(self, section: str, result: str, seconds: float) -> None:
        """The worker's observer (``xmlcurl_app.Observer``): plain list arithmetic."""
        s = _SECTION_INDEX.get(section, _SECTION_INDEX[Section.OTHER.value])
        self.requests[s][_RESULT_INDEX.get(result, _RESULT_INDEX[Result.ERROR.value])] += 1
        self.buckets[s][bisect.bisect_left(XMLCURL_BUCKETS, seconds)] += 1
        self.seconds[s] += seconds

    def add(self, other: WorkerCounts) -> None:
        for s in range(len(SECTIONS)):
            for r in range(len(RESULTS)):
                self.requests[s][r] += other.requests[s][r]
            for b in range(_BUCKETS):
                self.buckets[s][b] += other.buckets[s][b]
            self.seconds[s] += other.seconds[s]

    def flat(self) -> list[int | float]:
        values: list[int | float] = [v for row in self.requests for v in row]
        values += [v for row in self.buckets for v in row]
        values += self.seconds
        return values

    @classmethod
    def from_flat(cls, values: tuple[int | float, ...]) -> WorkerCounts:
        counts = cls()
        width, at = len(RESULTS), 0
        counts.requests = [list(map(int, values[at + i * width : at + (i + 1) * width]))
                           for i in range(len(SECTIONS))]  # fmt: skip
        at += _REQUESTS
        counts.buckets = [list(map(int, values[at + i * _BUCKETS : at + (i + 1) * _BUCKETS]))
                          for i in range(len(SECTIONS))]  # fmt: skip
        at += len(SECTIONS) * _BUCKETS
        counts.seconds = [float(v) for v in values[at:]]
        return counts


def generation_tag(generation: str) -> int:
    """A generation's id as one nonzero 8-byte value a slot can hold."""
    digest = hashlib.blake2b(generation.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


@dataclass(frozen=True)
class SlotReading:
    pid: int
    heartbeat: int
    serving: int  # generation_tag of what the worker serves; 0: nothing
    counts: WorkerCounts


class Board:
    """The shared file, mapped; ``slots`` workers. Created by the supervisor
    (``Board.create``), opened by a worker from its inherited descriptor (``Board.attach``)."""

    def __init__(self, fd: int, slots: int) -> None:
        self.fd = fd
        self.slots = slots
        self._map = mmap.mmap(fd, CONTROL_BYTES + slots * SLOT_BYTES)

    @classmethod
    def create(cls, slots: int) -> Board:
        fd = os.memfd_create("pbx-xmlcurl-board", 0)
        os.ftruncate(fd, CONTROL_BYTES + max(1, slots) * SLOT_BYTES)
        os.set_inheritable(fd, True)
        return cls(fd, max(1, slots))

    @classmethod
    def attach(cls, fd: int) -> Board:
        size = os.fstat(fd).st_size
        return cls(fd, (size - CONTROL_BYTES) // SLOT_BYTES)

    def publish(
        self, slot: int, pid: int, heartbeat: int, serving: int, counts: WorkerCounts
    ) -> None:
        _LAYOUT.pack_into(self._map, _offset(slot), pid, heartbeat, serving, *counts.flat())

    def read(self, slot: int) -> SlotReading:
        values = _LAYOUT.unpack_from(self._map, _offset(slot))
        return SlotReading(
            int(values[0]), int(values[1]), int(values[2]), WorkerCounts.from_flat(values[3:])
        )

    def clear(self, slot: int) -> None:
        self._map[_offset(slot) : _offset(slot) + SLOT_BYTES] = bytes(SLOT_BYTES)

    def publish_persisted(self, status: PersistStatus) -> None:
        """The supervisor's record: is its newest generation on disk?"""
        _CONTROL.pack_into(self._map, 0, 1 if status.persisted else 2, status.persisted_at or 0.0)

    def persist_status(self) -> PersistStatus | None:
        """For a worker's /readyz: None until the supervisor said anything."""
        state, persisted_at = _CONTROL.unpack_from(self._map, 0)
        if state == 0:
            return None
        at = persisted_at or None
        return PersistStatus(True, at) if state == 1 else PersistStatus(False, at, NOT_PERSISTED)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


def _offset(slot: int) -> int:
    return CONTROL_BYTES + slot * SLOT_BYTES


class BoardPublisher:
    """The worker's side: counts requests in its own memory (no shared write per request)
    and publishes them with a heartbeat from its event loop."""

    def __init__(self, board: Board, slot: int, serving: Callable[[], str | None]) -> None:
        self.counts = WorkerCounts()
        self._board = board
        self._slot = slot
        self._pid = os.getpid()
        self._serving = serving  # the generation served now (None: none)
        self.heartbeat = 0

    def publish(self) -> None:
        self.heartbeat += 1
        generation = self._serving()
        tag = generation_tag(generation) if generation else 0
        self._board.publish(self._slot, self._pid, self.heartbeat, tag, self.counts)

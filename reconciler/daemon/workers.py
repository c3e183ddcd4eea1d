"""The xml_curl workers of ``pbx run --xml-curl-workers N``: started, restarted, drained.

``pbx run`` binds the ``--listen`` socket once and starts the workers before anything else
(``daemon.early``); this supervisor adopts them. Every worker inherits the socket and accepts
on it: the kernel hands each connection to whichever worker is free. A worker that exits while
the daemon runs is replaced (after a short pause) and counted in
``pbx_xmlcurl_worker_restarts_total{reason="crash"}``; one whose heartbeat on the workers'
board (``dataplane.board``) stands still for ``hang_seconds`` (an endless loop, SIGSTOP) is
killed, replaced and counted with ``reason="hang"``. Its connections are lost with it; the
others never waited for it (each worker accepts only when its own loop is free). The board
also carries each worker's request counts, which ``counts()`` sums for /metrics.

SIGTERM drains them: each stops accepting, finishes
what it answers, exits; one that does not within ``DRAIN_SECONDS`` is killed.

A worker outlives the daemon only when the daemon is killed without a word (SIGKILL, a
crash): it then keeps answering from the last generation, as the data plane must. Their
pids are in the state dir (``xmlcurl-workers.pid``); the next daemon retires them once its
own workers are serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.core.logs import event
from reconciler.daemon.early import (
    DRAIN_SECONDS,
    EarlyWorkers,
    spawn_worker,
    tell,
    write_pids,
)
from reconciler.daemon.metrics import Metrics
from reconciler.dataplane.board import WorkerCounts, generation_tag
from reconciler.serve.persist import PersistStatus

log = logging.getLogger(__name__)

RESTART_PAUSE = 0.2
HANG_SECONDS = 10.0  # a loop that publishes nothing this long is stuck (it beats every 0.1 s)
PROPAGATE_SECONDS = 2.0  # longest wait for the workers to serve a new generation
START_SECONDS = 60.0  # before its first heartbeat: a worker importing on a loaded machine
HANG_CHECK_SECONDS = 0.5


async def exited(proc: subprocess.Popen[bytes]) -> int:
    """Wait for a worker's exit without a thread: its pidfd turns readable when it ends
    (the workers are ``Popen`` children: those started before the event loop are too)."""
    if proc.poll() is not None:
        return proc.wait()
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return proc.wait()
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, readable)
    try:
        if proc.poll() is None:
            await gone
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return proc.wait()


class XmlCurlWorkers:
    def __init__(
        self,
        early: EarlyWorkers,
        metrics: Metrics,
        pid_file: Path,
        *,
        hang_seconds: float = HANG_SECONDS,
        persist_status: Callable[[], PersistStatus] | None = None,
    ) -> None:
        """Adopts ``early``'s workers (told their settings already)."""
        self._early = early
        self.count = len(early.procs)
        self._sock = early.sock
        self._board = early.board
        self._settings = early.settings
        self._metrics = metrics
        self._pid_file = pid_file
        self._hang_seconds = hang_seconds
        self._persist_status = persist_status
        self._procs: dict[int, subprocess.Popen[bytes]] = dict(enumerate(early.procs))
        self._beats: dict[int, tuple[int, float]] = {}  # slot: (heartbeat, when it last moved)
        self._hung: set[int] = set()  # slots killed for a hang, not yet replaced
        self._retired = WorkerCounts()  # what replaced workers had answered
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.restarts = 0
        self.hangs = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.poll() is None]

    @property
    def answering(self) -> int:
        """Workers running whose heartbeat has moved (started, and not found hung)."""
        return sum(
            1
            for slot, proc in self._procs.items()
            if proc.poll() is None and slot not in self._hung and self._beats[slot][0] > 0
        )

    def describe(self) -> dict[str, int]:
        """For /status."""
        return {"configured": self.count, "running": len(self.pids),
                "answering": self.answering, "restarts": self.restarts, "hangs": self.hangs}  # fmt: skip

    async def start(self) -> None:
        now = time.monotonic()
        self._beats = dict.fromkeys(self._procs, (0, now))
        self._write_pids()
        self._tasks = [asyncio.create_task(self._supervise(s)) for s in range(self.count)]
        self._tasks.append(asyncio.create_task(self._watch_hangs()))
        self._tasks.append(asyncio.create_task(self._tell_persisted()))

    async def wait_serving(self, generation: str, within: float = PROPAGATE_SECONDS) -> bool:
        """Wait until every running, unhung worker serves ``generation`` (what the switches
        are about to be told depends on it: ``queue load`` makes FreeSWITCH fetch the queue
        from the workers at once). False after ``within`` seconds: a slow worker must not
        hold up the switches for long, and it follows within its poll interval anyway."""
        tag = generation_tag(generation)
        deadline = time.monotonic() + within
        while True:
            lagging = [
                slot
                for slot, proc in self._procs.items()
                if proc.poll() is None
                and slot not in self._hung
                and self._board.read(slot).serving != tag
            ]
            if not lagging or time.monotonic() >= deadline:
                return not lagging
            await asyncio.sleep(0.01)

    def counts(self) -> WorkerCounts:
        """Every request the workers answered while this daemon ran (for /metrics)."""
        total = WorkerCounts()
        total.add(self._retired)
        for slot in range(self.count):
            total.add(self._board.read(slot).counts)
        return total

    def _spawn(self, slot: int) -> None:
        self._retired.add(self._board.read(slot).counts)
        self._board.clear(slot)
        self._beats[slot] = (0, time.monotonic())
        proc = spawn_worker(self._sock, self._board)
        tell(proc, {**self._settings, "slot": slot})  # a small line: the pipe takes it at once
        self._procs[slot] = self._early.procs[slot] = proc
        self._write_pids()

    async def _supervise(self, slot: int) -> None:
        while not self._stopping:
            code = await exited(self._procs[slot])
            if self._stopping:
                return
            self.restarts += 1
            reason = "hang" if slot in self._hung else "crash"
            self.hangs += reason == "hang"
            self._hung.discard(slot)
            self._metrics.xmlcurl_worker_restarts.labels(reason).inc()
            event(log, "xml_curl worker replaced", logging.WARNING, code=code, reason=reason)
            await asyncio.sleep(RESTART_PAUSE)
            if not self._stopping:
                self._spawn(slot)

    async def _tell_persisted(self) -> None:
        """Keep the board's record of whether the newest generation is on disk current."""
        while not self._stopping and self._persist_status is not None:
            self._board.publish_persisted(self._persist_status())
            await asyncio.sleep(HANG_CHECK_SECONDS)

    async def _watch_hangs(self) -> None:
        """Every ``HANG_CHECK_SECONDS``; a ``hang_seconds`` of 0 turns this off."""
        while not self._stopping and self._hang_seconds > 0:
            await asyncio.sleep(HANG_CHECK_SECONDS)
            now = time.monotonic()
            for slot, proc in list(self._procs.items()):
                if proc.poll() is None and slot not in self._hung:
                    self._check_heartbeat(slot, proc, now)

    def _check_heartbeat(self, slot: int, proc: subprocess.Popen[bytes], now: float) -> None:
        """Kill a worker whose heartbeat stood still too long (``_supervise`` replaces it)."""
        reading = self._board.read(slot)
        beat, since = self._beats.get(slot, (0, now))
        if reading.pid == proc.pid and reading.heartbeat != beat:
            self._beats[slot] = (reading.heartbeat, now)
            return
        allowed = self._hang_seconds if beat else max(self._hang_seconds, START_SECONDS)
        if now - since < allowed:
            return
        self._hung.add(slot)
        event(log, "xml_curl worker stopped answering: killed", logging.WARNING,
              pid=proc.pid, silent_seconds=round(now - since, 1))  # fmt: skip
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    def _write_pids(self) -> None:
        write_pids(self._pid_file, self.pids)

    async def stop(self) -> None:
        """SIGTERM every worker, wait for the drain, kill what is left."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        procs = [p for p in self._procs.values() if p.poll() is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(exited(proc), DRAIN_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await exited(proc)
        with contextlib.suppress(OSError):
            self._pid_file.unlink()
        self._early.close()

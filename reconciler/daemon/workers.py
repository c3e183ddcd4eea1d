"""The xml_curl workers of ``pbx run --xml-curl-workers N``: started, restarted, drained.

``pbx run`` binds the ``--listen`` socket once (``SO_REUSEPORT`` too, so the next daemon can
bind beside workers a killed one left behind) and every worker inherits it and accepts on
it: the kernel hands each connection to whichever worker is free. A worker that exits while
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
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.dataplane.board import Board, WorkerCounts
from reconciler.serve.listener import MAX_BACKLOG, ListenerUnavailable
from reconciler.serve.persist import PersistStatus

log = logging.getLogger(__name__)

WORKER_MODULE = "reconciler.dataplane.worker"
DRAIN_SECONDS = 8.0
RESTART_PAUSE = 0.2
HANG_SECONDS = 10.0  # a loop that publishes nothing this long is stuck (it beats every 0.1 s)
START_SECONDS = 60.0  # before its first heartbeat: a worker importing on a loaded machine
HANG_CHECK_SECONDS = 0.5


def listen_socket(host: str, port: int, what: str) -> socket.socket:
    """The shared, inheritable listening socket of the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(MAX_BACKLOG)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenerUnavailable(f"{what}: cannot listen on {shown}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


class XmlCurlWorkers:
    def __init__(
        self,
        count: int,
        sock: socket.socket,
        settings: Mapping[str, Any],
        metrics: Metrics,
        pid_file: Path,
        *,
        hang_seconds: float = HANG_SECONDS,
        persist_status: Callable[[], PersistStatus] | None = None,
    ) -> None:
        self.count = count
        self._sock = sock
        self._board = Board.create(count)
        self._settings = {**settings, "fd": sock.fileno(), "board_fd": self._board.fd}
        self._metrics = metrics
        self._pid_file = pid_file
        self._hang_seconds = hang_seconds
        self._persist_status = persist_status
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._beats: dict[int, tuple[int, float]] = {}  # slot: (heartbeat, when it last moved)
        self._hung: set[int] = set()  # slots killed for a hang, not yet replaced
        self._retired = WorkerCounts()  # what replaced workers had answered
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.restarts = 0
        self.hangs = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.returncode is None]

    @property
    def answering(self) -> int:
        """Workers running whose heartbeat has moved (started, and not found hung)."""
        return sum(
            1
            for slot, proc in self._procs.items()
            if proc.returncode is None and slot not in self._hung and self._beats[slot][0] > 0
        )

    def describe(self) -> dict[str, int]:
        """For /status."""
        return {"configured": self.count, "running": len(self.pids),
                "answering": self.answering, "restarts": self.restarts, "hangs": self.hangs}  # fmt: skip

    async def start(self) -> None:
        leftovers = _read_pids(self._pid_file)
        for slot in range(self.count):
            await self._spawn(slot)
        self._tasks = [asyncio.create_task(self._supervise(s)) for s in range(self.count)]
        self._tasks.append(asyncio.create_task(self._watch_hangs()))
        self._tasks.append(asyncio.create_task(self._tell_persisted()))
        _retire(leftovers)

    def counts(self) -> WorkerCounts:
        """Every request the workers answered while this daemon ran (for /metrics)."""
        total = WorkerCounts()
        total.add(self._retired)
        for slot in range(self.count):
            total.add(self._board.read(slot).counts)
        return total

    async def _spawn(self, slot: int) -> None:
        self._retired.add(self._board.read(slot).counts)
        self._board.clear(slot)
        self._beats[slot] = (0, time.monotonic())
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE, pass_fds=(self._sock.fileno(), self._board.fd),
        )  # fmt: skip
        assert proc.stdin is not None
        settings = {**self._settings, "slot": slot}
        proc.stdin.write(json.dumps(settings).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        self._procs[slot] = proc
        self._write_pids()

    async def _supervise(self, slot: int) -> None:
        while not self._stopping:
            code = await self._procs[slot].wait()
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
                await self._spawn(slot)

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
                if proc.returncode is None and slot not in self._hung:
                    self._check_heartbeat(slot, proc, now)

    def _check_heartbeat(self, slot: int, proc: asyncio.subprocess.Process, now: float) -> None:
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
        with contextlib.suppress(OSError):
            self._pid_file.write_text("".join(f"{pid}\n" for pid in self.pids))

    async def stop(self) -> None:
        """SIGTERM every worker, wait for the drain, kill what is left."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        procs = [p for p in self._procs.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), DRAIN_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        with contextlib.suppress(OSError):
            self._pid_file.unlink()
        self._sock.close()
        self._board.close()


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split() if line.isdigit()]
    except OSError:
        return []


def _retire(pids: list[int]) -> None:
    """SIGTERM workers a killed daemon left behind (only processes that are our workers)."""
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if WORKER_MODULE.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
                event(log, "retired an xml_curl worker of a previous daemon", pid=pid)

"""The xml_curl workers of ``pbx run --xml-curl-workers N``: started, restarted, drained.

``pbx run`` binds the ``--listen`` socket once (``SO_REUSEPORT`` too, so the next daemon can
bind beside workers a killed one left behind) and every worker inherits it and accepts on
it: the kernel hands each connection to whichever worker is free. A worker that exits while
the daemon runs is replaced (after a short pause) and counted in
``pbx_xmlcurl_worker_restarts_total``. SIGTERM drains them: each stops accepting, finishes
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.serve.listener import MAX_BACKLOG, ListenerUnavailable

log = logging.getLogger(__name__)

WORKER_MODULE = "reconciler.dataplane.worker"
DRAIN_SECONDS = 8.0
RESTART_PAUSE = 0.2


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
    ) -> None:
        self.count = count
        self._sock = sock
        self._settings = {**settings, "fd": sock.fileno()}
        self._metrics = metrics
        self._pid_file = pid_file
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.returncode is None]

    async def start(self) -> None:
        leftovers = _read_pids(self._pid_file)
        for slot in range(self.count):
            await self._spawn(slot)
        self._tasks = [asyncio.create_task(self._supervise(s)) for s in range(self.count)]
        _retire(leftovers)

    async def _spawn(self, slot: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE, pass_fds=(self._sock.fileno(),),
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(self._settings).encode() + b"\n")
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
            self._metrics.xmlcurl_worker_restarts.inc()
            event(log, "xml_curl worker exited: replaced", logging.WARNING, code=code)
            await asyncio.sleep(RESTART_PAUSE)
            if not self._stopping:
                await self._spawn(slot)

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

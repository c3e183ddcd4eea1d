"""Child processes and ports for the real-switch tier.

Why: a FreeSWITCH, a daemon or a sipp left running after a test run holds ports and CPU on a
machine CI shares, so every child is started in its own session, dies with the test process
(Linux parent-death signal) and is stopped by process group. Every listener gets a port
that was free a moment ago (TCP and UDP alike: SIP uses both); nothing relies on a default.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Runs in the child between fork and exec: SIGKILL it when the test process dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if _bindable(port, socket.SOCK_DGRAM) and _bindable(port, socket.SOCK_STREAM):
            return port
    raise RuntimeError("no free port pair found")


def port_taken(port: int) -> bool:
    """Whether something holds UDP ``port`` on 127.0.0.1 (a started sipp, say)."""
    return not _bindable(port, socket.SOCK_DGRAM)


def free_udp_range(size: int, *, low: int = 20000, high: int = 30000) -> tuple[int, int]:
    """``size`` consecutive free UDP ports below the kernel's ephemeral range, for RTP."""
    for _ in range(200):
        start = random.randrange(low, high - size) & ~1  # RTP wants an even start
        if all(_bindable(p, socket.SOCK_DGRAM) for p in range(start, start + size)):
            return start, start + size - 1
    raise RuntimeError(f"no {size} consecutive free UDP ports in {low}..{high}")


def wait_for(
    check: Callable[[], object],
    what: str,
    *,
    timeout: float = 30.0,
    detail: Callable[[], object] | None = None,
) -> object:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``.

    The limits are generous on purpose (a loaded 2-core machine): this is a wait, never a
    timing assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if outcome:
            return outcome
        if time.monotonic() > deadline:
            extra = f"; last seen: {detail()}" if detail is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for: {what}{extra}")
        time.sleep(0.1)


def spawn(
    command: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session, stdout and stderr to ``log``."""
    handle: IO[bytes] = log.open("ab")
    try:
        return subprocess.Popen(
            list(command),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # Linux: no thread forks meanwhile
        )
    finally:
        handle.close()


def stop(proc: subprocess.Popen[bytes], *, grace: float = 20.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(
    command: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child for the duration of the block, stopped on the way out (also on failure)."""
    proc = spawn(command, log=log, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        stop(proc)


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log, for a failure message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"

"""The xml_curl workers started before the control plane: a restart serves its persisted
generation within about a second.

The control plane's imports (the portal, the store's apply, the pass, the switch sessions)
take seconds on a loaded machine, and FreeSWITCH cannot register a phone while no lookup is
answered. So ``pbx run`` and ``pbx serve`` call ``launch`` as soon as their settings are
known, before importing any of it: the ``--listen`` socket is bound, the workers spawned
(they import the data plane only) and, while they import, the persisted generation is
checked the way ``ServedSnapshot`` checks it (the database's identity, or the DSN's
fingerprint while the database does not answer; a file that may not be served is withdrawn
first, so the workers fail closed). Only then are they told their settings; the control
plane waits (bounded) until they answer before it imports anything, because on two cores its
imports would otherwise take the CPU the workers need. ``XmlCurlWorkers`` adopts them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.logs import current_format, event
from reconciler.daemon.config import DaemonConfig
from reconciler.dataplane.board import Board, generation_tag

if TYPE_CHECKING:  # imported once the workers are spawned: they import meanwhile
    from reconciler.core.identity import DatabaseIdentity
    from reconciler.serve.generation import MappedGeneration

log = logging.getLogger(__name__)

WORKER_MODULE = "reconciler.dataplane.worker"
LISTEN_BACKLOG = 1024  # serve.listener.MAX_BACKLOG, without importing aiohttp before the spawn
PROBE_SECONDS = 2.0  # the database's identity: a refused connection answers at once
FIRST_ANSWER_SECONDS = 5.0  # longest the control plane waits for the workers to serve
DRAIN_SECONDS = 8.0  # a worker finishes what it answers, then exits
WHAT = "xml_curl listener (--listen / PBX_LISTEN)"

IdentityProbe = Callable[[float], "DatabaseIdentity | None"]
"""``probe(timeout)``: the configured database's identity; None when it has none yet (never
migrated); ``StoreUnavailable`` when it cannot be asked."""


def database_fingerprint(config: DaemonConfig) -> str:
    """What a persisted generation must name when the database cannot be asked."""
    from reconciler.store.identity import configured_fingerprint  # the store: after the spawn

    return configured_fingerprint(
        config.database_url, config.embedded_data_dir or config.state_dir / "postgres"
    )


def listen_socket(host: str, port: int, what: str) -> socket.socket:
    """The shared, inheritable listening socket of the workers (``SO_REUSEPORT`` too, so
    the next daemon can bind beside workers a killed one left behind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        from reconciler.serve.listener import ListenerUnavailable  # aiohttp: not before

        shown = f"[{host}]" if ":" in host else host
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenerUnavailable(f"{what}: cannot listen on {shown}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


def spawn_worker(sock: socket.socket, board: Board) -> subprocess.Popen[bytes]:
    """A worker process, importing while it waits for its settings on stdin (``tell``)."""
    return subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE],
        stdin=subprocess.PIPE,
        pass_fds=(sock.fileno(), board.fd),
    )


def tell(proc: subprocess.Popen[bytes], settings: dict[str, Any]) -> None:
    """Its settings, one JSON line on stdin (never argv: the xml_curl credentials are in it)."""
    assert proc.stdin is not None
    with contextlib.suppress(OSError):  # it died already: its supervisor replaces it
        proc.stdin.write(json.dumps(settings).encode() + b"\n")
        proc.stdin.flush()
    with contextlib.suppress(OSError):
        proc.stdin.close()


def worker_settings(
    config: DaemonConfig, fingerprint: str, sock: socket.socket, board: Board
) -> dict[str, Any]:
    """What every worker is told (``slot`` added per worker)."""
    auth = config.xml_curl_auth
    return {
        "generation_path": str(config.generation_path),
        "dsn_fingerprint": fingerprint,
        "auth": list(auth) if auth else None,
        "templates_dir": str(config.templates_dir) if config.templates_dir else None,
        "log_format": current_format(),
        "fd": sock.fileno(),
        "board_fd": board.fd,
    }


def check_persisted(
    path: Path, fingerprint: str, probe: IdentityProbe, timeout: float = PROBE_SECONDS
) -> MappedGeneration | None:
    """The persisted generation, mapped, when it may be served: whole, and of the database
    that answers (or, while none answers, of the DSN's fingerprint). One that may not be
    served (another database's, torn, a database never migrated) is removed, so the
    workers fail closed; None then, and when there is none."""
    from reconciler.serve.generation import open_generation, remove_generation
    from reconciler.serve.persist import SnapshotError
    from reconciler.store.errors import StoreUnavailable

    if not path.exists():
        return None
    try:
        expected = probe(timeout)
    except StoreUnavailable:
        expected = None
    else:
        if expected is None:
            event(log, "persisted generation not used: the database is new", logging.WARNING)
            remove_generation(path)
            return None
    try:
        return open_generation(path, expected_identity=expected, dsn_fingerprint=fingerprint)
    except SnapshotError as exc:  # a torn or foreign file must not stop the daemon
        event(log, "persisted generation not used", logging.WARNING, error=str(exc))
        remove_generation(path)
        return None


def probe_configured(config: DaemonConfig) -> IdentityProbe:
    """The identity probe before the embedded database is started (it cannot answer yet)."""

    from reconciler.store.errors import StoreUnavailable
    from reconciler.store.identity import probe_identity

    def probe(timeout: float) -> DatabaseIdentity | None:
        if config.database_url is None:
            raise StoreUnavailable("embedded database not started yet")
        return probe_identity(config.database_url, timeout)

    return probe


@dataclass
class EarlyWorkers:
    """Workers running before their supervisor exists; ``XmlCurlWorkers`` adopts them."""

    sock: socket.socket
    board: Board
    settings: dict[str, Any]  # without the slot
    procs: list[subprocess.Popen[bytes]]  # by slot; a replaced worker replaces its entry
    leftovers: list[int]  # pids a previous daemon's workers had (retired once ours serve)
    generation: str | None  # what they were started on (None: nothing to serve yet)
    closed: bool = field(default=False)

    def tell(self) -> None:
        for slot, proc in enumerate(self.procs):
            tell(proc, {**self.settings, "slot": slot})

    def serving(self) -> bool:
        """Every worker answers from the persisted generation (or one has died)."""
        if self.generation is None:
            return True
        tag = generation_tag(self.generation)
        return all(
            proc.poll() is not None or self.board.read(slot).serving == tag
            for slot, proc in enumerate(self.procs)
        )

    def wait_serving(self, within: float = FIRST_ANSWER_SECONDS) -> bool:
        deadline = time.monotonic() + within
        while not self.serving():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def retire_leftovers(self) -> None:
        """SIGTERM the workers a killed daemon left behind (only processes that are our
        workers, never our own), once: called when ours serve."""
        ours = {proc.pid for proc in self.procs}
        for pid in self.leftovers:
            if pid not in ours:
                _retire(pid)
        self.leftovers = []

    def close(self) -> None:
        """Stop the workers still running (none once their supervisor drained them), free
        the socket and the board. Idempotent: the CLI calls it whatever happened."""
        if self.closed:
            return
        self.closed = True
        running = [proc for proc in self.procs if proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=DRAIN_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.sock.close()
        self.board.close()


def start(config: DaemonConfig) -> EarlyWorkers:
    """Bind ``--listen`` and spawn ``config.xml_curl_workers`` workers, not told yet
    (``EarlyWorkers.tell``); what they will be told is worked out while they import.
    Raises ``ListenerUnavailable``."""
    sock = listen_socket(config.listen_host, config.listen_port, WHAT)
    board = Board.create(config.xml_curl_workers)
    old = read_pids(config.worker_pid_file)  # before ours exist: theirs are retired later
    procs = [spawn_worker(sock, board) for _ in range(config.xml_curl_workers)]
    write_pids(config.worker_pid_file, [proc.pid for proc in procs])  # a kill now leaves them
    try:
        settings = worker_settings(config, database_fingerprint(config), sock, board)
    except BaseException:
        EarlyWorkers(sock, board, {}, procs, [], None).close()
        raise
    return EarlyWorkers(sock, board, settings, procs, old, None)


def launch(config: DaemonConfig) -> EarlyWorkers:
    """``start``, check the persisted generation while the workers import, tell them, and
    wait (at most ``FIRST_ANSWER_SECONDS``) until they answer from it."""
    early = start(config)
    try:  # while the workers import: may the file be served?
        fingerprint = early.settings["dsn_fingerprint"]
        mapped = check_persisted(config.generation_path, fingerprint, probe_configured(config))
        if mapped is not None:
            early.generation = mapped.generation
            mapped.close()
        early.tell()
        if early.generation is not None and not early.wait_serving():
            event(log, "xml_curl workers not serving the persisted generation yet",
                  logging.WARNING)  # fmt: skip
        early.retire_leftovers()  # ours serve, or soon will: the old ones may go
    except BaseException:  # SIGTERM meanwhile, a bug: no worker outlives this
        early.close()
        raise
    return early


def write_pids(path: Path, pids: list[int]) -> None:
    with contextlib.suppress(OSError):  # no state dir yet: nothing to retire them by
        path.write_text("".join(f"{pid}\n" for pid in pids))


def read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split() if line.isdigit()]
    except OSError:
        return []


def _retire(pid: int) -> None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if WORKER_MODULE.encode() in cmdline:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            event(log, "retired an xml_curl worker of a previous daemon", pid=pid)

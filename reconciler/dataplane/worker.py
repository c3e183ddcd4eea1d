"""One xml_curl worker process: ``python -m reconciler.dataplane.worker`` with its settings
as one JSON line on stdin (never argv or the environment: the xml_curl credentials are in
it) and the listening socket as an inherited file descriptor.

Every ``board.PUBLISH_SECONDS`` its event loop publishes its request counts and a heartbeat
in its slot of the workers' board (``dataplane.board``, an inherited descriptor too): the
supervisor's metrics and its hang detection read them there.

SIGTERM drains: the socket stops accepting, answers in flight finish, the process exits 0.
When ``pbx run`` dies without a word (SIGKILL), the worker keeps answering from the last
good generation and following the file; the next ``pbx run`` retires it once its own
workers are serving (``reconciler.daemon.workers``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from reconciler.core import logs
from reconciler.core.identity import DatabaseIdentity
from reconciler.dataplane.board import PUBLISH_SECONDS, Board, BoardPublisher
from reconciler.dataplane.follower import GenerationFollower
from reconciler.serve.generation import MappedGeneration
from reconciler.serve.listener import ListenerLimits, start_server
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl_app import make_app
from reconciler.sources.secrets import SecretsSource

log = logging.getLogger("reconciler.dataplane.worker")

DRAIN_SECONDS = 5.0


async def serve(settings: dict[str, Any], sock: socket.socket) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    identity = settings.get("expected_identity")
    follower = GenerationFollower(
        Path(settings["generation_path"]),
        dsn_fingerprint=settings["dsn_fingerprint"],
        expected_identity=DatabaseIdentity.from_dict(identity) if identity else None,
    )
    follower.check()
    templates_dir = settings.get("templates_dir")
    templates = load_templates(Path(templates_dir) if templates_dir else None)
    auth = settings.get("auth")
    limits = ListenerLimits()
    board = Board.attach(int(settings["board_fd"]))
    publisher = BoardPublisher(board, int(settings["slot"]), lambda: _generation_of(follower.get()))
    publisher.publish()
    app = make_app(
        follower.get,
        templates,
        auth=(auth[0], auth[1]) if auth else None,
        limits=limits,
        observer=publisher.counts.observe,
        persist_status=board.persist_status,
        gateway_password=SecretsSource().password,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = await start_server(
        app, "", 0, limits, sock=sock, what="xml_curl worker", shutdown_timeout=DRAIN_SECONDS
    )
    parent = os.getppid()
    follow = asyncio.create_task(follower.run(stop))
    watch = asyncio.create_task(_watch_parent(parent, stop))
    beat = asyncio.create_task(_publish(publisher, stop))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        publisher.publish()  # what the drain answered
        for task in (follow, watch, beat):
            task.cancel()
        follower.close()
    return 0


def _generation_of(view: MappedGeneration | None) -> str | None:
    return view.generation if view is not None else None


async def _publish(publisher: BoardPublisher, stop: asyncio.Event) -> None:
    """The heartbeat: it moves only while this loop turns (a stuck loop is a hang)."""
    while not stop.is_set():
        await asyncio.sleep(PUBLISH_SECONDS)
        publisher.publish()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Say once that the control plane is gone; keep serving (the last good generation)."""
    while not stop.is_set():
        if os.getppid() != parent:
            logs.event(log, "control plane gone: serving the last generation", logging.WARNING,
                       parent=parent, worker=os.getpid())  # fmt: skip
            return
        await asyncio.sleep(0.5)


def main() -> int:
    settings = json.loads(sys.stdin.readline())
    logs.configure(settings.get("log_format") or "text")
    sock = socket.socket(fileno=int(settings["fd"]))
    sock.setblocking(False)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    return int(runner(serve(settings, sock)))


if __name__ == "__main__":
    sys.exit(main())

"""Start-up chores of ``pbx run`` and its entry point (``pbx serve``'s too): what it says first, the state
directory, the optional git poller, and the event loop it runs on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from reconciler.core.logs import event
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.early import EarlyWorkers
from reconciler.sources import GitSource, GitSourceError, GitSourceStopped

log = logging.getLogger(__name__)


def announce(c: DaemonConfig) -> None:
    """The embedded defaults are announced, so nobody wonders where the data went."""
    event(
        log,
        "pbx-reconciler starting",
        tenants=str(c.specs_dir),
        database=(
            "PBX_DATABASE_URL/--database-url"
            if c.database_url
            else f"embedded PostgreSQL (pgserver) in {c.embedded_data_dir or c.state_dir / 'postgres'}"
        ),
        listen=f"{c.listen_host}:{c.listen_port}",
        xml_curl_auth="on" if c.xml_curl_auth else "off (set --xml-curl-auth)",
        status_auth="on" if c.status_auth else "off (/status and /metrics: loopback only)",
        freeswitch=",".join(n.name for n in c.nodes) or "none",
        interval=c.interval,
        git=f"{c.git_branch}@(configured)" if c.git_url else "off",
        state_dir=str(c.state_dir),
    )
    if not c.xml_curl_auth:
        event(log, "xml_curl endpoint has no authentication", logging.WARNING)


def prepare_state_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        event(log, "state dir not usable", logging.WARNING, path=str(path), error=str(exc))


async def poll_git(
    config: DaemonConfig, trigger: Callable[[str], None], stop: asyncio.Event
) -> None:
    """Fetch the branch every ``git_poll`` seconds; a new commit triggers a pass. Stopping
    (or cancelling) ends a running git at once: shutdown never waits for a hanging fetch."""
    assert config.git_url
    source = GitSource(config.git_url, config.git_branch, config.state_dir / "git")
    stopper = asyncio.create_task(_stop_on(stop, source), name="git-stopper")
    try:
        while not stop.is_set():
            try:
                if await asyncio.to_thread(source.sync):
                    trigger("git")
            except GitSourceStopped:
                return
            except GitSourceError as exc:
                event(log, "git fetch failed", logging.WARNING, error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.git_poll):
                    await stop.wait()
    finally:
        stopper.cancel()
        source.stop()  # cancelled mid-fetch: the worker thread's git must end too


async def _stop_on(stop: asyncio.Event, source: GitSource) -> None:
    await stop.wait()
    await asyncio.to_thread(source.stop)


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: about 10% less CPU per xml_curl request (bench/bench_xmlcurl.py)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_daemon(
    config: DaemonConfig,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    data_plane_only: bool = False,
    early: EarlyWorkers | None = None,
) -> int:
    """Entry point of ``pbx run`` (and of ``pbx serve``: ``data_plane_only``); ``early``:
    its xml_curl workers, started already (``daemon.early``)."""
    from reconciler.daemon.root import Daemon
    from reconciler.daemon.serve_node import ServeNode

    os.umask(0o077)  # the snapshot and the embedded database hold a1 hashes and passwords
    loop_factory = loop_factory or _fast_loop_factory()

    async def main() -> int:
        # built inside the loop: they create asyncio primitives
        process = ServeNode(config, early=early) if data_plane_only else Daemon(config, early=early)
        return await process.run()

    if loop_factory is None:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())

"""``pbx serve``: the data plane alone, fed from the control plane's database. It serves what
was applied, learns of an apply through LISTEN/NOTIFY, keeps serving its last generation
while PostgreSQL is down (across its own restart too), and never takes the leader lock.
Nothing here asserts a duration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemon.test_daemon import (
    AUTH,
    _found_async,
    _pg_ctl,
    config_for,
    eventually,
    free_port,
    own_postgres,  # noqa: F401 - the fixture
    running,
)


def spawn_serve(
    state_dir: Path, dsn: str, port: int, status: int, *, workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {"PBX_DATABASE_URL": dsn, "PBX_XML_CURL_AUTH": ":".join(AUTH)}
    command = [sys.executable, "-m", "reconciler", "serve", "--listen", f"127.0.0.1:{port}"]
    command += ["--status-listen", f"127.0.0.1:{status}", "--xml-curl-workers", str(workers)]
    command += ["--state-dir", str(state_dir)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def serve_status(status: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{status}/status", timeout=2) as response:
        return dict(json.loads(response.read()))


async def stopped(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(proc.wait, 30)


async def _is_up(status: int) -> bool:
    try:
        return await asyncio.to_thread(lambda: serve_status(status)["database_up"] is True)
    except OSError:
        return False


async def test_serve_follows_applies_and_outlives_the_database(
    tmp_path: Path,
    tenants_dir: Path,
    own_postgres: object,  # noqa: F811 - the fixture
) -> None:
    datadir, server = own_postgres  # type: ignore[misc]
    dsn = server.get_uri()
    control_port, port, status = free_port(), free_port(), free_port()
    serve_state = tmp_path / "serve-state"
    proc = spawn_serve(serve_state, dsn, port, status)
    try:
        async with running(config_for(tmp_path, dsn, port=control_port)) as control:
            await control.wait_passes(1)
            await eventually(lambda: _found_async_quiet(port, "1001"),
                             "pbx serve serves the applied state", 60)  # fmt: skip
            acme = tenants_dir / "acme.yaml"
            acme.write_text(acme.read_text().replace(
                '  - {number: "1002", name: Bob}\n',
                '  - {number: "1002", name: Bob}\n  - {number: "1005", name: Dan}\n'))  # fmt: skip
            await eventually(lambda: _found_async_quiet(port, "1005"), "the apply, notified", 30)
            described = serve_status(status)
            assert described["role"] == "data plane" and described["ready"] is True
            assert described["xml_curl_workers"]["configured"] == 1
            assert control.is_leader, "pbx serve never takes the lock"
        assert not await _found_async(port, "acme.example.com", "1004")

        await asyncio.to_thread(_pg_ctl, datadir, "stop", "-m", "fast")
        await eventually(lambda: _true(not serve_status(status)["database_up"]), "down", 30)
        assert await _found_async(port, "acme.example.com", "1005"), "the last generation"
        assert await stopped(proc) == 0

        proc = spawn_serve(serve_state, dsn, port, status)  # restarted while PostgreSQL is down
        await eventually(lambda: _found_async_quiet(port, "1005"), "served from the file", 60)
        # the workers answer before the control plane listens: its status comes after
        await eventually(lambda: _source_is(status, "disk"), "the status listener", 60)
        await asyncio.to_thread(_pg_ctl, datadir, "start", "-o", f"-h '' -k {datadir}",
                                "-l", str(datadir / "log"))  # fmt: skip
        await eventually(lambda: _is_up(status), "reconnected", 60)
        await eventually(lambda: _true(serve_status(status)["snapshot"]["source"] == "database"),
                         "re-read after the reconnection", 30)  # fmt: skip
        assert await _found_async(port, "acme.example.com", "1005")
        assert await stopped(proc) == 0
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert AUTH[1] not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()  # its workers outlive a SIGKILL by design: end them too
            proc.wait()
        for pid in _worker_pids(serve_state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.stderr:
            proc.stderr.close()


def _worker_pids(state_dir: Path) -> list[int]:
    path = state_dir / "xmlcurl-workers.pid"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def _true(value: bool) -> bool:
    return value


async def _source_is(status: int, source: str) -> bool:
    try:
        described = await asyncio.to_thread(serve_status, status)
    except OSError:
        return False
    return bool(described["snapshot"]["source"] == source)


async def _found_async_quiet(port: int, user: str) -> bool:
    try:
        return await _found_async(port, "acme.example.com", user)
    except (aiohttp.ClientError, OSError):
        return False


def test_serve_needs_the_control_planes_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", "--state-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--database-url" in done.stderr


@pytest.fixture
def tenants_dir(tmp_path: Path) -> Path:
    from tests.daemon.test_daemon import ACME

    directory = tmp_path / "tenants.d"
    directory.mkdir()
    (directory / "acme.yaml").write_text(ACME)
    return directory

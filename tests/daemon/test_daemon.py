"""The daemon end to end, in process: real PostgreSQL, the fake FreeSWITCH ESL peer, the real
xml_curl endpoint. Waits poll with generous limits; nothing here asserts a duration."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from reconciler.daemon.root import Daemon, DaemonConfig
from reconciler.switch import parse_node_spec
from tests.fakes.freeswitch import FakeFreeSwitch

ACME = """\
id: acme
domain: acme.example.com
name: Acme
extensions:
  - {number: "1001", name: Alice}
  - {number: "1002", name: Bob}
agents:
  - {name: alice, extension: "1001", initial_status: Available}
queues:
  - name: support
    number: "7000"
    tiers:
      - {agent: alice, level: 1, position: 1}
"""

BETA = """\
id: beta
domain: beta.example.com
name: Beta
extensions:
  - {number: "2001", name: Bea}
agents:
  - {name: bea, extension: "2001"}
"""

AUTH = ("freeswitch", "s3cret-xml-curl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sip_auth_form(domain: str, user: str) -> dict[str, str]:
    return {
        "hostname": "fs1",
        "section": "directory",
        "tag_name": "domain",
        "key_name": "name",
        "key_value": domain,
        "action": "sip_auth",
        "sip_auth_username": user,
        "sip_auth_realm": domain,
        "key": "id",
        "user": user,
        "domain": domain,
    }


async def lookup(port: int, domain: str, user: str) -> str:
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(
            f"http://127.0.0.1:{port}/freeswitch/xml", data=sip_auth_form(domain, user)
        ) as r,
    ):
        assert r.status == 200
        return await r.text()


def found(body: str, user: str) -> bool:
    return f'<user id="{user}"' in body


async def eventually(
    check: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = 15.0,  # noqa: ASYNC109
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for: {what}")


@contextlib.asynccontextmanager
async def running(config: DaemonConfig) -> AsyncIterator[Daemon]:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.serving.wait(), 10)
    try:
        yield daemon
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


def config_for(
    tmp_path: Path, dsn: str, *, port: int, nodes: tuple = (), name: str = "d1", workers: int = 0
) -> DaemonConfig:
    """``workers``: xml_curl answered by that many worker processes on ``port`` (the
    control plane's /status then on a free port of its own)."""
    return DaemonConfig(
        xml_curl_workers=workers,
        status_listen=("127.0.0.1", free_port()) if workers else None,
        tenants_dir=tmp_path / "tenants.d",
        database_url=dsn,
        listen_port=port,
        xml_curl_auth=AUTH,
        nodes=nodes,
        interval=3600.0,
        state_dir=tmp_path / name,
        install_signal_handlers=False,
        leader_poll=0.2,
        debounce_ms=50,
    )


@pytest.fixture
def tenants_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tenants.d"
    directory.mkdir()
    (directory / "acme.yaml").write_text(ACME)
    return directory


async def test_edit_is_served_and_pushed_to_the_switch(
    tmp_path: Path, tenants_dir: Path, pg_dsn: str
) -> None:
    port = free_port()
    async with FakeFreeSwitch(
        xml_curl_url=f"http://127.0.0.1:{port}/freeswitch/xml", xml_curl_credentials=":".join(AUTH)
    ) as fs:
        node = parse_node_spec(f"{fs.host}:{fs.port}:{fs.password}")
        async with running(config_for(tmp_path, pg_dsn, port=port, nodes=(node,))) as daemon:

            async def synced() -> bool:
                return (
                    found(await lookup(port, "acme.example.com", "1001"), "1001")
                    and "alice@acme.example.com" in fs.agents
                    and ("support@acme.example.com", "alice@acme.example.com") in fs.tiers
                )

            await eventually(synced, "first sync of acme to the database, xml_curl and the switch")
            assert fs.agents["alice@acme.example.com"].status == "Available"
            assert not found(await lookup(port, "acme.example.com", "1005"), "1005")

            edited = ACME.replace(
                '  - {number: "1002", name: Bob}\n',
                '  - {number: "1002", name: Bob}\n  - {number: "1005", name: Dave}\n',
            ).replace(
                "agents:\n",
                'agents:\n  - {name: dave, extension: "1005"}\n',
            )
            (tenants_dir / "acme.yaml").write_text(edited)

            async def applied() -> bool:
                return (
                    found(await lookup(port, "acme.example.com", "1005"), "1005")
                    and "dave@acme.example.com" in fs.agents
                    # agent add and agent set contact are two commands: wait for both
                    and fs.agents["dave@acme.example.com"].contact == "user/1005@acme.example.com"
                )

            await eventually(applied, "the edit served by xml_curl and pushed to the switch")
            # a person put alice on break: runtime status survives every later pass
            fs.agents["alice@acme.example.com"].status = "On Break"
            daemon.trigger("test", full=True)
            passes = daemon.passes
            await daemon.wait_passes(passes + 1)
            assert fs.agents["alice@acme.example.com"].status == "On Break"


async def test_broken_file_freezes_only_its_tenant(
    tmp_path: Path, tenants_dir: Path, pg_dsn: str
) -> None:
    (tenants_dir / "beta.yaml").write_text(BETA)
    port = free_port()
    async with running(config_for(tmp_path, pg_dsn, port=port)) as daemon:

        async def both() -> bool:
            return found(await lookup(port, "beta.example.com", "2001"), "2001") and found(
                await lookup(port, "acme.example.com", "1001"), "1001"
            )

        await eventually(both, "both tenants served")
        (tenants_dir / "beta.yaml").write_text(
            BETA.replace("name: Bea}", "name: Bea, colour: red}")
        )
        (tenants_dir / "acme.yaml").write_text(
            ACME.replace("name: Bob}", 'name: Bob}\n  - {number: "1003", name: Carl}')
        )

        async def acme_applied() -> bool:
            return found(await lookup(port, "acme.example.com", "1003"), "1003")

        await eventually(acme_applied, "acme's edit applied despite beta's broken file")
        assert found(await lookup(port, "beta.example.com", "2001"), "2001"), "beta keeps serving"
        status = daemon.status_payload()["tenants"]["beta"]
        assert status["last_error"].startswith("invalid spec")
        assert any("colour: unknown key" in e for e in status["spec_errors"])
        assert daemon.metrics.invalid_tenants._value.get() == 1  # type: ignore[attr-defined]


async def test_two_daemons_one_leader_and_failover(
    tmp_path: Path, tenants_dir: Path, pg_dsn: str
) -> None:
    port_a, port_b = free_port(), free_port()
    first = Daemon(config_for(tmp_path, pg_dsn, port=port_a, name="a"))
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.serving.wait(), 10)
    try:
        await eventually(lambda: _true(first.is_leader), "first daemon leads")
        async with running(config_for(tmp_path, pg_dsn, port=port_b, name="b")) as second:
            await eventually(
                lambda: _found_async(port_b, "acme.example.com", "1001"),
                "the follower serves the leader's apply",
            )
            assert not second.is_leader
            # the follower follows an apply made by the leader, via NOTIFY
            (tenants_dir / "acme.yaml").write_text(
                ACME.replace("name: Bob}", 'name: Bob}\n  - {number: "1009", name: Ian}')
            )
            await eventually(
                lambda: _found_async(port_b, "acme.example.com", "1009"),
                "follower refreshed on NOTIFY",
            )
            first.request_stop()
            assert await asyncio.wait_for(first_task, 30) == 0
            await eventually(lambda: _true(second.is_leader), "the follower takes over")
            (tenants_dir / "acme.yaml").write_text(
                ACME.replace("name: Bob}", 'name: Bob}\n  - {number: "1010", name: Jo}')
            )
            await eventually(
                lambda: _found_async(port_b, "acme.example.com", "1010"), "the new leader applies"
            )
    finally:
        first.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(first_task, 30)


async def _worker_says_not_persisted(port: int) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        ready = await response.json()
    return (
        response.status == 200
        and ready["snapshot_persisted"] is False
        and "last good" in ready["detail"]
    )


async def _true(value: bool) -> bool:
    return value


async def _found_async(port: int, domain: str, user: str) -> bool:
    return found(await lookup(port, domain, user), user)


@pytest.fixture
def own_postgres(tmp_path: Path) -> object:
    """A pgserver cluster this test may stop and start again."""
    import pgserver

    datadir = tmp_path / "pg"
    server = pgserver.get_server(datadir, cleanup_mode="stop")
    yield datadir, server
    with contextlib.suppress(Exception):
        server.cleanup()
    # a cluster the test restarted with pg_ctl is no longer pgserver's to stop: stop it here,
    # or it outlives the test run
    with contextlib.suppress(Exception):
        _pg_ctl(datadir, "stop", "-m", "immediate")


@pytest.mark.parametrize("workers", [0, 2])
async def test_restart_during_database_outage_serves_persisted_snapshot(
    tmp_path: Path, tenants_dir: Path, own_postgres: object, workers: int
) -> None:
    datadir, server = own_postgres  # type: ignore[misc]
    dsn = server.get_uri()
    port = free_port()
    async with running(config_for(tmp_path, dsn, port=port, workers=workers)):
        await eventually(lambda: _found_async(port, "acme.example.com", "1001"), "served")
    assert (tmp_path / "d1" / "xmlcurl.generation").stat().st_mode & 0o077 == 0
    assert not (tmp_path / "d1" / "snapshot.json").exists(), "one persisted format"
    await asyncio.to_thread(_pg_ctl, datadir, "stop", "-m", "fast")
    async with running(config_for(tmp_path, dsn, port=port, workers=workers)) as daemon:
        await eventually(lambda: _found_async(port, "acme.example.com", "1001"), "served from disk")
        assert not daemon.database_up


@pytest.mark.parametrize("workers", [0, 2])
async def test_a_fresh_database_is_never_served_the_previous_snapshot(
    tmp_path: Path, tenants_dir: Path, pg_dsn: str, pg_server_dsn: str, workers: int
) -> None:
    port = free_port()
    async with running(config_for(tmp_path, pg_dsn, port=port, workers=workers)):
        await eventually(lambda: _found_async(port, "acme.example.com", "1001"), "served")
    # the same DSN now names a new, empty database; the specs no longer hold acme
    name = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    (tenants_dir / "acme.yaml").unlink()
    async with running(config_for(tmp_path, pg_dsn, port=port, workers=workers)) as daemon:
        assert not await _found_async(port, "acme.example.com", "1001"), "served at start"
        await daemon.wait_passes(1)
        assert not await _found_async(port, "acme.example.com", "1001"), "served after a pass"


def _pg_ctl(datadir: Path, *args: str) -> None:
    import subprocess

    import pgserver

    bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    # as root, pgserver runs the cluster as its own "pgserver" user; so must pg_ctl
    user = "pgserver" if os.geteuid() == 0 else None
    done = subprocess.run(
        [str(bin_dir / "pg_ctl"), "-D", str(datadir), "-w", *args],
        check=False,
        capture_output=True,
        user=user,
    )
    assert done.returncode == 0, f"pg_ctl {args[0]}: {done.stderr.decode()} {done.stdout.decode()}"


async def test_postgres_outage_keeps_serving_and_resumes(
    tmp_path: Path, tenants_dir: Path, own_postgres: object
) -> None:
    datadir, server = own_postgres  # type: ignore[misc]
    dsn = server.get_uri()
    port = free_port()
    async with running(config_for(tmp_path, dsn, port=port)) as daemon:
        await eventually(lambda: _found_async(port, "acme.example.com", "1001"), "served")
        await asyncio.to_thread(_pg_ctl, datadir, "stop", "-m", "fast")
        await eventually(lambda: _true(not daemon.database_up), "outage noticed")
        assert await _found_async(port, "acme.example.com", "1001"), (
            "still serving during the outage"
        )
        (tenants_dir / "acme.yaml").write_text(
            ACME.replace("name: Bob}", 'name: Bob}\n  - {number: "1004", name: Dee}')
        )
        await asyncio.sleep(0.5)
        assert not await _found_async(port, "acme.example.com", "1004")
        await asyncio.to_thread(
            _pg_ctl, datadir, "start", "-o", f"-h '' -k {datadir}", "-l", str(datadir / "log")
        )
        await eventually(
            lambda: _found_async(port, "acme.example.com", "1004"), "resumed after restart", 40
        )
    with psycopg.connect(dsn) as conn:
        numbers = {r[0] for r in conn.execute("SELECT number FROM tenant_acme.extensions")}
    assert numbers == {"1001", "1002", "1004"}, "the tenant is whole, not partial"


def spawn_daemon(tmp_path: Path, tenants_dir: Path, dsn: str, port: int) -> subprocess.Popen[bytes]:
    """`pbx run` as a real process (its own signal handlers), on the given database, with
    its default xml_curl workers (one per core): ``port`` is where /status answers."""
    env = {
        **os.environ,
        "PBX_DATABASE_URL": dsn,
        "PBX_FREESWITCH": "127.0.0.1:1:ClueCon",
        "PBX_INTERVAL": "3600",
    }
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{free_port()}"]
    command += ["--status-listen", f"127.0.0.1:{port}"]
    command += ["--portal-listen", f"127.0.0.1:{free_port()}"]  # never a fixed port
    command += ["--tenants", str(tenants_dir), "--state-dir", str(tmp_path / "state")]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def get_status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as response:
        return dict(json.loads(response.read()))


def wait_first_pass(port: int, timeout: float = 30.0) -> dict[str, Any]:
    """/status once the daemon served its first successful pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = get_status(port)
            if status["last_pass"].get("result") == "ok":
                return status
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail("the daemon never completed a pass")


@pytest.mark.usefixtures("default_ports_taken")
def test_sigterm_exits_zero(tmp_path: Path, tenants_dir: Path, pg_dsn: str) -> None:
    port = free_port()
    proc = spawn_daemon(tmp_path, tenants_dir, pg_dsn, port)
    try:
        wait_first_pass(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "ClueCon" not in stderr
    assert pg_dsn not in stderr or "@" not in pg_dsn


async def test_missing_tenants_directory_orphans_nothing(
    tmp_path: Path, tenants_dir: Path, pg_dsn: str
) -> None:
    """A vanished spec directory (unmounted volume, wrong path) is an error, not 'every
    tenant was removed from git': nothing is orphaned and everything keeps being served."""
    port = free_port()
    async with running(config_for(tmp_path, pg_dsn, port=port)) as daemon:
        await eventually(lambda: _found_async(port, "acme.example.com", "1001"), "served")
        moved = tmp_path / "elsewhere"
        tenants_dir.rename(moved)  # noqa: ASYNC240 - a test, not a server
        daemon.trigger("test", full=True)
        await eventually(
            lambda: _true(
                "does not exist" in str(daemon.status_payload()["last_pass"].get("error"))
            ),
            "the pass reports the missing directory",
        )
        assert await _found_async(port, "acme.example.com", "1001")
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT status FROM pbx.tenants WHERE id = 'acme'").fetchone() == (
            "active",
        )


@pytest.mark.usefixtures("default_ports_taken")
async def test_a_stuck_leader_is_replaced(tmp_path: Path, tenants_dir: Path, pg_dsn: str) -> None:
    """SIGSTOP keeps a leader's TCP session (and so its advisory lock) alive: the session's
    lease (idle_session_timeout) must hand leadership to a follower anyway."""
    stuck_port, port = free_port(), free_port()
    stuck = spawn_daemon(tmp_path / "stuck", tenants_dir, pg_dsn, stuck_port)
    try:
        assert (await asyncio.to_thread(wait_first_pass, stuck_port))["role"] == "leader"
        stuck.send_signal(signal.SIGSTOP)
        async with running(config_for(tmp_path, pg_dsn, port=port)) as follower:
            started = time.monotonic()
            await eventually(lambda: _true(follower.is_leader), "the follower takes over", 30)
            taken = time.monotonic() - started
        assert taken < 20, f"took {taken:.1f} s"
    finally:
        stuck.send_signal(signal.SIGCONT)
        stuck.terminate()
        stuck.wait(20)


@pytest.mark.parametrize("workers", [0, 2])
async def test_a_read_only_state_dir_keeps_the_last_generation_and_readyz_says_so(
    tmp_path: Path, tenants_dir: Path, pg_dsn: str, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control plane serves the edit from memory; the file (what workers and a restart
    serve) stays the last good generation; /readyz names the failed write. (The tests run
    as root, whom a mode of 0500 does not stop: the write fails as a read-only mount would.)"""

    def read_only(target: Path, payload: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    port = free_port()
    config = config_for(tmp_path, pg_dsn, port=port, workers=workers)
    async with running(config) as daemon:
        await eventually(lambda: _found_async(port, "acme.example.com", "1001"), "served")
        await eventually(lambda: _true(not daemon.served.in_heap), "served from the file")
        written = config.generation_path.read_bytes()
        monkeypatch.setattr("reconciler.serve.generation.write_atomically", read_only)
        acme = tenants_dir / "acme.yaml"
        acme.write_text(acme.read_text().replace(
            '  - {number: "1002", name: Bob}\n',
            '  - {number: "1002", name: Bob}\n  - {number: "1005", name: Dan}\n'))  # fmt: skip
        await eventually(lambda: _true(daemon.served.in_heap), "the edit, from memory", 30)
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{daemon.status_port}/readyz"
            async with session.get(url) as response:
                ready = await response.json()
        assert response.status == 200 and ready["snapshot_persisted"] is False
        assert "Read-only file system" in ready["detail"]
        assert config.generation_path.read_bytes() == written, "the last good generation"
        if workers:  # they keep serving it: 1001, not yet 1005; their /readyz says why
            assert await _found_async(port, "acme.example.com", "1001")
            assert not await _found_async(port, "acme.example.com", "1005")
            await eventually(lambda: _worker_says_not_persisted(port), "the workers' /readyz")
        else:
            assert await _found_async(port, "acme.example.com", "1005")

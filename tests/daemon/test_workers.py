"""``pbx run --xml-curl-workers 2`` end to end on a fresh database: an edit is served by the
workers, a crashed worker is replaced and counted, the workers keep answering after the
control plane is SIGKILLed, SIGTERM drains them all. Nothing here asserts a duration."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.test_daemon import (
    ACME,
    free_port,
    get_status,
    sip_auth_form,
    wait_first_pass,
)


def spawn(
    tmp_path: Path, tenants: Path, dsn: str, port: int, status: int, **extra_env: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PBX_DATABASE_URL": dsn, "PBX_FREESWITCH": "127.0.0.1:1:ClueCon",
           "PBX_INTERVAL": "3600", "PBX_XML_CURL_WORKERS": "2", **extra_env}  # fmt: skip
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{port}"]
    command += ["--status-listen", f"127.0.0.1:{status}"]
    command += ["--portal-listen", f"127.0.0.1:{free_port()}"]
    command += ["--tenants", str(tenants), "--state-dir", str(tmp_path / "state")]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def lookup(port: int, user: str) -> bool:
    data = urllib.parse.urlencode(sip_auth_form("acme.example.com", user)).encode()
    url = f"http://127.0.0.1:{port}/freeswitch/xml"
    with urllib.request.urlopen(url, data=data, timeout=2) as response:
        return f'<user id="{user}"'.encode() in response.read()


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for: {what}")


def worker_pids(tmp_path: Path) -> list[int]:
    path = tmp_path / "state" / "xmlcurl-workers.pid"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


CRASHES = 'pbx_xmlcurl_worker_restarts_total{reason="crash"}'
HANGS = 'pbx_xmlcurl_worker_restarts_total{reason="hang"}'
FOUND = 'pbx_xmlcurl_requests_total{result="found",section="directory"}'
FOUND_LATENCY = 'pbx_xmlcurl_request_duration_seconds_count{section="directory"}'


def metric(status_port: int, name: str) -> float:
    """One sample of the control plane's /metrics; ``name`` with its labels, if any."""
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    directory = tmp_path / "tenants.d"
    directory.mkdir()
    (directory / "acme.yaml").write_text(ACME)
    return directory


def test_workers_serve_edits_survive_crashes_and_the_control_plane(
    tmp_path: Path, tenants: Path, pg_dsn: str
) -> None:
    port, status = free_port(), free_port()
    proc = spawn(tmp_path, tenants, pg_dsn, port, status)
    pids: list[int] = []
    try:
        wait_first_pass(status)
        eventually(lambda: lookup(port, "1001"), "the workers serve the first generation")
        assert not lookup(port, "1005")
        edited = ACME.replace('  - {number: "1002", name: Bob}\n',
                              '  - {number: "1002", name: Bob}\n  - {number: "1005", name: D}\n')  # fmt: skip
        (tenants / "acme.yaml").write_text(edited)
        eventually(lambda: all(lookup(port, "1005") for _ in range(8)), "the edit, every worker")

        pids = worker_pids(tmp_path)
        assert len(pids) == 2 and proc.pid not in pids
        os.kill(pids[0], signal.SIGKILL)
        eventually(lambda: metric(status, CRASHES) == 1.0, "the crash counted")
        assert metric(status, HANGS) == 0.0
        eventually(lambda: len(set(worker_pids(tmp_path)) - {pids[0]}) == 2, "a replacement")
        assert all(lookup(port, "1001") for _ in range(8))

        pids = worker_pids(tmp_path)
        proc.kill()  # the control plane dies without a word
        proc.wait(timeout=10)
        assert all(lookup(port, "1005") for _ in range(16)), "the data plane keeps answering"

        # the next daemon binds beside them and retires them once its own workers serve
        proc = spawn(tmp_path, tenants, pg_dsn, port, free_port())
        eventually(lambda: not any(alive(pid) for pid in pids), "the old workers retired")
        eventually(lambda: len(worker_pids(tmp_path)) == 2, "the new workers")
        assert not set(worker_pids(tmp_path)) & set(pids)
        eventually(lambda: lookup(port, "1005"), "the new workers serve")
        pids = worker_pids(tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids or worker_pids(tmp_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.stderr:
            proc.stderr.close()


def test_sigterm_drains_every_worker(tmp_path: Path, tenants: Path, pg_dsn: str) -> None:
    port, status = free_port(), free_port()
    proc = spawn(tmp_path, tenants, pg_dsn, port, status)
    try:
        wait_first_pass(status)
        eventually(lambda: lookup(port, "1001"), "the workers serve")
        pids = worker_pids(tmp_path)
        assert len(pids) == 2
        # /status stays with the control plane, and `pbx status` finds it there
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2)
        assert refused.value.code == 404
        env = {**os.environ, "PBX_LISTEN": f"127.0.0.1:{port}", "PBX_XML_CURL_WORKERS": "2",
               "PBX_STATUS_LISTEN": f"127.0.0.1:{status}"}  # fmt: skip
        env.pop("PBX_STATUS_URL", None)
        shown = subprocess.run([sys.executable, "-m", "reconciler", "status", "--output", "json"],
                               env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        described = json.loads(shown.stdout)["xml_curl_workers"]
        assert described.pop("answering") in (0, 1, 2)  # a worker may still be starting
        assert described == {"configured": 2, "running": 2, "restarts": 0, "hangs": 0}
        assert metric(status, "pbx_xmlcurl_workers") == 2.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not any(alive(pid) for pid in pids), "no worker outlives a stopped daemon"
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


def test_a_hung_worker_is_killed_replaced_and_counted(
    tmp_path: Path, tenants: Path, pg_dsn: str
) -> None:
    """SIGSTOP: the worker holds its process and its socket but its loop no longer turns."""
    port, status = free_port(), free_port()
    proc = spawn(tmp_path, tenants, pg_dsn, port, status, PBX_XML_CURL_HANG_TIMEOUT="1")
    pids: list[int] = []
    try:
        wait_first_pass(status)
        eventually(lambda: all(lookup(port, "1001") for _ in range(8)), "the workers serve")
        eventually(lambda: get_status(status)["xml_curl_workers"]["answering"] == 2,
                   "both heartbeats seen")  # fmt: skip
        # the workers' answers reach the control plane's /metrics, under the in-process names
        eventually(lambda: metric(status, FOUND) >= 8, "the workers' requests counted")
        assert metric(status, FOUND_LATENCY) >= 8
        counted = metric(status, FOUND)

        pids = worker_pids(tmp_path)
        os.kill(pids[0], signal.SIGSTOP)
        eventually(lambda: metric(status, HANGS) == 1.0, "the hang counted")
        eventually(lambda: not alive(pids[0]), "the hung worker killed")
        eventually(lambda: len(set(worker_pids(tmp_path)) - {pids[0]}) == 2, "a replacement")
        assert metric(status, CRASHES) == 0.0
        assert get_status(status)["xml_curl_workers"]["hangs"] == 1
        assert all(lookup(port, "1001") for _ in range(8))
        assert metric(status, FOUND) >= counted, "a replaced worker's requests stay counted"
        pids = worker_pids(tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids or worker_pids(tmp_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        if proc.stderr:
            proc.stderr.close()

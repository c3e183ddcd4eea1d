"""A port already taken ends `pbx run` with one line naming the listener, the address and
the flag that moves it: exit code 1, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.test_daemon import free_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def pbx_run(tmp_path: Path, listen: int, portal: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    (tmp_path / "tenants.d").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{listen}"]
    command += ["--portal-listen", f"127.0.0.1:{portal}", "--freeswitch", "127.0.0.1:1:x"]
    command += ["--status-listen", f"127.0.0.1:{free_port()}"]
    command += ["--tenants", str(tmp_path / "tenants.d"), "--state-dir", str(tmp_path / "s")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_a_taken_xml_curl_port_is_one_line(tmp_path: Path, taken_port: int) -> None:
    done = pbx_run(tmp_path, taken_port, free_port())
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "cannot listen" in x]
    assert line.startswith("pbx run: xml_curl listener (--listen / PBX_LISTEN): ")
    assert f"cannot listen on 127.0.0.1:{taken_port}: " in line


def test_a_taken_portal_port_is_one_line(tmp_path: Path, taken_port: int) -> None:
    done = pbx_run(tmp_path, free_port(), taken_port)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "cannot listen" in x]
    assert line.startswith("pbx run: portal listener (--portal-listen / PBX_PORTAL_LISTEN): ")
    assert f"cannot listen on 127.0.0.1:{taken_port}: " in line

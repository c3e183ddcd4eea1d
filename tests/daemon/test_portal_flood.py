"""`pbx run` with 256 file descriptors (a unit without LimitNOFILE has 1,024) while another
process holds twice as many silent sockets on the portal: SIP lookups on xml_curl are all
answered and a full pass still succeeds (it opens files and database connections)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from tests.daemon.test_daemon import (
    free_port,
    get_status,
    sip_auth_form,
    tenants_dir,  # noqa: F401 - a fixture
    wait_first_pass,
)
from tests.serve.test_listener import SILENT_ATTACKER

FDS = 256

LOOKUPS = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
request = sys.stdin.buffer.read()
answered = 0
for _ in range(count):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        answered += reply.startswith(b"HTTP/1.1 200") and b'<user id="1001"' in reply
    except OSError:
        pass
print(answered)
"""


def few_descriptors() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, hard))


def lookups(port: int, count: int) -> int:
    body = urllib.parse.urlencode(sip_auth_form("acme.example.com", "1001")).encode()
    head = (
        "POST /freeswitch/xml HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", LOOKUPS, str(port), str(count)],
        input=head.encode() + body,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout)


def test_silent_portal_sockets_never_fail_a_lookup_or_a_pass(
    tmp_path: Path,
    tenants_dir: Path,  # noqa: F811 - the fixture
    pg_dsn: str,
) -> None:
    port, portal_port, status_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {"PBX_DATABASE_URL": pg_dsn, "PBX_FREESWITCH": "127.0.0.1:1:x", "PBX_INTERVAL": "3600"}
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{port}"]
    command += ["--portal-listen", f"127.0.0.1:{portal_port}", "--tenants", str(tenants_dir)]
    command += ["--state-dir", str(tmp_path / "state")]
    command += ["--status-listen", f"127.0.0.1:{status_port}"]  # the workers own --listen
    daemon = subprocess.Popen(
        command, env=env, preexec_fn=few_descriptors, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    attacker = None
    try:
        wait_first_pass(status_port)
        attacker = subprocess.Popen(
            [sys.executable, "-c", SILENT_ATTACKER, str(portal_port), str(2 * FDS)]
        )
        time.sleep(2.0)  # the attacker fills the portal's share
        assert lookups(port, 30) == 30
        daemon.send_signal(signal.SIGHUP)  # a full pass under the flood
        deadline = time.monotonic() + 30
        status = get_status(status_port)
        while time.monotonic() < deadline and "sighup" not in status["last_pass"]["trigger"]:
            time.sleep(0.2)
            status = get_status(status_port)
        assert "sighup" in status["last_pass"]["trigger"]
        assert status["last_pass"]["result"] == "ok", status["last_pass"]
        assert daemon.poll() is None
    finally:
        if attacker is not None:
            attacker.kill()
            attacker.wait()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        stderr = daemon.stderr.read().decode() if daemon.stderr else ""
    assert "Too many open files" not in stderr

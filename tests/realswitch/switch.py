"""A real FreeSWITCH node booted on the project's own rendered configuration.

Why here and not through ``reconciler``'s ESL client: the tier observes the switch as an
operator would (``fs_cli``, or a bare event-socket ``api`` command), so it checks the
product from outside and does not depend on how the product talks to the switch.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("/usr/local/freeswitch")
BUILD_HINT = "../shared/freeswitch/build/build.sh (see its README)"


def freeswitch_home() -> Path:
    return Path(os.environ.get("PBX_FREESWITCH_HOME", str(DEFAULT_HOME)))


def sipp_binary() -> str | None:
    return os.environ.get("PBX_SIPP") or shutil.which("sipp")


def missing_reason() -> str | None:
    """Why the tier cannot run here, or None when it can."""
    home = freeswitch_home()
    if not os.access(home / "bin" / "freeswitch", os.X_OK):
        return (
            f"no FreeSWITCH build at {home}: build it with {BUILD_HINT}, "
            "or point PBX_FREESWITCH_HOME at one"
        )
    if not os.access(home / "bin" / "fs_cli", os.X_OK):
        return f"no fs_cli in {home}/bin (incomplete FreeSWITCH build; rebuild: {BUILD_HINT})"
    sipp = sipp_binary()
    if sipp is None or not os.access(sipp, os.X_OK):
        return f"no sipp at {sipp or 'PATH'} (apt-get install sip-tester, or set PBX_SIPP)"
    if not sys.platform.startswith("linux"):
        return "the real-switch tier runs on Linux only"
    return None


def missing_module_reason(module: str) -> str | None:
    """Why a test needing one optional module of the build cannot run, or None.

    The shared build script leaves some modules out (mod_xml_cdr); `.ci/run` builds them
    from the build's own source tree when it is there.
    """
    if (reason := missing_reason()) is not None:
        return reason
    if not (freeswitch_home() / "lib" / "freeswitch" / "mod" / f"{module}.so").is_file():
        return (
            f"{module} is not in the FreeSWITCH build at {freeswitch_home()}: "
            "`.ci/run` builds it from /opt/fsbuild/freeswitch, or add it to the build's MODULES"
        )
    return None


@dataclass(frozen=True)
class Ports:
    """Every port the rendered node and the daemon listen on, all picked free."""

    tenant_sip: int
    carrier_sip: int
    esl: int
    rtp: tuple[int, int]
    xml_curl: int
    portal: int
    wss: int


class Esl:
    """One-shot ``api`` commands over a fresh event-socket connection each time."""

    def __init__(self, port: int, password: str) -> None:
        self.port = port
        self.password = password

    def api(self, command: str, *, timeout: float = 10.0) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            reader = sock.makefile("rb")
            _read_frame(reader)  # auth/request
            sock.sendall(f"auth {self.password}\n\n".encode())
            headers, _ = _read_frame(reader)
            if not headers.get("Reply-Text", "").startswith("+OK"):
                raise ConnectionError(f"ESL auth refused: {headers.get('Reply-Text')}")
            sock.sendall(f"api {command}\n\n".encode())
            while True:
                headers, body = _read_frame(reader)
                if headers.get("Content-Type") == "api/response":
                    return body

    def try_api(self, command: str) -> str:
        """``api`` that answers "" while the socket is not up yet (for polling)."""
        try:
            return self.api(command, timeout=5.0)
        except OSError:
            return ""

    def fs_cli(self, command: str) -> str:
        """The operator's way: ``fs_cli -x``."""
        done = subprocess.run(
            [
                str(freeswitch_home() / "bin" / "fs_cli"),
                "-H",
                "127.0.0.1",
                "-P",
                str(self.port),
                "-p",
                self.password,
                "-x",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout + done.stderr


def _read_frame(reader: object) -> tuple[dict[str, str], str]:
    headers: dict[str, str] = {}
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        if not line:
            raise ConnectionError("ESL closed the connection")
        text = line.decode().rstrip("\n")
        if not text:
            if headers:
                break
            continue
        name, _, value = text.partition(": ")
        headers[name] = value
    length = int(headers.get("Content-Length", "0"))
    body = reader.read(length).decode() if length else ""  # type: ignore[attr-defined]
    return headers, body


def freeswitch_command(node_dir: Path) -> list[str]:
    """Boot FreeSWITCH on ``node_dir/conf``, every writable directory under ``node_dir``,
    in the foreground (``-nf``) so the test owns the process."""
    command = [str(freeswitch_home() / "bin" / "freeswitch"), "-nf", "-nc", "-nonat"]
    folders = ("conf", "log", "db", "run", "storage", "cache", "recordings", "sounds", "temp")
    # certs: FreeSWITCH writes its DTLS-SRTP certificate there on first start.
    for flag in (*folders, "certs"):
        folder = node_dir / flag
        folder.mkdir(parents=True, exist_ok=True)
        command += [f"-{flag}", str(folder)]
    return command


def profiles_running(status: str) -> bool:
    """``sofia status`` lists both rendered profiles as RUNNING."""
    running = {
        line.split()[0]
        for line in status.splitlines()
        if "profile" in line and "RUNNING" in line and line.split()
    }
    return {"tenants", "carriers"} <= running

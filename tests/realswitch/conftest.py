"""One real node for the whole tier: ``pbx run`` (a process, a fresh database, tenant files
written here) and FreeSWITCH booted on ``freeswitch_conf/`` as ``pbx node-config`` renders
it, every listener on a free port.

xml_curl is answered as ``pbx run`` does by default: one worker process per core (/status
then on a port of its own); ``PBX_REALSWITCH_XML_CURL_WORKERS=N`` sets the count, and ``0``
runs the same tier with xml_curl answered in the daemon's own process.

Order matters: the daemon starts first, so FreeSWITCH's module loads (callcenter.conf over
xml_curl) find it up, as the systemd unit orders them in production.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.daemon.config import default_xml_curl_workers
from tests.conftest import fresh_database
from tests.realswitch.processes import (
    free_port,
    free_udp_range,
    running,
    spawn,
    stop,
    tail,
    wait_for,
)
from tests.realswitch.sipp import Sipp
from tests.realswitch.switch import (
    Esl,
    Ports,
    freeswitch_command,
    missing_reason,
    profiles_running,
)
from tests.selfsigned import CertFiles, self_signed

ACME = "acme.example.com"
GLOBEX = "globex.example.com"
ADMIN = "admin@acme.example.com"
XML_CURL_AUTH = "freeswitch:realswitch-xml-curl-Secret"
ESL_PASSWORD = "realswitch-esl-Secret"
# Short enough that a hand-made drift is repaired within the test's wait, long enough that
# passes do not crowd a loaded machine.
DRIFT_INTERVAL = "5"

# Each behaviour gets extensions of its own, so no test sees another's registrations.
TENANTS = {
    "acme.yaml": f"""\
id: acme
domain: {ACME}
name: Acme
extensions:
  - {{number: "1001", name: Registers}}
  - {{number: "1002", name: Caller}}
  - {{number: "1003", name: Callee}}
  - {{number: "1004", name: Queue agent phone}}
  - {{number: "1005", name: DID target}}
  - {{number: "1006", name: Drift agent phone}}
  - {{number: "1011", name: Browser registers}}
  - {{number: "1012", name: Browser caller}}
  - {{number: "1013", name: Browser callee}}
  - {{number: "1014", name: Browser agent}}
  - {{number: "1015", name: Desk phone for browsers}}
  - {{number: "1016", name: Desk phone calling browsers}}
  - {{number: "1020", name: History caller}}
  - {{number: "1021", name: History callee}}
  - number: "1007"
    name: Voicemail box
    call_timeout: 5
    voicemail: {{enabled: true, max_message_seconds: 60, greeting: "tenant:greetings/1007.wav"}}
  - {{number: "1008", name: Voicemail caller}}
  - {{number: "1030", name: Recorded agent phone}}
users:
  - {{email: {ADMIN}, name: Acme Admin, role: admin}}
agents:
  - {{name: alice, extension: "1004", initial_status: Available}}
  - {{name: dora, extension: "1006"}}
  - {{name: wendy, extension: "1014", initial_status: Available}}
  - {{name: rita, extension: "1030", initial_status: Available}}
queues:
  - name: support
    number: "7000"
    tiers:
      - {{agent: alice, level: 1, position: 1}}
  - name: backoffice
    number: "7001"
    tiers:
      - {{agent: dora, level: 1, position: 1}}
  - name: browsers
    number: "7002"
    tiers:
      - {{agent: wendy, level: 1, position: 1}}
  - name: recorded
    number: "7003"
    record_template: recorded/{{date}}/{{uuid}}.wav
    moh_sound: tenant:moh/hold.wav
    tiers:
      - {{agent: rita, level: 1, position: 1}}
inbound_numbers:
  - number: "+14155550100"
    destination: {{extension: "1005"}}
  - number: "+14155550101"
    destination: {{queue: support}}
  - number: "+14155550102"
    destination: {{queue: backoffice}}
""",
    "globex.yaml": f"""\
id: globex
domain: {GLOBEX}
name: Globex
extensions:
  - {{number: "2001", name: Other tenant}}
  - {{number: "2011", name: Other tenant's browser}}
""",
}


@dataclass
class Node:
    """The running node, as the tests see it."""

    ports: Ports
    esl: Esl
    workdir: Path
    env: dict[str, str]
    tenants_dir: Path
    fs_log: Path
    daemon_log: Path
    cert: CertFiles | None = None
    sipps: int = 0
    daemon_command: list[str] = field(default_factory=list)
    status_port: int = 0
    daemon: subprocess.Popen[bytes] | None = None
    _credentials: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def credentials(self, tenant: str, extension: str) -> dict[str, str]:
        """``pbx credentials show ... --output json``: what a phone would be provisioned with
        (asked once per extension: nothing in the tier rotates a password)."""
        key = (tenant, extension)
        if key not in self._credentials:
            self._credentials[key] = self._show_credentials(tenant, extension)
        return self._credentials[key]

    def _show_credentials(self, tenant: str, extension: str) -> dict[str, str]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "credentials",
                "show",
                tenant,
                extension,
                "--output",
                "json",
                "--tenants",
                str(self.tenants_dir),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def sipp(self, name: str, scenario: str, **kwargs: object) -> Sipp:
        """A sipp whose logs are numbered in start order (names repeat across tests)."""
        self.sipps += 1
        unique = f"{self.sipps:02d}-{name}"
        return Sipp(self.workdir / "sipp", unique, scenario, **kwargs)  # type: ignore[arg-type]

    @property
    def tenant_target(self) -> str:
        return f"127.0.0.1:{self.ports.tenant_sip}"

    @property
    def wss_url(self) -> str:
        """Where a browser phone connects: the tenants profile's WSS listener."""
        return f"wss://127.0.0.1:{self.ports.wss}"

    @property
    def carrier_target(self) -> str:
        return f"127.0.0.1:{self.ports.carrier_sip}"

    def start_daemon(self) -> None:
        """``pbx run`` (again), until its first pass is done."""
        self.daemon = spawn(
            self.daemon_command, log=self.daemon_log, env=self.env, cwd=self.workdir
        )
        wait_for(lambda: _first_pass_done(self.status_port), "the daemon's first pass",
                 timeout=60, detail=lambda: tail(self.daemon_log))  # fmt: skip

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            stop(self.daemon)
            self.daemon = None

    @property
    def cdr_err_dir(self) -> Path:
        """Where the node keeps the call records it could not post (mod_xml_cdr's
        err-log-dir, relative to its log directory as `pbx node-config` renders it)."""
        return self.workdir / "fs" / "log" / "xml_cdr"

    def logs(self) -> str:
        return f"--- FreeSWITCH log:\n{tail(self.fs_log)}\n--- daemon log:\n{tail(self.daemon_log)}"


def _silent_prompts(sounds: Path) -> None:
    """The prompts mod_voicemail's macros play (``lang/en/vm/sounds.xml``) and the digits
    say_en reads, as 0.2 s of 8 kHz silence: no sound package is installed on this machine,
    and a missing greeting makes mod_voicemail hang up before it records."""
    macros = Path(__file__).resolve().parents[2] / "freeswitch_conf/lang/en/vm/sounds.xml"
    names = set(re.findall(r'data="((?:voicemail|ivr)/[a-z_-]+[.]wav)"', macros.read_text()))
    names |= {f"digits/{d}.wav" for d in range(10)}
    for name in names:
        path = sounds / "en/us/callie" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\0\0" * 1600)


def _pick_ports() -> Ports:
    return Ports(
        tenant_sip=free_port(),
        carrier_sip=free_port(),
        esl=free_port(),
        rtp=free_udp_range(64),
        xml_curl=free_port(),
        portal=free_port(),
        wss=free_port(),
    )


def _render(ports: Ports, out: Path, cert: CertFiles, control_port: int) -> None:
    """The shipped renderer, as an operator runs it; the secrets travel in the environment,
    the WSS certificate (self-signed, made for this session) is installed by the renderer."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "node-config",
            "--reconciler-url",
            f"http://127.0.0.1:{ports.xml_curl}/freeswitch/xml",
            "--sip-ip",
            "127.0.0.1",
            "--tenant-sip-port",
            str(ports.tenant_sip),
            "--carrier-sip-port",
            str(ports.carrier_sip),
            "--carrier-cidr",
            "127.0.0.1",
            "--esl-port",
            str(ports.esl),
            "--rtp-ports",
            f"{ports.rtp[0]}-{ports.rtp[1]}",
            "--switchname",
            "realswitch",
            "--wss-port",
            str(ports.wss),
            "--wss-cert",
            str(cert.cert),
            "--wss-key",
            str(cert.key),
            # the control plane's listener: the xml_curl one, or /status's with workers
            "--cdr-url",
            f"http://127.0.0.1:{control_port}/freeswitch/cdr",
            "--voicemail-dir",
            str(out.parent.parent / "voicemail"),
            "--out",
            str(out),
        ],
        env={**os.environ, "PBX_XML_CURL_AUTH": XML_CURL_AUTH, "PBX_ESL_PASSWORD": ESL_PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"render failed: {done.stderr}"
    capture = os.environ.get("PBX_REALSWITCH_CDR_CAPTURE")
    if capture:  # also keep every posted record on disk: how tests/fakes/cdr was captured
        conf = out / "autoload_configs" / "xml_cdr.conf.xml"
        extra = f'<param name="log-dir" value="{capture}"/>\n    <param name="log-http-and-disk" value="true"/>\n  </settings>'
        conf.write_text(conf.read_text().replace("</settings>", extra))


XML_CURL_WORKERS = int(
    os.environ.get("PBX_REALSWITCH_XML_CURL_WORKERS") or default_xml_curl_workers()
)


def _daemon_command(
    ports: Ports, tenants_dir: Path, state_dir: Path, status_port: int, cdr_spool: Path
) -> list[str]:
    workers = ["--xml-curl-workers", str(XML_CURL_WORKERS)]
    workers += ["--status-listen", f"127.0.0.1:{status_port}"] if XML_CURL_WORKERS else []
    return [sys.executable, "-m", "reconciler", "run", *workers,
        "--listen", f"127.0.0.1:{ports.xml_curl}",
        "--portal-listen", f"127.0.0.1:{ports.portal}",
        "--tenants", str(tenants_dir),
        "--state-dir", str(state_dir),
        "--freeswitch", f"127.0.0.1:{ports.esl}:{ESL_PASSWORD}",
        "--xml-curl-auth", XML_CURL_AUTH,
        "--interval", DRIFT_INTERVAL,
        "--phone-wss", f"wss://127.0.0.1:{ports.wss}",  # the portal's browser phone
        "--cdr-spool-dir", str(cdr_spool),
    ]  # fmt: skip


def _hold_music(path: Path) -> None:
    """A tenant's own sound in git: one second of a 440 Hz tone, 8 kHz mono 16-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        tone = (int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000))
        out.writeframes(b"".join(sample.to_bytes(2, "little", signed=True) for sample in tone))


def _first_pass_done(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
            status = json.loads(response.read())
    except OSError:
        return False
    return bool(status.get("last_pass", {}).get("result") == "ok")


@pytest.fixture(scope="session")
def node(pg_server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("realswitch")
    (workdir / "sipp").mkdir()
    tenants_dir = workdir / "tenants.d"
    tenants_dir.mkdir()
    for name, text in TENANTS.items():
        (tenants_dir / name).write_text(text)
    _hold_music(tenants_dir / "acme" / "sounds" / "moh" / "hold.wav")
    _hold_music(tenants_dir / "acme" / "sounds" / "greetings" / "1007.wav")  # box 1007's
    ports = _pick_ports()
    cert = self_signed(workdir / "pki")
    status_port = free_port() if XML_CURL_WORKERS else ports.xml_curl
    _render(ports, workdir / "fs" / "conf", cert, status_port)
    _silent_prompts(workdir / "fs" / "sounds")
    with fresh_database(pg_server_dsn, prefix="pbx_realswitch") as dsn:
        env = {**os.environ, "PBX_DATABASE_URL": dsn, "PBX_LOG_FORMAT": "text"}
        # the switch and the daemon share these (the one-host shape), moved into the workdir
        env["PBX_RECORDINGS_DIR"] = str(workdir / "recordings")
        env["PBX_SOUNDS_DIR"] = str(workdir / "sounds")
        env["PBX_VOICEMAIL_DIR"] = str(workdir / "voicemail")  # the portal streams messages
        env.pop("PBX_FREESWITCH", None)
        # carrier gateways' passwords (test_gateways writes it, mode 0600)
        env["PBX_SECRETS_FILE"] = str(workdir / "secrets.yaml")
        node = Node(
            ports, Esl(ports.esl, ESL_PASSWORD), workdir, env, tenants_dir,
            fs_log=workdir / "fs" / "log" / "freeswitch.log",
            daemon_log=workdir / "daemon.log", cert=cert,
        )  # fmt: skip
        node.status_port = status_port
        node.daemon_command = _daemon_command(
            ports, tenants_dir, workdir / "state", node.status_port, node.cdr_err_dir
        )
        try:
            node.start_daemon()
            fs = freeswitch_command(workdir / "fs")
            with running(fs, log=workdir / "freeswitch.out", cwd=workdir / "fs"):
                wait_for(
                    lambda: profiles_running(node.esl.try_api("sofia status")),
                    "FreeSWITCH up with both SIP profiles RUNNING",
                    timeout=60,
                    detail=node.logs,
                )
                yield node
        finally:
            node.stop_daemon()

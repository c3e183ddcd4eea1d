"""sipp as the tier's phones and carrier: scenarios in ``scenarios/``, outcomes from the
message log (what was really on the wire), never from timings."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.realswitch.processes import free_port, port_taken, spawn, stop, wait_for
from tests.realswitch.switch import sipp_binary

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
_SEPARATOR = re.compile(r"^-{20,} .*$", re.MULTILINE)


@dataclass(frozen=True)
class SipMessage:
    received: bool
    first_line: str
    text: str

    @property
    def status(self) -> int | None:
        """The status code of a response, None for a request."""
        match = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        match = re.match(r"([A-Z]+) \S+ SIP/2\.0", self.first_line)
        return match.group(1) if match else None

    def header(self, name: str) -> str | None:
        for line in self.text.splitlines()[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def read_messages(path: Path) -> list[SipMessage]:
    """Every message in a sipp ``-trace_msg`` log, in order."""
    if not path.exists():
        return []
    messages: list[SipMessage] = []
    for block in _SEPARATOR.split(path.read_text(errors="replace")):
        lines = block.strip("\n").splitlines()
        if not lines or "message" not in lines[0]:
            continue
        received = "received" in lines[0]
        body = "\n".join(lines[1:]).strip("\n")
        if body:
            messages.append(SipMessage(received, body.splitlines()[0].strip(), body))
    return messages


class Sipp:
    """One sipp process: a scenario file, its own ports, its message log."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        scenario: str,
        *,
        target: str | None,
        variables: dict[str, str] | None = None,
        extra: Sequence[str] = (),
        local_ip: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()  # a fixed one: a carrier a gateway points at
        self.messages_path = workdir / f"{name}.msg.log"
        self.errors_path = workdir / f"{name}.err.log"
        self.log = workdir / f"{name}.out.log"
        command = [
            str(sipp_binary()), "-sf", str(SCENARIOS / scenario),
            "-i", local_ip, "-p", str(self.port),
            # no -cp: given one port, sipp fails when anything took it since it was found
            # free (seen in CI); left alone it tries 8888 and the 59 ports above it
            "-mp", str(free_port()),
            "-m", "1", "-nostdin", "-aa",
            "-timeout", "60s", "-timeout_error",
            "-trace_msg", "-message_file", str(self.messages_path),
            "-trace_err", "-error_file", str(self.errors_path),
        ]  # fmt: skip
        for key, value in (variables or {}).items():
            command += ["-set", key, value]
        command += list(extra)
        if target is not None:
            command.append(target)
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        self.proc = spawn(self.command, log=self.log, cwd=self.log.parent)
        return self

    def wait_listening(self) -> Sipp:
        """Block until this sipp holds its SIP port (a phone must be up before it is called)."""
        wait_for(
            lambda: self.proc is not None and self.proc.poll() is None and port_taken(self.port),
            f"{self.name} listening on {self.port}",
            detail=self.describe,
        )
        return self

    def wait(self, timeout: float = 75.0) -> int:
        """Wait for the scenario to end (sipp's own -timeout bounds it); its exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            stop(self.proc)

    def run(self) -> int:
        return self.start().wait()

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc, grace=2.0)

    @property
    def messages(self) -> list[SipMessage]:
        return read_messages(self.messages_path)

    def received(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.received and m.method == method]

    def final_status(self, method: str) -> int | None:
        """The last final (>= 200) answer received to ``method`` (by CSeq)."""
        finals = [
            m.status
            for m in self.messages
            if m.received
            and m.status is not None
            and m.status >= 200
            and (m.header("CSeq") or "").endswith(f" {method}")
        ]
        return finals[-1] if finals else None

    def describe(self) -> str:
        """The wire, for a failure message."""
        lines = [f"{'<-' if m.received else '->'} {m.first_line}" for m in self.messages]
        errors = self.errors_path.read_text(errors="replace") if self.errors_path.exists() else ""
        return (
            f"{self.name}: " + "; ".join(lines) + (f" | errors: {errors[-600:]}" if errors else "")
        )

    def wait_for_invite(self, timeout: float = 30.0) -> SipMessage:
        """The first INVITE this sipp (a UAS) received."""
        found = wait_for(
            lambda: self.received("INVITE"),
            f"{self.name} receives an INVITE",
            timeout=timeout,
            detail=self.describe,
        )
        return found[0]  # type: ignore[index]

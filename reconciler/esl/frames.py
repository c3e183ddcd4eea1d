"""ESL framing, sans-IO: bytes in, frames out; and the text we put on the wire.

Every frame is a block of ``Name: value`` lines ended by a blank line, followed by
``Content-Length`` bytes of body when that header is present. An event's body is itself a
header block with url-encoded values (not fully encoded: ``Tue,%2024%20Nov``), optionally
followed by its own ``Content-Length`` body (``BACKGROUND_JOB`` results).

Nothing here touches a socket or an event loop, so the framing is tested byte by byte against
the transcripts. The outgoing side is here too:
:func:`build_event_command` (CUSTOM last), :func:`format_command` and :func:`check_line`
(no frame injection).
Neighbours: :mod:`.router` turns these frames into replies and events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import unquote

from reconciler.esl.errors import EslProtocolError

__all__ = [
    "EslEvent",
    "EslFrame",
    "EslFrameParser",
    "build_event_command",
    "check_line",
    "decode",
    "format_command",
    "parse_event_plain",
]

_MAX_HEADER_BLOCK: Final = 1 << 20  # a header block larger than this means we lost framing
_MAX_BODY: Final = 64 << 20
_EVENT_NAME_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class EslFrame:
    """One raw ESL frame: outer headers (not url-decoded) and the decoded body."""

    headers: Mapping[str, str]
    body: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")


@dataclass(frozen=True, slots=True)
class EslEvent:
    """A ``text/event-plain`` event: url-decoded headers plus its optional inner body."""

    headers: Mapping[str, str]
    body: str = ""

    @property
    def name(self) -> str:
        """``Event-Name``, or the ``Event-Subclass`` for CUSTOM events (``callcenter::info``)."""
        name = self.headers.get("Event-Name", "")
        if name == "CUSTOM":
            return self.headers.get("Event-Subclass", name)
        return name

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]


def decode(data: bytes) -> str:
    """Bytes from the switch as text; a stray invalid byte must not kill the reader."""
    return data.decode("utf-8", errors="replace")


def _parse_header_lines(block: bytes, *, url_decoded: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.split(b"\n"):
        line = decode(raw.rstrip(b"\r"))
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise EslProtocolError(f"malformed ESL header line: {line[:80]!r}")
        value = value.removeprefix(" ")
        headers[name.strip()] = unquote(value) if url_decoded else value
    return headers


def _content_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("Content-Length")
    if raw is None:
        return None
    try:
        length = int(raw.strip())
    except ValueError:
        raise EslProtocolError(f"bad Content-Length {raw!r}") from None
    if length < 0 or length > _MAX_BODY:
        raise EslProtocolError(f"unacceptable Content-Length {length}")
    return length


def parse_event_plain(body: bytes) -> EslEvent:
    """Decode a ``text/event-plain`` body: header lines, blank line, optional inner body."""
    head, sep, rest = body.partition(b"\n\n")
    headers = _parse_header_lines(head, url_decoded=True)
    inner = b""
    if sep:
        length = _content_length(headers)
        if length is not None:
            inner = rest[:length]
    return EslEvent(MappingProxyType(headers), decode(inner))


class EslFrameParser:
    """Incremental ESL frame parser: feed it bytes as they arrive, get whole frames back.

    Sans-IO so that the framing can be tested byte by byte and so that many pipelined replies
    arriving in one TCP segment cost one ``read()``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._headers: dict[str, str] | None = None
        self._need = 0

    def feed(self, data: bytes) -> list[tuple[dict[str, str], bytes]]:
        """Add ``data``; return every frame it completed as ``(headers, body_bytes)``."""
        self._buf += data
        frames: list[tuple[dict[str, str], bytes]] = []
        while True:
            if self._headers is None:
                end = self._buf.find(b"\n\n", self._pos)
                if end < 0:
                    if len(self._buf) - self._pos > _MAX_HEADER_BLOCK:
                        raise EslProtocolError("ESL header block too large: framing lost")
                    break
                block = bytes(self._buf[self._pos : end])
                self._pos = end + 2
                if not block.strip():
                    continue  # stray blank lines between frames carry nothing
                headers = _parse_header_lines(block, url_decoded=False)
                length = _content_length(headers)
                if not length:
                    frames.append((headers, b""))
                    continue
                self._headers, self._need = headers, length
            if len(self._buf) - self._pos < self._need:
                break
            body = bytes(self._buf[self._pos : self._pos + self._need])
            self._pos += self._need
            frames.append((self._headers, body))
            self._headers, self._need = None, 0
        if self._pos:
            # Compact once per feed(): cheap, and keeps the buffer from growing forever.
            del self._buf[: self._pos]
            self._pos = 0
        return frames


def build_event_command(names: Iterable[str]) -> str:
    """Build ``event plain ...`` with CUSTOM and its subclasses last.

    mod_event_socket treats every token after CUSTOM as a subclass name, so
    ``["callcenter::info", "BACKGROUND_JOB"]`` must become
    ``event plain BACKGROUND_JOB CUSTOM callcenter::info``. Tokens that look like event names
    (upper case, digits, underscores) are events; anything else is a CUSTOM subclass.
    """
    plain: list[str] = []
    subclasses: list[str] = []
    custom = False
    for name in names:
        for word in name.split():
            check_line(word, "event name")
            if word == "CUSTOM":
                custom = True
            elif _EVENT_NAME_RE.fullmatch(word):
                if word not in plain:
                    plain.append(word)
            elif word not in subclasses:
                subclasses.append(word)
    words = list(plain)
    if custom or subclasses:
        words += ["CUSTOM", *subclasses]
    if not words:
        raise ValueError("no event names given")
    return "event plain " + " ".join(words)


def format_command(command: str, headers: Mapping[str, str] | None = None) -> str:
    """One command frame: the command line, a ``Name: value`` line per header, a blank line."""
    check_line(command, "command")
    lines = [command]
    for name, value in (headers or {}).items():
        check_line(name, "header name")
        check_line(value, "header value")
        lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n\n"


def check_line(text: str, what: str) -> None:
    """Refuse CR/LF in anything we put on a command line: it would end the frame early and let
    the rest be read as a second command (``api status\\n\\nexit``)."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} cannot contain CR or LF (it would break ESL framing)")

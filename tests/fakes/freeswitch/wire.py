"""The Event Socket side of the fake: what a real FreeSWITCH 1.10.12 puts on the wire (banner,
replies, api responses, disconnect notices, events), byte for byte as the transcripts in
shared/freeswitch/transcripts/esl show, and one accepted socket with its subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

DISCONNECT_BODY = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
RUDE_REJECTION_BODY = "Access Denied, go away.\n"
BANNER = b"Content-Type: auth/request\n\n"
VERSION_LINE = (
    "FreeSWITCH (Version 1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit) is ready"
)


# switch_url_encode: these, control characters and non-ASCII bytes become %XX; the rest
# (letters, digits, ``,./-_~!$'()*``) is sent as is, hence ``Tue,%2024%20Nov``.
_URL_UNSAFE = frozenset(b'\r\n "#%&+:;<=>?@[\\]^`{|}')
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fs_url_encode(value: str) -> str:
    """Percent-encode like switch_url_encode (event header values, xml_curl POST fields)."""
    out = []
    for byte in value.encode("utf-8"):
        if byte < 0x20 or byte > 0x7E or byte in _URL_UNSAFE:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


@dataclass(eq=False)
class Listener:
    """One accepted ESL socket."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    authed: bool = False
    all_events: bool = False
    events: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)

    def wants(self, name: str, subclass: str | None) -> bool:
        if not self.authed:
            return False
        if self.all_events:
            return True
        if name == "CUSTOM":
            return "CUSTOM" in self.events and (not self.subclasses or subclass in self.subclasses)
        return name in self.events

    def write(self, data: bytes) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(data)


def reply_frame(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_response_frame(body: str) -> bytes:
    data = body.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def disconnect_notice() -> bytes:
    data = DISCONNECT_BODY.encode()
    return f"Content-Type: text/disconnect-notice\nContent-Length: {len(data)}\n\n".encode() + data


def serialize_event(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """A ``text/event-plain`` frame: url-encoded header lines, then an optional inner body."""
    payload = "".join(f"{name}: {fs_url_encode(value)}\n" for name, value in headers).encode()
    if body is not None:
        data = body.encode("utf-8")
        payload += f"Content-Length: {len(data)}\n\n".encode() + data
    else:
        payload += b"\n"
    head = f"Content-Length: {len(payload)}\nContent-Type: text/event-plain\n\n"
    return head.encode() + payload


ApiHandler = Callable[[str], "str | Awaitable[str]"]
QueuedEvent = tuple[str, str | None, list[tuple[str, str]], str | None]

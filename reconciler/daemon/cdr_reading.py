"""Reading journaled call-record posts into records: pure, and light to import, because it
runs in a process of its own (``CdrIntake``'s reader) so parsing never holds the GIL the
daemon's event loop needs to take the next post.

A journal payload is a kind byte (``FORM``: mod_xml_cdr's ``encode=true`` form, ``XML``: a
document as it came) and the post's body."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from urllib.parse import parse_qs, unquote

from reconciler.core.call_record import CallRecord
from reconciler.core.cdr import CdrError, read_cdr

FORM = b"f"
XML = b"x"
FORM_TYPE = "application/x-www-form-urlencoded"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def reader_started(parent: int, niceness: int) -> None:
    """A reader process's start: a lower priority, and SIGTERM when its parent dies (a
    SIGKILLed daemon runs no shutdown; its readers would otherwise wait forever on a queue
    they hold both ends of). Exits at once when the parent is already gone."""
    os.nice(niceness)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(0)


def read_payloads(payloads: list[bytes]) -> list[CallRecord | CdrError]:
    """Each journaled payload's record, or why it cannot be read."""
    return [_read(payload_document(payload)) for payload in payloads]


def payload_document(payload: bytes) -> str:
    """The XML document of one journal payload."""
    kind, body = payload[:1], payload[1:]
    return post_document(body, FORM_TYPE if kind == FORM else "text/xml")


def _read(text: str) -> CallRecord | CdrError:
    try:
        return read_cdr(text)
    except CdrError as exc:
        return exc


def post_document(body: bytes, content_type: str) -> str:
    """The XML of a post: the body itself (encode=textxml) or form field ``cdr`` (encode=true)."""
    if content_type == FORM_TYPE:
        if body.startswith(b"cdr=") and b"&" not in body:
            return form_value(body[4:])
        text = body.decode("utf-8", errors="replace")
        return parse_qs(text, max_num_fields=8).get("cdr", [""])[0]
    return body.decode("utf-8", errors="replace")


def form_value(value: bytes) -> str:
    """One url-encoded form value, decoded by C codecs: each ``%XX`` becomes a ``\\xXX``
    escape that ``unicode_escape`` turns into that byte, then the bytes are read as UTF-8.
    About ten times faster than ``parse_qs`` on a record (thousands of escapes, mod_xml_cdr
    encodes every ``<``, ``>``, space and quote). Only when the value holds no backslash of its
    own (mod_xml_cdr encodes them: ``%5C``) and every escape is well formed; else, and for
    bytes that are not UTF-8, ``unquote_plus`` as ``parse_qs`` would."""
    plus = value.replace(b"+", b" ")
    if b"\\" not in value:
        try:
            raw = plus.replace(b"%", b"\\x").decode("unicode_escape").encode("latin-1")
            return raw.decode("utf-8")
        except UnicodeError:
            pass
    return unquote(plus.decode("utf-8", errors="replace"), errors="replace")

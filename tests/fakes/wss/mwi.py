"""The message-summary NOTIFY a registered WSS contact gets from FreeSWITCH, replayed from
the real switch's frame: its headers as captured, only the addresses (the contact the phone
registered, its extension and domain), the Call-ID, the Via branch (each NOTIFY is a new
transaction) and the counts made this test's."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

CAPTURES = Path(__file__).with_name("captures")
_REQUEST_LINE = re.compile(r"^NOTIFY (\S+) SIP/2\.0$")
_ACCOUNT = re.compile(r"^Message-Account: sip:([^@\s]+)@([^\s;>]+)", re.MULTILINE)


def captured(name: str) -> str:
    """A captured frame, CRLF line ends as on the wire."""
    text = (CAPTURES / name).read_text()
    return text if "\r\n" in text else text.replace("\n", "\r\n")


def mwi_notify(contact: str, user: str, realm: str, fresh: int, saved: int) -> str:
    """The NOTIFY the switch sends ``contact`` (a registered ``sip:...;transport=ws`` URI)
    for box ``user@realm`` holding ``fresh`` new and ``saved`` saved messages."""
    frame = captured("mwi_notify_yes.txt" if fresh else "mwi_notify_no.txt")
    head, _, body = frame.partition("\r\n\r\n")
    first, *headers = head.split("\r\n")
    if not _REQUEST_LINE.match(first):
        raise ValueError(f"not a captured NOTIFY: {first}")
    account = _ACCOUNT.search(body)
    if account is None:
        raise ValueError("the captured NOTIFY names no Message-Account")
    aor = f"{account.group(1)}@{account.group(2)}"
    body = body.replace(aor, f"{user}@{realm}")
    body = re.sub(r"Voice-Message: \d+/\d+", f"Voice-Message: {fresh}/{saved}", body)
    body = re.sub(r"Messages-Waiting: \w+", f"Messages-Waiting: {'yes' if fresh else 'no'}", body)
    lines = [f"NOTIFY {contact} SIP/2.0"]
    for header in headers:
        name = header.partition(":")[0].strip().lower()
        if name == "call-id":
            header = f"Call-ID: {secrets.token_hex(8)}"
        elif name == "via":
            header = re.sub(r"branch=[^;\s]+", f"branch=z9hG4bK{secrets.token_hex(6)}", header)
        elif name == "content-length":
            header = f"Content-Length: {len(body.encode())}"
        lines.append(header.replace(aor, f"{user}@{realm}"))
    return "\r\n".join([*lines, "", body])

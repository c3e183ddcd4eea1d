"""The message-summary NOTIFYs a registered WSS contact gets from FreeSWITCH, replayed from
the real switch's frames: their headers as captured, only the addresses (the contact the
phone registered, its extension and domain), the Call-ID, the Via branch (each NOTIFY is a
new transaction) and the counts made this test's; and the 202 that accepts the phone's
SUBSCRIBE."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

CAPTURES = Path(__file__).with_name("captures")
_REQUEST_LINE = re.compile(r"^NOTIFY (\S+) SIP/2\.0$")
_ACCOUNT = re.compile(r"^Message-Account: sip:([^@\s]+)@([^\s;>]+)", re.MULTILINE)
# what the fake's own reply says itself (the transaction's addresses, the body's length)
_OWN = {"via", "from", "to", "call-id", "cseq", "contact", "content-length"}


def captured(name: str) -> str:
    """A captured frame (stored with LF line ends), CRLF as on the wire."""
    return (CAPTURES / name).read_text().replace("\r\n", "\n").replace("\n", "\r\n")


def mwi_notify(
    contact: str, user: str, realm: str, fresh: int, saved: int, *, query: bool = False
) -> str:
    """The NOTIFY the switch sends ``contact`` (a registered ``sip:...;transport=ws`` URI)
    for box ``user@realm`` holding ``fresh`` new and ``saved`` saved messages: on a change
    of the box, or with ``query`` as its answer to the phone's SUBSCRIBE (out of the
    subscription's dialog too; an empty box says no count, one with messages adds the
    urgent counts, ``(0/0)``)."""
    if query and not (fresh or saved):
        frame, counts = captured("mwi_notify_subscribed.txt"), ""
    elif query:
        frame, counts = captured("mwi_notify_subscribed_waiting.txt"), f"{fresh}/{saved} (0/0)"
    else:
        frame = captured("mwi_notify_yes.txt" if fresh else "mwi_notify_no.txt")
        counts = f"{fresh}/{saved}"
    head, _, body = frame.partition("\r\n\r\n")
    first, *headers = head.split("\r\n")
    if not _REQUEST_LINE.match(first):
        raise ValueError(f"not a captured NOTIFY: {first}")
    account = _ACCOUNT.search(body)
    if account is None:
        raise ValueError("the captured NOTIFY names no Message-Account")
    aor = f"{account.group(1)}@{account.group(2)}"
    body = body.replace(aor, f"{user}@{realm}")
    body = re.sub(r"Voice-Message: [^\r]*", f"Voice-Message: {counts}", body)
    yes_no = "yes" if fresh else "no"
    body = re.sub(r"Messages-Waiting: \w+", f"Messages-Waiting: {yes_no}", body)
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


def subscribe_accepted() -> list[tuple[str, str]]:
    """The headers of the switch's 202 to a message-summary SUBSCRIBE, beyond those a reply
    takes from its request (``Expires``, ``Subscription-State``, ``Allow-Events``...)."""
    head = captured("subscribe_202.txt").partition("\r\n\r\n")[0]
    pairs = [line.partition(":") for line in head.split("\r\n")[1:]]
    return [(n.strip(), v.strip()) for n, _, v in pairs if n.strip().lower() not in _OWN]

"""mod_voicemail's API, pure: the ``vm_list``/``vm_read``/``vm_delete`` commands (built only
from allow-listed shapes) and the messages ``vm_list`` answers.

``vm_list <box>@<domain>`` prints one line per message, ``:``-separated (``mod_voicemail.c``
``list_callback``, matched on a real 1.10.12 capture, ``tests/fakes/freeswitch/captures``):
``created_epoch:read_epoch:username:domain:folder:path:uuid:cid_name:cid_number:message_len``.
A caller name may hold ``:``, so the line is read from both ends: seven fields from the left
(the path is ours and holds none), two from the right. Portal changes go through these
commands, never through the files, so the module's database and the lamps stay right.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from reconciler.core.voicemail_box import VoicemailMessage
from specs_schema.shapes import DIGITS_PATTERN, DOMAIN_PATTERN

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DIGITS = re.compile(DIGITS_PATTERN)
_DOMAIN = re.compile(DOMAIN_PATTERN)


class UnsafeVoicemailArgument(ValueError):
    """A box, domain or message id that is not of its allow-listed shape."""


def _account(box: str, domain: str) -> str:
    if not _DIGITS.match(box) or not _DOMAIN.match(domain):
        raise UnsafeVoicemailArgument(f"not a voicemail box: {box!r}@{domain!r}")
    return f"{box}@{domain.lower()}"


def _message_id(uuid: str) -> str:
    if not _UUID.match(uuid):
        raise UnsafeVoicemailArgument(f"not a message id: {uuid!r}")
    return uuid


def list_command(box: str, domain: str) -> str:
    return f"vm_list {_account(box, domain)}"


def read_command(box: str, domain: str, uuid: str, *, heard: bool) -> str:
    """Mark a message heard (``read``: moved to saved, its lamp count drops) or new."""
    return f"vm_read {_account(box, domain)} {'read' if heard else 'unread'} {_message_id(uuid)}"


def delete_command(box: str, domain: str, uuid: str) -> str:
    return f"vm_delete {_account(box, domain)} {_message_id(uuid)}"


def parse_list(text: str, node: str = "") -> list[VoicemailMessage]:
    """The messages of a ``vm_list`` answer (from ``node``); a line of another shape is
    skipped (``-ERR can't find user or profile.``, a caller name holding a line break)."""
    messages = []
    for line in text.splitlines():
        message = _parse_line(line.strip(), node)
        if message is not None:
            messages.append(message)
    return messages


def _parse_line(line: str, node: str) -> VoicemailMessage | None:
    head = line.split(":", 7)
    if len(head) != 8:
        return None
    created, read, box, domain, folder, path, uuid, rest = head
    tail = rest.rsplit(":", 2)
    if len(tail) != 3:
        return None
    caller_name, caller_number, seconds = tail
    if not (created.isdigit() and read.isdigit() and seconds.isdigit() and _UUID.match(uuid)):
        return None
    return VoicemailMessage(
        uuid=uuid,
        box=box,
        domain=domain,
        folder=folder,
        created=datetime.fromtimestamp(int(created), UTC),
        heard=datetime.fromtimestamp(int(read), UTC) if int(read) else None,
        path=path,
        caller_name=caller_name,
        caller_number=caller_number,
        seconds=int(seconds),
        node=node,
    )

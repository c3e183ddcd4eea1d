"""mod_voicemail's API and events as FreeSWITCH 1.10.12 answers them (``fs.voicemail``).

``vm_list``, ``vm_read`` and ``vm_delete`` follow ``mod_voicemail.c`` line for line, and the
replies match the real switch's (``captures/vm_replies.json``, ``vm_list.txt``): the text
listing's ``:``-separated lines, ``-ERR no reply`` over ESL for an empty box, ``+OK`` for
every change, even of an id that does not exist or belongs to another box (the module's SQL
names the id alone), ``-ERR can't find user or profile.`` without a domain, with an unknown
profile or a ``vm_read`` that is neither read nor unread, and ``Usage: ...`` without an
argument. A change fires what ``update_mwi`` fires, as captured (``vm_events.txt``):
``MESSAGE_WAITING`` (``MWI-Voice-Message: new/saved``) then ``vm::maintenance``
(``mwi-update``). A new message fires ``vm::maintenance`` (``leave-message``) first: its
headers are read from the source, not captured.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid as uuids
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.freeswitch.switch import FakeFreeSwitch

LIST_USAGE = "Usage: <id>@<domain>[/profile] [xml]\n"
READ_USAGE = "Usage: <id>@<domain>[/profile] <read|unread> [<uuid>]\n"
DELETE_USAGE = "Usage: <id>@<domain>[/profile] [<uuid>]\n"
NOT_FOUND = "-ERR can't find user or profile.\n"
PROFILES = ("default",)


@dataclass
class FakeMessage:
    uuid: str
    box: str
    domain: str
    path: str
    caller_name: str
    caller_number: str
    seconds: int
    created: int
    read: int = 0
    folder: str = "inbox"

    def line(self) -> str:
        return (
            f"{self.created}:{self.read}:{self.box}:{self.domain}:{self.folder}:{self.path}:"
            f"{self.uuid}:{self.caller_name}:{self.caller_number}:{self.seconds}\n"
        )


def _split(arg: str) -> tuple[str, str | None, str | None, str]:
    """``id@domain[/profile] rest`` as the module cuts it: (id, domain, profile, rest)."""
    account, _, rest = arg.partition(" ")
    box, at, domain_profile = account.partition("@")
    if not at:
        return box, None, None, rest
    domain, slash, profile = domain_profile.partition("/")
    return box, domain, (profile if slash else "default"), rest


class FakeVoicemail:
    """Messages by id, as mod_voicemail's ``voicemail_msgs`` table holds them."""

    def __init__(self, fs: FakeFreeSwitch) -> None:
        self.fs = fs
        self.messages: dict[str, FakeMessage] = {}

    def leave(
        self,
        box: str,
        domain: str,
        path: str,
        *,
        caller_name: str = "Caller",
        caller_number: str = "1000",
        seconds: int = 6,
        created: int | None = None,
    ) -> FakeMessage:
        """A caller left a message (the file at ``path`` is the test's to write)."""
        message = FakeMessage(
            uuid=str(uuids.uuid4()),
            box=box,
            domain=domain,
            path=path,
            caller_name=caller_name,
            caller_number=caller_number,
            seconds=seconds,
            created=int(time.time()) if created is None else created,
        )
        self.messages[message.uuid] = message
        self.fs.emit_event(
            "CUSTOM",
            [
                ("VM-Action", "leave-message"),
                ("VM-User", box),
                ("VM-Domain", domain),
                ("VM-Caller-ID-Name", caller_name),
                ("VM-Caller-ID-Number", caller_number),
                ("VM-File-Path", path),
                ("VM-Flags", ""),
                ("VM-Folder", "inbox"),
                ("VM-UUID", message.uuid),
                ("VM-Message-Len", str(seconds)),
                ("VM-Timestamp", str(message.created)),
            ],
            subclass="vm::maintenance",
        )
        self._update_mwi(box, domain, "NEW")
        return message

    def box(self, box: str, domain: str) -> list[FakeMessage]:
        return [m for m in self.messages.values() if (m.box, m.domain) == (box, domain)]

    # -- the api -----------------------------------------------------------------------------

    def vm_list(self, arg: str) -> str:
        if not arg:
            return LIST_USAGE
        box, domain, profile, rest = _split(arg)
        if domain is None or profile not in PROFILES:
            return NOT_FOUND
        return "".join(m.line() for m in self.box(box, domain)) if rest != "xml" else ""

    def vm_read(self, arg: str) -> str:
        if not arg:
            return READ_USAGE
        box, domain, profile, rest = _split(arg)
        how, _, message_id = rest.partition(" ")
        if domain is None or profile not in PROFILES or how.lower() not in ("read", "unread"):
            return NOT_FOUND
        now = int(time.time())
        for message in self._chosen(message_id, lambda m: m.domain == domain):
            message.read = now if how.lower() == "read" else 0
        self._update_mwi(box, domain, "READ")
        return "+OK\n"

    def vm_delete(self, arg: str) -> str:
        if not arg:
            return DELETE_USAGE
        box, domain, profile, message_id = _split(arg)
        if domain is None or profile not in PROFILES:
            return NOT_FOUND
        chosen = list(self._chosen(message_id, lambda m: (m.box, m.domain) == (box, domain)))
        for message in chosen:
            with contextlib.suppress(OSError):
                os.unlink(message.path)
            del self.messages[message.uuid]
        self._update_mwi(box, domain, "DELETE")
        return "+OK\n"

    def _chosen(
        self, message_id: str, whole_box: Callable[[FakeMessage], bool]
    ) -> Iterable[FakeMessage]:
        """By id alone, whatever box the command named (the module's SQL); else the box
        (``vm_read`` without an id takes the whole domain, as the module does)."""
        if message_id:
            found = self.messages.get(message_id)
            return [found] if found is not None else []
        return [m for m in self.messages.values() if whole_box(m)]

    def _update_mwi(self, box: str, domain: str, reason: str) -> None:
        listed = self.box(box, domain)
        new = sum(1 for m in listed if not m.read)
        saved = len(listed) - new
        self.fs.emit_event(
            "MESSAGE_WAITING",
            [
                ("MWI-Messages-Waiting", "yes" if new else "no"),
                ("Update-Reason", reason),
                ("MWI-Message-Account", f"{box}@{domain}"),
                ("MWI-Voice-Message", f"{new}/{saved}"),
            ],
            calling=("mod_voicemail.c", "update_mwi", 1930),
        )
        self.fs.emit_event(
            "CUSTOM",
            [
                ("VM-Action", "mwi-update"),
                ("VM-User", box),
                ("VM-Domain", domain),
                ("VM-Total-New", str(new)),
                ("VM-Total-Saved", str(saved)),
                ("VM-Total-New-Urgent", "0"),
                ("VM-Total-Saved-Urgent", "0"),
            ],
            subclass="vm::maintenance",
            calling=("mod_voicemail.c", "update_mwi", 1955),
        )

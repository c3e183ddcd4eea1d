"""What a recording's path says about its call: the one naming rule the dialplan writes
and the portal reads back, and the note of who answered a queue call.

No database row: the file name is the record. Two layouts live under
``<recordings root>/<tenant id>/``:

* a queue's ``record_template`` (``support/{date}/{uuid}.wav``): read back by turning the
  template into a pattern (``{date}`` a date, ``{uuid}`` the caller's channel uuid, ...).
  Who answered cannot be in the name (FreeSWITCH 1.10.12 expands the template before it
  sets ``cc_agent``): each daemon writes a note named
  ``.answered/<caller's channel uuid>.<agent>`` (its content, ``{"agent", "queue"}`` as
  JSON, is for people: the name alone is read, one directory listing for a whole tenant),
  when mod_callcenter reports ``bridge-agent-start``; a template without ``{uuid}`` cannot be
  matched to its note, so only admins see those recordings.
* an extension's own recording (``record: inbound|outbound|all``):
  ``extensions/<number>/<YYYY-MM-DD>/<call uuid>.<in|out>.wav``, where ``in`` is a call the
  extension answered and ``out`` one it made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from specs_schema.shapes import RECORD_PLACEHOLDERS

EXTENSIONS_DIR = "extensions"
DIRECTIONS = {"inbound": "in", "outbound": "out"}
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_UUID = r"[0-9a-fA-F-]{8,64}"
ANSWERED_DIR = ".answered"
_EXTENSION = re.compile(
    rf"^{EXTENSIONS_DIR}/(?P<extension>[0-9]{{1,15}})/(?P<date>{_DATE})/"
    rf"(?P<uuid>{_UUID})\.(?P<direction>in|out)\.wav$"
)


def extension_recording(number: str, direction: str) -> str:
    """The path (below the tenant's recordings) the dialplan records a call of extension
    ``number`` to, with FreeSWITCH's own date and call uuid: only fixed expansions and a
    number of digits, nothing a caller chooses."""
    if not number.isdigit() or direction not in DIRECTIONS:
        raise ValueError(f"not an extension recording: {number!r} {direction!r}")
    date = RECORD_PLACEHOLDERS["{date}"]
    uuid = RECORD_PLACEHOLDERS["{uuid}"]
    return f"{EXTENSIONS_DIR}/{number}/{date}/{uuid}.{DIRECTIONS[direction]}.wav"


@dataclass(frozen=True, slots=True)
class RecordingName:
    """What the path of one recording tells."""

    path: str
    queue: str | None = None
    agent: str | None = None  # the agent's name (without @domain)
    extension: str | None = None
    direction: str | None = None  # in | out, extension recordings only
    date: str | None = None
    uuid: str | None = None


def template_pattern(template: str, queue_fs_name: str, domain: str) -> re.Pattern[str]:
    """The pattern of the paths ``template`` produces (each placeholder captured once)."""
    parts: list[str] = []
    seen: set[str] = set()
    for piece in re.split(r"(\{(?:uuid|date|time|queue)\})", template):
        name = piece[1:-1] if piece.startswith("{") and piece.endswith("}") else None
        if name is None:
            parts.append(re.escape(piece))
            continue
        body = {
            "uuid": _UUID,
            "date": _DATE,
            "time": "[0-9]{6}",
            "queue": re.escape(queue_fs_name),
        }[name]
        parts.append(f"(?P<{name}>{body})" if name not in seen else f"(?:{body})")
        seen.add(name)
    return re.compile("^" + "".join(parts) + "$")


class RecordingNames:
    """Reads paths back for one tenant: its queues' templates, then the extension layout."""

    def __init__(self, templates: Mapping[str, str], domain: str) -> None:
        """``templates``: queue name -> record template, of the queues that record."""
        self._queues = [
            (queue, template_pattern(template, f"{queue}@{domain}", domain))
            for queue, template in sorted(templates.items())
        ]

    def read(self, path: str, answered: Mapping[str, str] | None = None) -> RecordingName | None:
        """What ``path`` says, or None when no layout of this tenant produces it;
        ``answered`` maps a caller's channel uuid to the agent who answered (the notes)."""
        found = _EXTENSION.match(path)
        if found is not None:
            return RecordingName(path, **found.groupdict())
        for queue, pattern in self._queues:
            match = pattern.match(path)
            if match is not None:
                fields = match.groupdict()
                uuid = fields.get("uuid")
                return RecordingName(
                    path,
                    queue=queue,
                    agent=(answered or {}).get(uuid or ""),
                    date=fields.get("date"),
                    uuid=fields.get("uuid"),
                )
        return None

    def read_all(
        self, paths: Iterable[str], answered: Mapping[str, str] | None = None
    ) -> list[RecordingName]:
        return [name for path in paths if (name := self.read(path, answered)) is not None]


def answered_note(agent: str, queue: str) -> dict[str, str]:
    """The note's content, from a ``bridge-agent-start``'s ``CC-Agent`` and ``CC-Queue``
    (``name@domain`` each): the names only, checked, or ``{}`` when not ours."""
    agent_name, _, _ = agent.partition("@")
    queue_name, _, _ = queue.partition("@")
    slug = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
    if slug.match(agent_name) is None or slug.match(queue_name) is None:
        return {}
    return {"agent": agent_name, "queue": queue_name}


def note_name(uuid: str, agent: str) -> str:
    return f"{uuid}.{agent}"


def read_note_name(name: str) -> tuple[str, str] | None:
    """``(uuid, agent)`` of a note's file name, or None for anything else."""
    uuid, dot, agent = name.rpartition(".")
    if not dot or not is_call_uuid(uuid) or re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", agent) is None:
        return None
    return uuid, agent


def is_call_uuid(text: str) -> bool:
    """A channel uuid as FreeSWITCH writes it: safe as a file name."""
    return re.fullmatch(_UUID, text) is not None

"""Which tenant strings may reach FreeSWITCH: the second wall behind spec validation.

A tenant file is hostile input, and FreeSWITCH interprets what we serve: it expands ``${...}``
in channel variables and dialplan data at run time (``${system(...)}`` runs a command) and
``$${...}`` while it parses a fetched document. Spec validation refuses such values; this
module refuses them again where the snapshot is built, so a gap in validation, an old row in
the database or a hand-edited table still cannot put one on the wire. A record holding a
violation is left out of the snapshot (fail closed) and reported as a problem, never "fixed".

XML metacharacters are not this module's concern: the templates autoescape every value.

* text (caller id names): any printable Unicode, but no ``$``, ``{``, ``}``, and no control
  or XML-illegal character.
* token (numbers, domains, queue and agent names, sounds): text rules, and no blanks, quotes,
  backslash or ``|``, because these also travel as ``callcenter_config`` arguments and in
  ``|``-separated listings.
* record templates: a token except for the placeholders of ``RECORD_PLACEHOLDERS``, which are
  rendered here into fixed channel variables: with the templates' own dial-string and
  ``callcenter_config`` call, the only ``${`` in anything served.

Neighbours: ``reconciler.serve.snapshot`` calls these while building; nothing else should.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

# $ { }: FreeSWITCH variable expansion. C0/C1 controls and DEL; lone surrogates and
# U+FFFE/U+FFFF, which XML 1.0 forbids (FreeSWITCH would drop the whole document).
_TEXT_FORBIDDEN = re.compile("[${}\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_TOKEN_FORBIDDEN = re.compile(r"[\s'\"\\|`]")

RECORD_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "{uuid}": "${uuid}",
        "{date}": "${strftime(%Y-%m-%d)}",
        "{time}": "${strftime(%H%M%S)}",
    }
)
"""What a record template may ask FreeSWITCH to fill in; ``{queue}`` becomes the queue's
FreeSWITCH name. Nothing the caller controls (caller id) is offered: it would become part of
a file path."""
QUEUE_PLACEHOLDER = "{queue}"
_PLACEHOLDER = re.compile(r"\{[a-z]+\}")


def text_problem(value: str) -> str | None:
    """Why ``value`` may not be served as text, or None."""
    match = _TEXT_FORBIDDEN.search(value)
    if match is None:
        return None
    char = match[0]
    if char in "${}":
        return f"holds {char!r}, which FreeSWITCH expands"
    return f"holds the control or non-XML character {char!r}"


def token_problem(value: str) -> str | None:
    """Why ``value`` may not be served as a token (a name, number or path), or None."""
    if not value:
        return "is empty"
    problem = text_problem(value)
    if problem is not None:
        return problem
    match = _TOKEN_FORBIDDEN.search(value)
    if match is not None:
        return f"holds {match[0]!r}, which splits or quotes FreeSWITCH arguments"
    return None


def render_record_template(template: str, queue_name: str) -> str:
    """``template`` with its placeholders rendered; ``ValueError`` (saying why) when a
    literal part is not a token or a placeholder is unknown."""
    parts: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(_literal(template[position : match.start()]))
        placeholder = match[0]
        if placeholder == QUEUE_PLACEHOLDER:
            parts.append(queue_name)
        elif placeholder in RECORD_PLACEHOLDERS:
            parts.append(RECORD_PLACEHOLDERS[placeholder])
        else:
            raise ValueError(f"has the unknown placeholder {placeholder}")
        position = match.end()
    parts.append(_literal(template[position:]))
    rendered = "".join(parts)
    if not rendered:
        raise ValueError("is empty")
    return rendered


def _literal(part: str) -> str:
    problem = token_problem(part) if part else None
    if problem is not None:
        raise ValueError(problem)
    return part


def shown(value: object, limit: int = 40) -> str:
    """A value as a problem message may quote it: repr (control characters escaped), cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

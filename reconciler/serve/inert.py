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
* record templates: a token once the fixed expansions ``core.served.served_queue_params``
  rendered (``specs_schema.shapes.RECORD_PLACEHOLDERS``) are taken out: with the templates'
  own dial-string and ``callcenter_config`` call, the only ``${`` in anything served.

Neighbours: ``reconciler.serve.snapshot`` calls these while building; nothing else should.
"""

from __future__ import annotations

import re

# $ { }: FreeSWITCH variable expansion. C0/C1 controls and DEL; lone surrogates and
# U+FFFE/U+FFFF, which XML 1.0 forbids (FreeSWITCH would drop the whole document).
_TEXT_FORBIDDEN = re.compile("[${}\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_TOKEN_FORBIDDEN = re.compile(r"[\s'\"\\|`]")
# One C-level match per value for the common case (a clean value): the build checks some
# 400,000 strings at 100,000 extensions; the *_problem functions then say why only for the
# rare value that fails.
_CLEAN_TEXT = re.compile("[^${}\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]*")
_CLEAN_TOKEN = re.compile("[^${}\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\\s'\"\\\\|`]+")


def text_clean(value: str) -> bool:
    return _CLEAN_TEXT.fullmatch(value) is not None


def token_clean(value: str) -> bool:
    return _CLEAN_TOKEN.fullmatch(value) is not None


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


def shown(value: object, limit: int = 40) -> str:
    """A value as a problem message may quote it: repr (control characters escaped), cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

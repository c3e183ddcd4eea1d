"""FreeSWITCH's text conventions the fake's modules share: the blank/quote/backslash tokenizer
of ``switch_separate_string``, ``atoi`` and ``switch_true``, and mod_callcenter's ``|`` tables."""

from __future__ import annotations

import re
from collections.abc import Iterable

_TRUE_WORDS = frozenset({"yes", "on", "true", "t", "enabled", "active", "allow"})
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def _cleanup_token(token: str) -> str:
    """Second pass of switch_separate_string: drop quotes, resolve escapes, trim blanks."""
    pos = 0
    while pos < len(token) and token[pos] == " ":
        pos += 1
    out: list[str] = []
    end: int | None = None
    inside = False
    while pos < len(token):
        char = token[pos]
        escaped = False
        if char == "\\":
            nxt = token[pos + 1] if pos + 1 < len(token) else ""
            if nxt in ("'", '"', "\\") and nxt:
                out.append(nxt)
                escaped = True
            elif nxt in _UNESCAPE:
                out.append(_UNESCAPE[nxt])
                escaped = True
            if escaped:
                pos += 1
                end = len(out)
        if not escaped:
            if char == "'" and (inside or "'" in token[pos + 1 :]):
                inside = not inside
                if inside:
                    end = len(out)
            else:
                out.append(char)
                if char != " " or inside:
                    end = len(out)
        pos += 1
    return "".join(out[:end]) if end is not None else ""


def separate_blank(text: str, max_tokens: int = 8) -> list[str]:
    """Split like switch_separate_string(buf, ' ', argv, max_tokens).

    First pass: blanks outside single quotes separate tokens, a backslash shields the next
    character, runs of blanks collapse; once ``max_tokens`` is reached the last token keeps the
    rest of the line. Second pass: :func:`_cleanup_token` on each token.
    """
    starts: list[int] = []
    ends: list[int | None] = []
    pos, size = 0, len(text)
    state = "start"
    inside = False
    while pos < size:
        if state == "start":
            starts.append(pos)
            ends.append(None)
            state = "skip_initial"
            if len(starts) >= max_tokens:
                break  # the last slot keeps the rest of the line, blanks and all
        elif state == "skip_initial":
            if text[pos] == " ":
                pos += 1
            else:
                state = "find"
        elif state == "find":
            char = text[pos]
            if char == "\\":
                pos += 1
            elif char == "'":
                inside = not inside
            elif char == " " and not inside:
                ends[-1] = pos
                state = "skip_end"
            pos += 1
        else:  # skip_end
            if text[pos] == " ":
                pos += 1
            else:
                state = "start"
    return [
        _cleanup_token(text[s : e if e is not None else size])
        for s, e in zip(starts, ends, strict=True)
    ]


def atoi(value: str) -> int:
    match = re.match(r"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else 0


def switch_true(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE_WORDS:
        return True
    try:
        return int(text) != 0
    except ValueError:
        return False


def canonical(value: str, allowed: Iterable[str]) -> str | None:
    """The allowed spelling matching ``value`` case-insensitively (validation only)."""
    lowered = value.lower()
    return next((a for a in allowed if a.lower() == lowered), None)


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(columns: Iterable[str], rows: list[list[object]]) -> str:
    """mod_callcenter's list output: header + rows, ``|``-separated; nothing if no rows."""
    if not rows:
        return ""
    lines = ["|".join(columns)] + ["|".join(cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"

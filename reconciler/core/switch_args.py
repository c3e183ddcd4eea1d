"""How one argument is written for FreeSWITCH's blank-separated tokenizer: the one place.

Both writers of ``callcenter_config`` arguments quote through it: the ESL commands the
callcenter engine sends (``switch.callcenter.commands``, which also refuses unsafe values)
and the status the dialplan's feature codes set (``serve.xmlcurl``). Pure, so that the
serving side (which may import only the core) and the switch side share it.
"""

from __future__ import annotations


def quote_arg(value: str) -> str:
    """Quote one argument for FreeSWITCH's blank-separated tokenizer (``switch_separate_string``).

    That tokenizer (used by callcenter_config) splits on spaces outside single quotes, treats a
    backslash as escaping the next character while splitting, and afterwards removes the quotes
    and turns ``\\'``, ``\\"`` and ``\\\\`` back into the bare character. So: plain tokens are
    sent as they are, backslashes and single quotes are backslash-escaped, and a value with a
    blank (or an empty value) is wrapped in single quotes. CR/LF/NUL cannot be carried at all:
    they would end the ESL frame (or the C string) and are rejected.
    """
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"argument cannot contain CR, LF or NUL: {value!r}")
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    if not value or " " in value:
        return f"'{escaped}'"
    return escaped

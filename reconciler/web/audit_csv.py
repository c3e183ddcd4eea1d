"""The audit trail as CSV for a spreadsheet, safe to open: a cell a spreadsheet would read
as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return; an
actor, target or detail is partly typed by people) gets a leading ``'`` so it stays text
(OWASP's advice against CSV injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

COLUMNS = ("at", "actor", "tenant", "action", "target", "result", "client_addr", "detail")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def audit_csv(rows: Iterable[Mapping[str, object]]) -> str:
    """``rows`` (``views.audit_view``) with a header line, every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in COLUMNS])
    return out.getvalue()

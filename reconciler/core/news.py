"""Saying a standing problem once: a bad spec or a tenant that keeps failing shows up in
every pass, and a line per pass buries everything else in the log (and fills the disk).
``Newsroom`` remembers what was said and reports only what is new, changed or gone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Newsroom:
    said: dict[str, str] = field(default_factory=dict)

    def update(self, current: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
        """``current``: key -> message now. Returns (new or changed, keys no longer true)."""
        news = {k: v for k, v in current.items() if self.said.get(k) != v}
        gone = sorted(k for k in self.said if k not in current)
        self.said = dict(current)
        return news, gone

"""Search across tenants, extensions and users for super admins, without scanning 100,000
records per keystroke: one lowercase text per applied state, searched with ``str.find``.

The index is rebuilt when the daemon hands over a new applied state (compared by identity;
see ``PortalDeps.applied_state``).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from reconciler.core.model import State

MAX_RESULTS = 50


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # tenant | extension | user
    tenant_id: str
    key: str  # tenant id, extension number or email
    label: str


class SearchIndex:
    def __init__(self, state: State) -> None:
        self.state = state
        hits: list[Hit] = []
        texts: list[str] = []
        for tenant_id in sorted(state):
            ts = state[tenant_id]
            t = ts.tenant
            hits.append(Hit("tenant", tenant_id, tenant_id, f"{t.name} ({t.domain})"))
            texts.append(f"{tenant_id} {t.name} {t.domain}")
            for number, ext in ts.extensions.items():
                hits.append(Hit("extension", tenant_id, number, f"{number} {ext.name}"))
                texts.append(f"{number} {ext.name} {number}@{t.domain}")
            for email, user in ts.users.items():
                hits.append(Hit("user", tenant_id, email, f"{user.name} <{email}> ({user.role})"))
                texts.append(f"{email} {user.name}")
        self._hits = hits
        self._starts: list[int] = []
        position = 0
        for text in texts:
            self._starts.append(position)
            position += len(text) + 1
        self._text = "\n".join(texts).lower()

    def search(self, query: str, limit: int = MAX_RESULTS) -> list[Hit]:
        needle = " ".join(query.lower().split())
        if not needle:
            return []
        found: list[Hit] = []
        seen = -1
        at = self._text.find(needle)
        while at != -1 and len(found) < limit:
            index = bisect_right(self._starts, at) - 1
            if index != seen:
                found.append(self._hits[index])
                seen = index
            at = self._text.find(
                needle,
                self._starts[index + 1] if index + 1 < len(self._starts) else len(self._text),
            )
        return found


class Searcher:
    """Keeps one index for the current applied state."""

    def __init__(self) -> None:
        self._index: SearchIndex | None = None

    def index(self, state: State) -> SearchIndex:
        if self._index is None or self._index.state is not state:
            self._index = SearchIndex(state)
        return self._index

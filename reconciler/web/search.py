"""Search across tenants, extensions, people, agents, queues and inbound numbers (DIDs) for
super admins, without scanning 100,000
records per keystroke: one lowercase text per applied state, searched with ``str.find``.

The index is rebuilt when the daemon hands over a new applied state (compared by identity;
see ``PortalDeps.applied_state``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.core.model import State, TenantState

MAX_RESULTS = 50


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # tenant | extension | user | agent | queue | did
    tenant_id: str
    key: str  # tenant id, extension number, email, agent or queue name, DID number
    label: str


class SearchIndex:
    """Entries are kept as parallel lists of strings, not 200,000 ``Hit`` objects: strings
    are not tracked by the cyclic GC, whose full passes over that many objects stalled every
    page (a 20 ms tail); a ``Hit`` is made only for a result."""

    def __init__(self, state: State) -> None:
        self.state = state
        kinds: list[str] = []
        tenants: list[str] = []
        keys: list[str] = []
        labels: list[str] = []
        texts: list[str] = []

        def add(kind: str, tenant_id: str, key: str, label: str, text: str) -> None:
            kinds.append(kind)
            tenants.append(tenant_id)
            keys.append(key)
            labels.append(label)
            texts.append(text)

        for tenant_id in sorted(state):
            for entry in _entries(state[tenant_id]):
                add(*entry)
        self._kinds, self._tenants, self._keys, self._labels = kinds, tenants, keys, labels
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
                found.append(self._hit(index))
                seen = index
            at = self._text.find(
                needle,
                self._starts[index + 1] if index + 1 < len(self._starts) else len(self._text),
            )
        return found

    def _hit(self, index: int) -> Hit:
        return Hit(self._kinds[index], self._tenants[index], self._keys[index], self._labels[index])


def _entries(ts: TenantState) -> Iterator[tuple[str, str, str, str, str]]:
    """(kind, tenant, key, label, searched text) of everything of one tenant."""
    t, tid = ts.tenant, ts.tenant.id
    yield "tenant", tid, tid, f"{t.name} ({t.domain})", f"{tid} {t.name} {t.domain}"
    for number, ext in ts.extensions.items():
        yield (
            "extension",
            tid,
            number,
            f"{number} {ext.name}",
            f"{number} {ext.name} {number}@{t.domain}",
        )
    for email, user in ts.users.items():
        yield "user", tid, email, f"{user.name} <{email}> ({user.role})", f"{email} {user.name}"
    for name, agent in ts.agents.items():
        on = f" (ext. {agent.extension})" if agent.extension else ""
        yield "agent", tid, name, f"{name}{on}", f"{name} {agent.extension or ''}"
    for name, queue in ts.queues.items():
        yield "queue", tid, name, f"{name} ({queue.number})", f"{name} {queue.number}"
    for number, did in ts.inbound_numbers.items():
        label = f"{number} -> {did.destination_kind} {did.destination}"
        yield "did", tid, number, label, f"{number} {number.lstrip('+')}"


class Searcher:
    """Keeps one index for the current applied state."""

    def __init__(self) -> None:
        self._index: SearchIndex | None = None

    def index(self, state: State) -> SearchIndex:
        if self._index is None or self._index.state is not state:
            self._index = SearchIndex(state)
        return self._index

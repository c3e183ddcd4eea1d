"""Every tenant's summary row for super admins, rebuilt only when the daemon hands over a
new applied state or new sync facts (compared by identity, see ``PortalDeps``): at 1,000
tenants building the rows costs more than rendering a page of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.core.model import State
from reconciler.core.sync import SyncStatus
from reconciler.web.ports import TenantSync
from reconciler.web.views import View, tenant_rows

SEVERITY = {s.value: i for i, s in enumerate(SyncStatus)}


@dataclass(frozen=True)
class OverviewRows:
    by_id: list[View] = field(default_factory=list)
    worst_first: list[View] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class Overview:
    def __init__(self) -> None:
        self._sources: tuple[State, Mapping[str, TenantSync]] | None = None
        self._rows = OverviewRows()

    def rows(self, state: State, sync: Mapping[str, TenantSync]) -> OverviewRows:
        sources = self._sources
        if sources is None or sources[0] is not state or sources[1] is not sync:
            # super admins only: they see every tenant's spec errors
            by_id = tenant_rows(
                sorted(set(state) | set(sync)), state, sync, shows_errors=lambda _tenant: True
            )
            counts = {s.value: 0 for s in SyncStatus}
            for row in by_id:
                counts[row["sync"]] += 1
            worst = sorted(by_id, key=lambda r: (SEVERITY[r["sync"]], r["id"]))
            self._rows = OverviewRows(by_id, worst, counts)
            self._sources = (state, sync)
        return self._rows

"""The daemon as the portal sees it (``reconciler.web.PortalDeps``): the applied state and
per-tenant facts of the last pass, the switches' status, the presence cache, and three store
operations run in the portal's own threads and connections.

Everything handed out is a value that never changes afterwards: after each pass the daemon
calls ``follow`` with fresh mappings (the portal caches pages by their identity), so an
unchanged pass keeps the old objects and the portal's caches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from reconciler.core.model import State
from reconciler.core.presence import PresenceView
from reconciler.daemon.status import StatusBoard, gateways_status, tenant_syncs
from reconciler.daemon.switches import SwitchLink
from reconciler.reconcile import AppliedState, Reconciler
from reconciler.store import HistoryEntry, PostgresStore, SipCredentials
from reconciler.web import (
    NodeStatus,
    PortalConfig,
    PortalServer,
    StoreCalls,
    TenantSync,
    revoke_unentitled,
)
from reconciler.web.gateways import GATEWAYS
from reconciler.web.ports import VOICEMAIL, PortKey


class DaemonPortalDeps:
    def __init__(self, live: SwitchLink, dsn: Callable[[], str | None]) -> None:
        self._live = live
        self._dsn = dsn
        self._calls = StoreCalls(dsn)
        self._state: State = MappingProxyType({})
        self._admins: Mapping[str, str] = MappingProxyType({})
        self._sync: Mapping[str, TenantSync] = MappingProxyType({})

    def follow(self, applied: AppliedState, sync: Mapping[str, TenantSync]) -> None:
        """Take the state and tenant facts of a pass (``daemon.status.tenant_syncs``); a
        mapping is replaced only when its content changed."""
        if applied.state is not self._state:
            self._state = applied.state
        if dict(self._admins) != applied.platform_admins:
            self._admins = MappingProxyType(dict(applied.platform_admins))
        if sync != dict(self._sync):
            self._sync = MappingProxyType(dict(sync))

    # -- PortalDeps ----------------------------------------------------------------------------

    def applied_state(self) -> State:
        return self._state

    def platform_admins(self) -> Mapping[str, str]:
        return self._admins

    def tenant_sync(self) -> Mapping[str, TenantSync]:
        return self._sync

    def nodes(self) -> Sequence[NodeStatus]:
        return [_node_status(entry) for entry in self._live.status()]

    @property
    def presence(self) -> PresenceView:
        return self._live.presence

    def database_dsn(self) -> str | None:
        return self._dsn()

    async def history(self, tenant_id: str | None, limit: int) -> Sequence[HistoryEntry]:
        return await self._calls.history(tenant_id, limit)

    async def show_credentials(self, tenant_id: str, extension: str) -> SipCredentials:
        return await self._calls.show_credentials(tenant_id, extension)

    async def rotate_credentials(self, tenant_id: str, extension: str) -> None:
        await self._calls.rotate_credentials(tenant_id, extension)

    async def show_pin(self, tenant_id: str, extension: str) -> str:
        return await self._calls.show_pin(tenant_id, extension)

    async def rotate_pin(self, tenant_id: str, extension: str) -> None:
        await self._calls.rotate_pin(tenant_id, extension)

    async def close(self) -> None:
        await self._calls.close()


def _node_status(entry: Mapping[str, Any]) -> NodeStatus:
    last_sync = entry.get("last_sync")
    return NodeStatus(
        name=str(entry["node"]),
        connected=bool(entry.get("connected")),
        last_sync=datetime.fromisoformat(last_sync) if last_sync else None,
        drift_repairs=int(entry.get("drift_repaired", 0)),
        unmanaged=tuple(entry.get("unmanaged") or ()),
        errors=tuple(entry.get("errors") or ()),
    )


class DaemonGateways:
    """The gateways page's port: the same document as ``/status``'s ``gateways``."""

    def __init__(self, live: SwitchLink) -> None:
        self._live = live
        self.reconciler: Reconciler | None = None

    def gateways(self) -> Mapping[str, Any]:
        return gateways_status(self.reconciler, self._live.gateway_status())


class PortalLink:
    """The portal's listener and what the daemon owes it after passes; inert when the
    portal is switched off."""

    def __init__(
        self, config: PortalConfig | None, live: SwitchLink, dsn: Callable[[], str | None]
    ):
        self.deps = DaemonPortalDeps(live, dsn)
        self.gateways = DaemonGateways(live)
        ports: dict[PortKey[Any], object] = {VOICEMAIL: live.voicemail, GATEWAYS: self.gateways}
        self.server = PortalServer(self.deps, config, ports) if config is not None else None

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.deps.close()

    def follow(self, reconciler: Reconciler | None, status: StatusBoard) -> None:
        """After every pass attempt, on the event loop: the portal takes the new state."""
        if reconciler is not None:
            sync = tenant_syncs(
                reconciler.applied, reconciler.last_specs, status.reconciled_at, status.held
            )
            self.deps.follow(reconciler.applied, sync)
            self.gateways.reconciler = reconciler

    def revoke(self, store: PostgresStore | None, reconciler: Reconciler) -> None:
        """People git no longer declares lose their sessions, tokens and invitations (the
        pass's worker thread, under the store lock, after a leader pass that did not raise)."""
        if store is not None:
            applied = reconciler.applied
            revoke_unentitled(store.connection, applied.state, applied.platform_admins)

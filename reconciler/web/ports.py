"""What the portal needs from the rest of the daemon, and nothing more.

Narrow ports, one per kind of fact, so a feature names what it reads (``Feature.ports``).
The daemon implements ``PortalDeps`` (today's ports together) over what it already holds
(the applied state of the last pass, per-tenant status, node reports, the store, the live
presence cache); tests use ``tests/fakes/portal.py``. The portal never reads the YAML specs
and never talks to a switch except through ``PresenceView``: git stays the only place where
configuration changes.

Records here are frozen and carry raw facts; what they mean to a person (the sync status
colour, who may see them) is decided in the portal (``TenantSync.sync``, ``access``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from reconciler.core.model import State
from reconciler.core.presence import PresenceView
from reconciler.core.sync import TenantSync as TenantSync  # its home: the portal reads it
from reconciler.core.voicemail_box import (
    VoicemailBoxes,
    VoicemailMessage,
    VoicemailUnavailable,
)
from reconciler.store.credentials import SipCredentials
from reconciler.store.history import HistoryEntry

T = TypeVar("T")


class PortKey(Generic[T]):
    """Names one port, typed: ``port_of(request, KEY)`` is the port's type. A feature lists
    the keys it reads (``Feature.ports``); the app is given ``{KEY: implementation}``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"PortKey({self.name!r})"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One FreeSWITCH node as the daemon's live side reports it."""

    name: str  # HOST:PORT, as --freeswitch names it
    connected: bool
    last_sync: datetime | None = None
    drift_repairs: int = 0  # since the daemon started
    unmanaged: tuple[str, ...] = ()  # objects outside tenant domains, left alone
    errors: tuple[str, ...] = ()


class AppliedView(Protocol):
    """Who exists and what was applied: every feature reads it (access is decided on it)."""

    def applied_state(self) -> State:
        """The applied state of the last completed pass. The mapping handed out must never
        be mutated afterwards (hand over a new mapping after each pass): the portal reads
        it from the event loop and caches search indexes by its identity."""
        ...

    def platform_admins(self) -> Mapping[str, str]:
        """Applied super admins, ``{email (lowercase): name}`` (``pbx.platform_admins``)."""
        ...


class TenantSyncView(Protocol):
    def tenant_sync(self) -> Mapping[str, TenantSync]:
        """Per-tenant reconciliation facts, by tenant id (includes invalid and orphaned).
        Return the same mapping until a fact changes, then a new one (never mutate it): the
        overview of 1,000 tenants is cached by its identity and the state's."""
        ...


class NodesView(Protocol):
    def nodes(self) -> Sequence[NodeStatus]:
        """Every configured switch node, in configuration order."""
        ...


class ApplyHistory(Protocol):
    async def history(self, tenant_id: str | None, limit: int) -> Sequence[HistoryEntry]:
        """``store.read_history``: most recent first; every tenant when ``tenant_id`` is None."""
        ...


class CredentialStore(Protocol):
    async def show_credentials(self, tenant_id: str, extension: str) -> SipCredentials:
        """``store.show_credentials``; raises ``store.UnknownExtension``/``UnknownTenant``."""
        ...

    async def rotate_credentials(self, tenant_id: str, extension: str) -> None:
        """``store.rotate_credentials`` (the daemon follows its NOTIFY and re-serves)."""
        ...

    async def show_pin(self, tenant_id: str, extension: str) -> str:
        """``store.show_pin``: the voicemail PIN; raises like ``show_credentials``."""
        ...

    async def rotate_pin(self, tenant_id: str, extension: str) -> None:
        """``store.rotate_pin`` (re-served like a password rotation)."""
        ...


class PortalDeps(AppliedView, TenantSyncView, NodesView, ApplyHistory, CredentialStore, Protocol):
    """The daemon as today's features see it: the narrow ports above, the presence cache
    and the database. Reads are cheap and synchronous (in-memory); the store operations
    are coroutines (the daemon runs the synchronous store functions in a worker thread,
    never on the event loop).

    Do not grow it: a new feature declares its own port (a ``Protocol`` and its
    ``PortKey``, listed in ``Feature.ports``), the daemon hands an implementation to
    ``make_portal_app(ports={KEY: impl})`` and the feature's handlers read it with
    ``context.port_of(request, KEY)``."""

    @property
    def presence(self) -> PresenceView:
        """The live cache (registrations, agents, queue members) and agent status changes."""
        ...

    def database_dsn(self) -> str | None:
        """DSN for the portal's own tables (``pbx.portal_*``); None until the daemon has
        resolved its database (the portal answers 503 meanwhile)."""
        ...


APPLIED = PortKey[AppliedView]("applied state")
TENANT_SYNC = PortKey[TenantSyncView]("tenant sync")
NODES = PortKey[NodesView]("switch nodes")
HISTORY = PortKey[ApplyHistory]("apply history")
CREDENTIALS = PortKey[CredentialStore]("SIP credentials")
PRESENCE = PortKey[PresenceView]("presence")
VOICEMAIL = PortKey[VoicemailBoxes]("voicemail")


class NoVoicemail:
    """The voicemail port of a portal given no switches (tests of other features, a daemon
    without ``--freeswitch``): nothing changes, and every question says so."""

    version = 0

    async def changed(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        await asyncio.sleep(timeout)
        return 0

    async def messages(self, box: str, domain: str) -> Sequence[VoicemailMessage]:
        raise VoicemailUnavailable("no switch is configured")

    async def boxes_messages(self, boxes: Sequence[str], domain: str) -> Sequence[VoicemailMessage]:
        raise VoicemailUnavailable("no switch is configured")

    async def mark(self, message: VoicemailMessage, *, heard: bool) -> None:
        raise VoicemailUnavailable("no switch is configured")

    async def delete(self, message: VoicemailMessage) -> None:
        raise VoicemailUnavailable("no switch is configured")


def core_ports(deps: PortalDeps) -> dict[PortKey[Any], object]:
    """The ports ``deps`` provides, by key (what ``Feature.ports`` names)."""
    return {
        APPLIED: deps,
        TENANT_SYNC: deps,
        NODES: deps,
        HISTORY: deps,
        CREDENTIALS: deps,
        PRESENCE: deps.presence,
        VOICEMAIL: NoVoicemail(),  # the daemon passes its switches' (``make_portal_app``)
    }

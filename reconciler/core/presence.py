"""What the switches say is happening right now, as the portal shows it: registrations,
agents' runtime status and state, callers waiting in queues. Records only; the live side
(``reconciler.switch``, the presence engine) keeps them fresh from ESL events, the web side reads them.

These are runtime facts owned by phones, people and the switch, never by git: the
reconciler shows them and changes only an agent's status, on its owner's request.

Names are FreeSWITCH names (``name@domain``); ``node`` is the switch a fact came from (the
``--freeswitch`` host name). Times are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered contact of one extension on one node (``show registrations`` /
    ``sofia xmlstatus profile P reg`` / ``sofia::register`` events)."""

    node: str
    user: str  # the extension number
    domain: str
    contact: str  # as the phone sent it, e.g. '"" <sip:1001@192.0.2.7:5060;transport=UDP>'
    user_agent: str
    network_ip: str
    network_port: int
    expires_at: datetime | None
    status: str  # e.g. "Registered(UDP)"
    ping_status: str | None = None  # "Reachable" when sofia pings the contact


@dataclass(frozen=True, slots=True)
class AgentPresence:
    """An agent as one node's mod_callcenter holds it right now."""

    node: str
    name: str  # fs name, name@domain
    status: str  # Logged Out | Available | Available (On Demand) | On Break
    state: str  # Waiting | Receiving | In a queue call | Idle | Reserved
    calls_answered: int = 0
    last_status_change: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueMember:
    """A caller in a queue (``callcenter_config queue list members Q``)."""

    node: str
    queue: str  # fs name
    uuid: str  # the member uuid
    caller_number: str
    caller_name: str
    state: str  # Waiting | Trying | Answered | Abandoned
    joined_at: datetime | None
    serving_agent: str | None = None  # fs name when answered


@dataclass(frozen=True)
class DomainPresence:
    """Everything live about one tenant domain, merged over all nodes."""

    registrations: Sequence[Registration] = ()
    agents: Mapping[str, Sequence[AgentPresence]] = field(default_factory=dict)  # by fs name
    members: Mapping[str, Sequence[QueueMember]] = field(default_factory=dict)  # by queue
    nodes_connected: int = 0
    nodes_total: int = 0


@dataclass(frozen=True, slots=True)
class StatusResult:
    """What one node said to an agent status change."""

    node: str
    ok: bool
    error: str | None = None


class PresenceView(Protocol):
    """What the portal reads and asks of the live side. Reads come from a cache the daemon
    keeps fresh from ESL events (never one ESL round trip per request)."""

    def domain(self, domain: str) -> DomainPresence:
        """Live facts of one tenant domain (empty when nothing is known)."""
        ...

    @property
    def version(self) -> int:
        """Grows whenever any cached fact changes (server-sent events wait on it)."""
        ...

    async def changed(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        """Wait until ``version`` exceeds ``after`` (or the timeout); returns the version."""
        ...

    async def set_agent_status(self, agent: str, status: str) -> Sequence[StatusResult]:
        """Set an agent's status (exact mod_callcenter spelling) on every connected node."""
        ...

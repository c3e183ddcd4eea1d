"""In-memory stand-ins for what the daemon gives the portal (``reconciler.web.ports``): the
applied state, per-tenant sync facts, node reports, history, credentials, and a presence
cache whose agent status changes are recorded.

``demo_state()`` is the small platform every portal test and screenshot uses:

    acme     active     alice (admin, 1001), bob (agent, 1002 1003), carol (member, 1010),
                        dave (agent, 1004; also a member of globex)
    globex   active     gina (admin, 2001), dave (member, 2002)
    initech  suspended  ivan (admin, 3001)
    super admins: ops@pbx.example.net
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import State, TenantState
from reconciler.core.presence import (
    AgentPresence,
    DomainPresence,
    QueueMember,
    Registration,
    StatusResult,
)
from reconciler.store import SipCredentials, UnknownExtension
from reconciler.store.history import HistoryEntry
from reconciler.web.ports import NodeStatus, TenantSync
from specs_schema.models import TenantSpec

PASSWORD = "correct horse battery staple"
SUPER = "ops@pbx.example.net"


def _spec(
    tenant_id: str,
    domain: str,
    status: str,
    users: list[dict[str, Any]],
    extensions: list[str],
    agents: Sequence[tuple[str, str]] = (),
    queues: Sequence[dict[str, Any]] = (),
) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "id": tenant_id,
            "domain": domain,
            "name": f"{tenant_id.capitalize()} Corporation",
            "status": status,
            "users": users,
            "extensions": [{"number": n, "name": f"Desk {n}"} for n in extensions],
            "agents": [{"name": a, "extension": e} for a, e in agents],
            "queues": list(queues),
            "inbound_numbers": [],
        }
    )


def demo_state() -> dict[str, TenantState]:
    return {s.id: tenant_state_from_spec(s) for s in (_acme(), _globex(), _initech())}


def _acme() -> TenantSpec:
    return _spec(
        "acme",
        "acme.example.com",
        "active",
        [
            {
                "email": "alice@acme.example.com",
                "name": "Alice Smith",
                "role": "admin",
                "extensions": ["1001"],
            },
            {
                "email": "bob@acme.example.com",
                "name": "Bob Jones",
                "role": "agent",
                "extensions": ["1002", "1003"],
            },
            {
                "email": "carol@acme.example.com",
                "name": "Carol Díaz",
                "role": "member",
                "extensions": ["1010"],
            },
            {
                "email": "dave@example.org",
                "name": "Dave Multi",
                "role": "agent",
                "extensions": ["1004"],
            },
        ],
        ["1001", "1002", "1003", "1004", "1010"],
        agents=[("alice", "1001"), ("bob", "1002"), ("bob2", "1003"), ("dave", "1004")],
        queues=[
            {
                "name": "support",
                "number": "7000",
                "tiers": [{"agent": "alice"}, {"agent": "bob"}, {"agent": "dave"}],
            },
            {"name": "sales", "number": "7001", "tiers": [{"agent": "bob2"}]},
        ],
    )


def _globex() -> TenantSpec:
    return _spec(
        "globex",
        "globex.example.com",
        "active",
        [
            {
                "email": "gina@globex.example.com",
                "name": "Gina Globex",
                "role": "admin",
                "extensions": ["2001"],
            },
            {
                "email": "dave@example.org",
                "name": "Dave Multi",
                "role": "member",
                "extensions": ["2002"],
            },
        ],
        ["2001", "2002"],
        agents=[("gina", "2001")],
    )


def _initech() -> TenantSpec:
    return _spec(
        "initech",
        "initech.example.com",
        "suspended",
        [
            {
                "email": "ivan@initech.example.com",
                "name": "Ivan",
                "role": "admin",
                "extensions": ["3001"],
            }
        ],
        ["3001"],
    )


class FakePresence:
    """A ``PresenceView`` over dictionaries; tests and the browser thread change it."""

    def __init__(self, nodes: Sequence[str] = ("fs1",)) -> None:
        self.nodes = tuple(nodes)
        self._domains: dict[str, DomainPresence] = {}
        self._version = 0
        self.status_calls: list[tuple[str, str]] = []
        self.fail_nodes: set[str] = set()

    def domain(self, domain: str) -> DomainPresence:
        found = self._domains.get(domain)
        if found is None:
            return DomainPresence(nodes_connected=len(self.nodes), nodes_total=len(self.nodes))
        return found

    @property
    def version(self) -> int:
        return self._version

    async def changed(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        # polled, not an Event: browser tests change the fake from another thread
        deadline = time.monotonic() + timeout
        while self._version <= after and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return self._version

    async def set_agent_status(self, agent: str, status: str) -> Sequence[StatusResult]:
        self.status_calls.append((agent, status))
        domain = agent.split("@", 1)[1]
        current = self.domain(domain)
        agents = dict(current.agents)
        agents[agent] = [
            AgentPresence(
                node=n,
                name=agent,
                status=status,
                state="Waiting",
                last_status_change=datetime.now(UTC),
            )
            for n in self.nodes
            if n not in self.fail_nodes
        ]
        self._put(domain, replace(current, agents=agents))
        return [
            StatusResult(
                n,
                n not in self.fail_nodes,
                "-ERR agent not found" if n in self.fail_nodes else None,
            )
            for n in self.nodes
        ]

    # -- test helpers --------------------------------------------------------------------

    def _put(self, domain: str, presence: DomainPresence) -> None:
        self._domains[domain] = replace(
            presence, nodes_connected=len(self.nodes), nodes_total=len(self.nodes)
        )
        self._version += 1

    def register(
        self,
        domain: str,
        user: str,
        user_agent: str = "Yealink SIP-T46U 108.86",
        ip: str = "192.0.2.7",
    ) -> None:
        current = self.domain(domain)
        reg = Registration(
            node=self.nodes[0],
            user=user,
            domain=domain,
            contact=f'"" <sip:{user}@{ip}:5060;transport=UDP>',
            user_agent=user_agent,
            network_ip=ip,
            network_port=5060,
            expires_at=datetime.now(UTC) + timedelta(seconds=3600),
            status="Registered(UDP)",
        )
        self._put(domain, replace(current, registrations=(*current.registrations, reg)))

    def agent(self, domain: str, name: str, status: str, state: str = "Waiting") -> None:
        current = self.domain(domain)
        fs = f"{name}@{domain}"
        agents = dict(current.agents)
        agents[fs] = [
            AgentPresence(node=n, name=fs, status=status, state=state, calls_answered=3)
            for n in self.nodes
        ]
        self._put(domain, replace(current, agents=agents))

    def caller(self, domain: str, queue: str, number: str, name: str = "") -> None:
        current = self.domain(domain)
        fs = f"{queue}@{domain}"
        members = dict(current.members)
        members[fs] = [
            *members.get(fs, ()),
            QueueMember(
                node=self.nodes[0],
                queue=fs,
                uuid=secrets.token_hex(8),
                caller_number=number,
                caller_name=name,
                state="Waiting",
                joined_at=datetime.now(UTC),
            ),
        ]
        self._put(domain, replace(current, members=members))

    def set_members(self, domain: str, queue: str, members: Sequence[QueueMember]) -> None:
        """The queue's callers are now exactly ``members`` (answered, gone, ...)."""
        current = self.domain(domain)
        changed = dict(current.members)
        changed[f"{queue}@{domain}"] = tuple(members)
        self._put(domain, replace(current, members=changed))


@dataclass
class FakePortalDeps:
    """A ``PortalDeps``: everything in memory except the portal's own database."""

    dsn: str | None
    state: dict[str, TenantState] = field(default_factory=demo_state)
    admins: dict[str, str] = field(default_factory=lambda: {SUPER: "Platform Operator"})
    sync: dict[str, TenantSync] = field(default_factory=dict)
    node_list: list[NodeStatus] = field(default_factory=list)
    history_rows: list[HistoryEntry] = field(default_factory=list)
    passwords: dict[tuple[str, str], str] = field(default_factory=dict)
    presence_view: FakePresence = field(default_factory=FakePresence)
    rotations: list[tuple[str, str]] = field(default_factory=list)
    pins: dict[tuple[str, str], str] = field(default_factory=dict)
    pin_rotations: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for tenant_id, ts in self.state.items():
            self.sync.setdefault(
                tenant_id,
                TenantSync(
                    tenant_id=tenant_id,
                    lifecycle=ts.tenant.status,
                    spec_digest="d1",
                    applied_digest="d1",
                    applied_revision="4f2a9c1e0b7d",
                    attempted_revision="4f2a9c1e0b7d",
                    last_reconcile=datetime.now(UTC),
                    spec_file=f"tenants.d/{tenant_id}.yaml",
                ),
            )
            for number in ts.extensions:
                self.passwords.setdefault((tenant_id, number), secrets.token_urlsafe(24))
        if not self.node_list:
            self.node_list = [NodeStatus("fs1:8021", True, datetime.now(UTC), 2, ("1000@default",))]

    def applied_state(self) -> State:
        return self.state

    def platform_admins(self) -> Mapping[str, str]:
        return self.admins

    def tenant_sync(self) -> Mapping[str, TenantSync]:
        return self.sync

    def nodes(self) -> Sequence[NodeStatus]:
        return self.node_list

    @property
    def presence(self) -> FakePresence:
        return self.presence_view

    def database_dsn(self) -> str | None:
        return self.dsn

    async def history(self, tenant_id: str | None, limit: int) -> Sequence[HistoryEntry]:
        rows = [h for h in self.history_rows if tenant_id is None or h.tenant_id == tenant_id]
        return rows[:limit]

    async def show_credentials(self, tenant_id: str, extension: str) -> SipCredentials:
        password = self.passwords.get((tenant_id, extension))
        if password is None:
            raise UnknownExtension(tenant_id, extension)
        return SipCredentials(extension, self.state[tenant_id].tenant.domain, password)

    async def rotate_credentials(self, tenant_id: str, extension: str) -> None:
        if (tenant_id, extension) not in self.passwords:
            raise UnknownExtension(tenant_id, extension)
        self.passwords[tenant_id, extension] = secrets.token_urlsafe(24)
        self.rotations.append((tenant_id, extension))

    async def show_pin(self, tenant_id: str, extension: str) -> str:
        if (tenant_id, extension) not in self.passwords:
            raise UnknownExtension(tenant_id, extension)
        return self.pins.setdefault((tenant_id, extension), f"{secrets.randbelow(10**6):06d}")

    async def rotate_pin(self, tenant_id: str, extension: str) -> None:
        await self.show_pin(tenant_id, extension)
        self.pins[tenant_id, extension] = f"{secrets.randbelow(10**6):06d}"
        self.pin_rotations.append((tenant_id, extension))

    def replace_state(self, state: dict[str, TenantState]) -> None:
        """What the daemon does after a pass: a new mapping, never mutated in place."""
        self.state = state


def history_entry(
    tenant_id: str, n: int, result: str = "applied", error: str | None = None
) -> HistoryEntry:
    return HistoryEntry(
        n,
        tenant_id,
        datetime.now(UTC) - timedelta(minutes=n),
        f"{n:07x}abcdef",
        False,
        "pbx1",
        "apply",
        result,
        [{"kind": "extension"}] * n,
        error,
    )

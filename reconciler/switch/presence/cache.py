"""The live presence cache the portal reads: registrations, agents' status and state, and
callers in queues, per node, merged across nodes; it satisfies ``core.presence.PresenceView``.

Each node's ``PresenceEngine`` rides the EVENTS lane of the node's ``NodeSession`` (not the
COMMANDS lane the callcenter pushes use: see ``session`` for why), runs on every daemon
(``Runs.EVERY_DAEMON``: each serves its own portal), only reads a few listings, and takes
its events from the session's reader.

On every (re)connect: subscribe (``event plain CUSTOM sofia::register sofia::unregister
sofia::expire callcenter::info``, CUSTOM last), then read everything: registrations (see
``registrations``), ``agent list``, ``queue list members`` of every managed queue. Events
keep the facts fresh; events that arrive during a read are held and applied after it (so a
change the read missed is not lost, and one it saw is applied again, harmlessly). A full
re-read every ``heal_interval`` heals what events cannot tell (``agent del`` fires none),
and a ``members-count`` that disagrees with the members built from events re-reads that
queue. A read of the cache never touches the network. A node that disconnects has its facts
dropped at once: nothing is shown stale as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.core.presence import (
    AgentPresence,
    DomainPresence,
    PresenceView,
    QueueMember,
    Registration,
    StatusResult,
)
from reconciler.esl import EslClient, EslClientState, EslConnection, EslEvent, OpenStream
from reconciler.switch.api import Api, connection_api
from reconciler.switch.callcenter import commands as cmd
from reconciler.switch.callcenter.desired import DesiredLive
from reconciler.switch.callcenter.listings import parse_agent_presence, parse_member_list
from reconciler.switch.engine import Lane, Runs
from reconciler.switch.errors import (
    CallcenterError,
    NodeTimeout,
    NodeUnreachable,
    UnknownAgent,
    UnsafeArgument,
    translated,
)
from reconciler.switch.node_spec import NodeSpec
from reconciler.switch.presence.facts import NodeFacts
from reconciler.switch.presence.registrations import (
    SHOW_REGISTRATIONS,
    parse_core_registrations,
    parse_sofia_registrations,
    xmlstatus_command,
)
from reconciler.switch.reconnect import ReconnectPolicy
from reconciler.switch.session import NodeSession

log = logging.getLogger(__name__)

SUBSCRIPTIONS = (
    "CUSTOM",
    "sofia::register",
    "sofia::unregister",
    "sofia::expire",
    "callcenter::info",
)


@dataclass
class Managed:
    """What the reconciler declares, shared by every node's session: whose status may be
    set, and which queues' members are read."""

    agents: frozenset[str] = frozenset()
    queues: tuple[str, ...] = ()


async def read_registrations(api: Api, node: str) -> dict[str, Registration]:
    """The core table, then sofia's view of each profile it names (same Call-IDs)."""
    core = parse_core_registrations(await api(SHOW_REGISTRATIONS), node)
    now = datetime.now(UTC)
    sofia: dict[str, Registration] = {}
    for profile in sorted({profile for profile, _ in core.values()}):
        command = xmlstatus_command(profile)
        if command is not None:
            sofia.update(parse_sofia_registrations(await api(command), node, now))
    merged = {call_id: reg for call_id, (_, reg) in core.items()}
    merged.update(sofia)
    return merged


def _member_commands(queues: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for queue in queues:
        with contextlib.suppress(UnsafeArgument):  # never sent; the plan reports it
            out.append((queue, cmd.list_members(queue)))
    return out


class PresenceEngine:
    """One node's presence facts, kept by its events (see the module docstring)."""

    lane = Lane.EVENTS
    runs = Runs.EVERY_DAEMON
    subscriptions = SUBSCRIPTIONS

    def __init__(
        self,
        session: NodeSession,
        managed: Managed,
        facts: NodeFacts,
        *,
        heal_interval: float,
        api_timeout: float,
    ) -> None:
        self.session = session
        self.name = session.name
        self.facts = facts
        self._managed = managed
        self._heal_interval = heal_interval
        self._api_timeout = api_timeout
        self._held: list[EslEvent] | None = None
        self._stale: set[str] = set()
        self._full_read_due = False
        self._wake = asyncio.Event()
        self._client: EslClient | None = None
        self.on_answered: Callable[[Mapping[str, str]], None] | None = None
        """Told each ``bridge-agent-start`` at once (who answered a queue call: the note
        beside its recording, ``daemon/audio.py``)."""
        self.reads = 0
        session.add(self)

    @property
    def client(self) -> EslClient:
        return self._client or self.session.client(self.lane)

    def attach(self, client: EslClient) -> None:
        self._client = client

    @property
    def connected(self) -> bool:
        return self.client.state is EslClientState.CONNECTED

    def request_read(self) -> None:
        """Read everything again soon (the managed queues changed)."""
        self._full_read_due = True
        self._wake.set()

    async def set_status(self, command: str) -> StatusResult:
        if not self.connected:
            return StatusResult(self.name, ok=False, error="not connected")
        try:
            with translated(self.name):
                reply = (await self.client.api(command, timeout=self._api_timeout)).strip()
        except (NodeUnreachable, NodeTimeout) as exc:
            return StatusResult(self.name, ok=False, error=str(exc))
        ok = reply.startswith("+OK")
        return StatusResult(self.name, ok=ok, error=None if ok else reply or "(empty reply)")

    def on_event(self, event: EslEvent) -> None:
        if self.on_answered is not None and event.get("CC-Action") == "bridge-agent-start":
            self.on_answered(event.headers)
        if self._held is not None:
            self._held.append(event)
            return
        stale_queue = self.facts.apply(event)
        if stale_queue is not None and stale_queue in self._managed.queues:
            self._stale.add(stale_queue)
            self._wake.set()

    async def on_connect(self, conn: EslConnection) -> None:
        """Runs for the life of one connection: read, then keep healing until it closes."""
        api = connection_api(conn, self.name, self._api_timeout)
        full = True
        try:
            while not conn.closed:
                try:
                    await (self._read_all(api) if full else self._read_stale(api))
                except NodeUnreachable:
                    break
                except (NodeTimeout, CallcenterError) as exc:
                    log.warning(
                        "presence read failed",
                        extra={"fields": {"node": self.name, "error": str(exc)}},
                    )
                full = await self._idle(conn)
        finally:
            self._held = None
            self.facts.clear()

    async def _idle(self, conn: EslConnection) -> bool:
        """Wait for a heal, a wake-up or the end; True when a full read is due."""
        if not (self._stale or self._full_read_due):
            self._wake.clear()
            closed = asyncio.ensure_future(conn.wait_closed())
            woke = asyncio.ensure_future(self._wake.wait())
            done, pending = await asyncio.wait(
                {closed, woke}, timeout=self._heal_interval, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if not done:
                self._full_read_due = True
        full, self._full_read_due = self._full_read_due, False
        return full

    def _held_events(self) -> None:
        """Apply what arrived during a read, in order, once the read is installed."""
        held, self._held = self._held or [], None
        for event in held:
            self.on_event(event)

    async def _read_all(self, api: Api) -> None:
        self._held, self._stale = [], set()
        try:
            registrations = await read_registrations(api, self.name)
            queued = _member_commands(self._managed.queues)
            agents, *listed = await asyncio.gather(
                api(cmd.LIST_AGENTS), *(api(command) for _, command in queued)
            )
            members = {
                queue: parse_member_list(text)
                for (queue, _), text in zip(queued, listed, strict=True)
            }
            self.facts.replace_all(registrations, parse_agent_presence(agents), members)
            self.reads += 1
        finally:
            self._held_events()

    async def _read_stale(self, api: Api) -> None:
        queues, self._stale = sorted(self._stale), set()
        self._held = []
        try:
            queued = _member_commands(queues)
            listed = await asyncio.gather(*(api(command) for _, command in queued))
            for (queue, _), text in zip(queued, listed, strict=True):
                self.facts.replace_members(queue, parse_member_list(text))
        finally:
            self._held_events()


class PresenceCache:
    """Every node's facts, merged per domain; the ``PresenceView`` the portal reads.

    The daemon constructs it with the node sessions the callcenter engines ride too, ``start()``s it,
    calls ``set_managed(desired)`` whenever the applied state changes, and ``stop()``s it.
    ``domain()`` and ``version`` are plain reads of memory; ``changed()`` waits for the next
    change; ``set_agent_status()`` is the one write, to every connected node."""

    def __init__(
        self,
        nodes: Iterable[NodeSession | NodeSpec],
        *,
        heal_interval: float = 30.0,
        api_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect: ReconnectPolicy | None = None,
        connect: OpenStream | None = None,
    ) -> None:
        self._managed = Managed()
        self._version = 0
        self._changed = asyncio.Event()
        sessions = [
            n
            if isinstance(n, NodeSession)
            else NodeSession(
                n, reconnect=reconnect, connect=connect, connect_timeout=connect_timeout
            )
            for n in nodes
        ]
        self.nodes: tuple[PresenceEngine, ...] = tuple(
            PresenceEngine(
                session,
                self._managed,
                NodeFacts(session.name, self._bump),
                heal_interval=heal_interval,
                api_timeout=api_timeout,
            )
            for session in sessions
        )

    async def start(self) -> None:
        """Start every node's session (idempotent: the daemon shares them)."""
        for node in self.nodes:
            await node.session.start()

    async def stop(self) -> None:
        await asyncio.gather(*(n.session.stop() for n in self.nodes), return_exceptions=True)

    async def __aenter__(self) -> PresenceCache:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def on_answered(self, callback: Callable[[Mapping[str, str]], None]) -> None:
        """``callback`` hears every node's ``bridge-agent-start`` (on the event loop)."""
        for node in self.nodes:
            node.on_answered = callback

    def set_managed(self, desired: DesiredLive) -> None:
        """The declared agents (whose status may be set) and queues (whose callers are
        read). New queues are read at once on every connected node."""
        queues = tuple(sorted(desired.queues))
        grew = not set(queues) <= set(self._managed.queues)
        self._managed.agents = frozenset(desired.agents)
        self._managed.queues = queues
        if grew:
            for node in self.nodes:
                node.request_read()

    def refresh(self) -> None:
        """Read every connected node again soon: after a reconcile pass deleted agents or
        unloaded queues (mod_callcenter fires no event for those)."""
        for node in self.nodes:
            node.request_read()

    # -- PresenceView ----------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        """Wait until ``version`` exceeds ``after`` (or the timeout); returns the version."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._version <= after:
                    await self._changed.wait()
        return self._version

    def domain(self, domain: str) -> DomainPresence:
        """One domain's facts over all nodes: touches that domain's bucket of each node."""
        key = domain.lower()
        registrations: list[Registration] = []
        agents: dict[str, list[AgentPresence]] = {}
        members: dict[str, list[QueueMember]] = {}
        for node in self.nodes:
            bucket = node.facts.by_domain.get(key)
            if bucket is None:
                continue
            registrations.extend(bucket.registrations.values())
            for name, agent in bucket.agents.items():
                agents.setdefault(name, []).append(agent)
            for queue, by_uuid in bucket.members.items():
                if by_uuid:
                    members.setdefault(queue, []).extend(by_uuid.values())
        registrations.sort(key=lambda r: (r.user, r.node, r.contact))
        for listed in members.values():
            listed.sort(key=lambda m: (m.joined_at or datetime.min.replace(tzinfo=UTC), m.uuid))
        return DomainPresence(
            registrations=tuple(registrations),
            agents={name: tuple(agents[name]) for name in sorted(agents)},
            members={queue: tuple(members[queue]) for queue in sorted(members)},
            nodes_connected=sum(1 for node in self.nodes if node.connected),
            nodes_total=len(self.nodes),
        )

    async def set_agent_status(self, agent: str, status: str) -> Sequence[StatusResult]:
        """``callcenter_config agent set status <agent> '<status>'`` on every node (a node
        that is not connected answers "not connected"). Only a declared ``name@domain`` and
        one of the four statuses, spelled exactly, are accepted."""
        if agent not in self._managed.agents:
            raise UnknownAgent(f"{agent!r} is not a declared agent")
        command = cmd.agent_status(agent, status)  # UnsafeArgument for any other status
        return tuple(await asyncio.gather(*(node.set_status(command) for node in self.nodes)))


def as_view(cache: PresenceCache) -> PresenceView:
    """The cache is a ``PresenceView`` (mypy checks it here, structurally)."""
    return cache

"""One node's live facts (registrations, agents' status and state, callers in queues),
indexed by domain, and how each event changes them. Pure: no I/O, no clock but the events'.

A read for one domain touches that domain's bucket only, so a portal page costs the same with
one tenant or a thousand. Every change calls ``on_change`` once (the cache's version grows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from reconciler.core.presence import AgentPresence, QueueMember, Registration
from reconciler.esl import EslEvent
from reconciler.switch.callcenter.desired import domain_of
from reconciler.switch.callcenter.listings import ListedAgentPresence, ListedMember
from reconciler.switch.presence.registrations import registration_from_event

_IN_QUEUE = ("Waiting", "Trying", "Answered")


@dataclass
class DomainFacts:
    """Everything one node knows about one domain."""

    registrations: dict[str, Registration] = field(default_factory=dict)  # by call-id
    agents: dict[str, AgentPresence] = field(default_factory=dict)  # by fs name
    members: dict[str, dict[str, QueueMember]] = field(default_factory=dict)  # queue -> uuid

    def empty(self) -> bool:
        return not (self.registrations or self.agents or any(self.members.values()))


def _event_time(event: EslEvent) -> datetime | None:
    stamp = event.get("Event-Date-Timestamp", "") or ""
    return datetime.fromtimestamp(int(stamp) / 1_000_000, UTC) if stamp.isdigit() else None


def _epoch(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def agent_presence(node: str, row: ListedAgentPresence) -> AgentPresence:
    return AgentPresence(
        node=node,
        name=row.name,
        status=row.status,
        state=row.state,
        calls_answered=row.calls_answered,
        last_status_change=_epoch(row.last_status_change),
    )


def queue_member(node: str, row: ListedMember) -> QueueMember:
    return QueueMember(
        node=node,
        queue=row.queue,
        uuid=row.uuid,
        caller_number=row.cid_number,
        caller_name=row.cid_name,
        state=row.state,
        joined_at=_epoch(row.joined_epoch),
        serving_agent=row.serving_agent or None,
    )


class NodeFacts:
    """The facts of one node. ``replace_*`` install a fresh read; ``apply`` one event."""

    def __init__(self, node: str, on_change: Callable[[], None]) -> None:
        self.node = node
        self.by_domain: dict[str, DomainFacts] = {}
        self._reg_domain: dict[str, str] = {}  # call-id -> domain, for unregister/expire
        self._on_change = on_change

    def _bucket(self, domain: str) -> DomainFacts:
        found = self.by_domain.get(domain)
        if found is None:
            found = self.by_domain[domain] = DomainFacts()
        return found

    def clear(self) -> None:
        """The node is gone: none of its facts may be shown as live."""
        if self.by_domain:
            self.by_domain.clear()
            self._reg_domain.clear()
            self._on_change()

    def replace_all(
        self,
        registrations: Mapping[str, Registration],
        agents: Iterable[ListedAgentPresence],
        members: Mapping[str, Iterable[ListedMember]],
    ) -> None:
        """A full read: everything the node holds now (members of the queues read)."""
        self.by_domain.clear()
        self._reg_domain.clear()
        for call_id, reg in registrations.items():
            self._bucket(reg.domain).registrations[call_id] = reg
            self._reg_domain[call_id] = reg.domain
        for row in agents:
            self._bucket(domain_of(row.name)).agents[row.name] = agent_presence(self.node, row)
        for queue, rows in members.items():
            self._set_members(queue, rows)
        self._on_change()

    def replace_members(self, queue: str, rows: Iterable[ListedMember]) -> None:
        self._set_members(queue, rows)
        self._on_change()

    def _set_members(self, queue: str, rows: Iterable[ListedMember]) -> None:
        self._bucket(domain_of(queue)).members[queue] = {
            row.uuid: queue_member(self.node, row) for row in rows
        }

    def members_of(self, queue: str) -> dict[str, QueueMember]:
        bucket = self._bucket(domain_of(queue))
        return bucket.members.setdefault(queue, {})

    def apply(self, event: EslEvent) -> str | None:
        """Change the facts by one event; returns a queue whose members need a re-read
        (a ``members-count`` that disagrees with what the events built), else None."""
        name = event.name
        if name == "sofia::register":
            self._registered(event)
        elif name in ("sofia::unregister", "sofia::expire"):
            self._unregistered(event.get("call-id") or "")
        elif name == "callcenter::info":
            return self._callcenter(event)
        return None

    def _registered(self, event: EslEvent) -> None:
        reg = registration_from_event(event.headers, self.node)
        call_id = event.get("call-id") or ""
        if reg is None or not call_id:
            return
        self._unregistered(call_id, notify=False)  # a re-register may move domains
        bucket = self._bucket(reg.domain)
        bucket.registrations[call_id] = reg
        self._reg_domain[call_id] = reg.domain
        self._on_change()

    def _unregistered(self, call_id: str, *, notify: bool = True) -> None:
        domain = self._reg_domain.pop(call_id, None)
        if domain is None:
            return
        self.by_domain[domain].registrations.pop(call_id, None)
        if notify:
            self._on_change()

    def _callcenter(self, event: EslEvent) -> str | None:
        action = event.get("CC-Action") or ""
        if action in ("agent-add", "agent-status-change", "agent-state-change"):
            self._agent(event, action)
        elif action == "members-count":
            return self._counted(event)
        elif action.startswith(("member-queue-", "agent-offering", "bridge-agent-")):
            self._member(event, action)
        return None

    def _agent(self, event: EslEvent, action: str) -> None:
        name = event.get("CC-Agent") or ""
        agents = self._bucket(domain_of(name)).agents
        have = agents.get(name) or AgentPresence(self.node, name, "Logged Out", "Waiting")
        if action == "agent-status-change":
            status = event.get("CC-Agent-Status") or have.status
            have = replace(have, status=status, last_status_change=_event_time(event))
        elif action == "agent-state-change":
            have = replace(have, state=event.get("CC-Agent-State") or have.state)
        agents[name] = have
        self._on_change()

    def _member(self, event: EslEvent, action: str) -> None:
        queue = event.get("CC-Queue") or ""
        member_uuid = event.get("CC-Member-UUID") or ""
        members = self.members_of(queue)
        if action == "member-queue-end":
            if members.pop(member_uuid, None) is not None:
                self._on_change()
            return
        have = members.get(member_uuid)
        if have is None:
            if action != "member-queue-start":
                return  # a call we did not see start: the next read brings it
            have = QueueMember(
                node=self.node,
                queue=queue,
                uuid=member_uuid,
                caller_number=event.get("CC-Member-CID-Number") or "",
                caller_name=event.get("CC-Member-CID-Name") or "",
                state="Waiting",
                joined_at=_event_time(event),
            )
        elif action == "agent-offering":
            have = replace(have, state="Trying")
        elif action == "bridge-agent-start":
            have = replace(have, state="Answered", serving_agent=event.get("CC-Agent"))
        elif action == "bridge-agent-fail":
            have = replace(have, state="Waiting", serving_agent=None)
        members[member_uuid] = have
        self._on_change()

    def _counted(self, event: EslEvent) -> str | None:
        queue = event.get("CC-Queue") or ""
        count = event.get("CC-Count") or ""
        members = self.members_of(queue)
        if count == "0" and members:
            members.clear()
            self._on_change()
        in_queue = sum(1 for m in members.values() if m.state in _IN_QUEUE)
        return queue if count.isdigit() and int(count) != in_queue else None

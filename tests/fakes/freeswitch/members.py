"""Callers in mod_callcenter's queues: ``queue list|count members`` and the
``callcenter::info`` events of a queue call."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.fakes.freeswitch.text import table

if TYPE_CHECKING:
    from tests.fakes.freeswitch.switch import FakeFreeSwitch


MEMBER_COLUMNS = (
    "queue",
    "instance_id",
    "uuid",
    "session_uuid",
    "cid_number",
    "cid_name",
    "system_epoch",
    "joined_epoch",
    "rejoined_epoch",
    "bridge_epoch",
    "abandoned_epoch",
    "base_score",
    "skill_score",
    "serving_agent",
    "serving_system",
    "state",
    "score",
)


@dataclass
class FakeMember:
    """A row of mod_callcenter's ``members`` table (cc_queue_list_members_in_call)."""

    queue: str
    uuid: str
    session_uuid: str
    cid_number: str
    cid_name: str
    system_epoch: int
    joined_epoch: int
    instance_id: str = "single_box"
    rejoined_epoch: int = 0
    bridge_epoch: int = 0
    abandoned_epoch: int = 0
    base_score: int = 0
    skill_score: int = 0
    serving_agent: str = ""
    serving_system: str = ""
    state: str = "Waiting"
    score: int = 0

    def row(self) -> list[object]:
        return [getattr(self, c) for c in MEMBER_COLUMNS]


class FakeMembers:
    """Callers in queues and the ``callcenter::info`` events of a queue call.

    Captured (esl/live): a member Answered by alice, and the event sequence of that call.
    Inferred: a Waiting member's row (no agent, bridge_epoch 0, score 0), and the
    ``member-queue-end`` of a caller who hangs up while waiting (``CC-Cause: Cancel``).
    The channel headers of member-queue-start/-end are the caller's channel variables: pass
    them as ``channel`` to reproduce a capture; by default the events carry the CC-* only.
    """

    def __init__(self, fs: FakeFreeSwitch) -> None:
        self.fs = fs
        self.members: dict[str, FakeMember] = {}

    def _now(self) -> int:
        return self.fs.clock_us() // 1_000_000

    def _cc(self, function: str, line: int, headers: list[tuple[str, str]]) -> None:
        self.fs.emit_event(
            "CUSTOM",
            headers,
            subclass="callcenter::info",
            calling=("mod_callcenter.c", function, line),
        )

    def _count(self, queue: str) -> int:
        live = ("Waiting", "Trying", "Answered")
        return sum(1 for m in self.members.values() if m.queue == queue and m.state in live)

    def _members_count(self, queue: str) -> None:
        self._cc(
            "cc_queue_count",
            878,
            [
                ("CC-Queue", queue),
                ("CC-Action", "members-count"),
                ("CC-Count", str(self._count(queue))),
                ("CC-Selection", "Single-Queue"),
            ],
        )

    def _who(self, m: FakeMember) -> list[tuple[str, str]]:
        return [
            ("CC-Member-UUID", m.uuid),
            ("CC-Member-Session-UUID", m.session_uuid),
            ("CC-Member-CID-Name", m.cid_name),
            ("CC-Member-CID-Number", m.cid_number),
        ]

    def enter(
        self,
        queue: str,
        cid_number: str,
        cid_name: str | None = None,
        *,
        member_uuid: str | None = None,
        session_uuid: str | None = None,
        channel: Iterable[tuple[str, str]] = (),
    ) -> FakeMember:
        """A caller runs the ``callcenter`` app: member-queue-start, then members-count."""
        now = self._now()
        member = FakeMember(
            queue=queue,
            uuid=member_uuid or str(uuid.uuid4()),
            session_uuid=session_uuid or str(uuid.uuid4()),
            cid_number=cid_number,
            cid_name=cid_name if cid_name is not None else cid_number,
            system_epoch=now,
            joined_epoch=now,
        )
        self.members[member.uuid] = member
        start = [("CC-Queue", queue), ("CC-Action", "member-queue-start"), *self._who(member)]
        self._cc("callcenter_function", 3113, [*channel, *start])
        self._members_count(queue)
        return member

    def answer(self, member_uuid: str, agent: str) -> None:
        """An agent is offered the caller and answers: agent-offering, bridge-agent-start."""
        member = self.members[member_uuid]
        self._agent_state(agent, "Receiving")
        self._cc(
            "outbound_agent_thread_run",
            1717,
            [
                ("CC-Queue", member.queue),
                ("CC-Action", "agent-offering"),
                ("CC-Agent", agent),
                ("CC-Agent-Type", "Callback"),
                ("CC-Agent-System", "single_box"),
                *self._who(member),
            ],
        )
        member.state, member.serving_agent, member.serving_system = (
            "Answered",
            agent,
            "single_box",
        )
        member.bridge_epoch = self._now()
        self._cc(
            "outbound_agent_thread_run",
            1934,
            [
                ("CC-Queue", member.queue),
                ("CC-Action", "bridge-agent-start"),
                ("CC-Agent", agent),
                ("CC-Agent-System", "single_box"),
                *self._who(member),
            ],
        )
        self._members_count(member.queue)
        self._agent_state(agent, "In a queue call")

    def leave(self, member_uuid: str) -> None:
        """The call ends: answered -> bridge-agent-end, member-queue-end (Terminated), the
        agent back to Waiting; still waiting -> member-queue-end (Cancel, inferred)."""
        member = self.members.pop(member_uuid)
        agent = member.serving_agent
        end = [("CC-Queue", member.queue), ("CC-Action", "member-queue-end")]
        if agent:
            self._cc(
                "outbound_agent_thread_run",
                2062,
                [
                    ("CC-Queue", member.queue),
                    ("CC-Action", "bridge-agent-end"),
                    ("CC-Hangup-Cause", "SUCCESS"),
                    ("CC-Agent", agent),
                    *self._who(member),
                ],
            )
            end += [("CC-Hangup-Cause", "SUCCESS"), ("CC-Cause", "Terminated"), ("CC-Agent", agent)]
            self._cc("outbound_agent_thread_run", 2098, [*end, *self._who(member)])
            self._agent_state(agent, "Waiting")
        else:
            end += [("CC-Cause", "Cancel"), ("CC-Cancel-Reason", "NONE")]
            self._cc("callcenter_function", 3256, [*end, *self._who(member)])
        self._members_count(member.queue)

    def _agent_state(self, agent: str, state: str) -> None:
        found = self.fs.agents.get(agent)
        if found is not None:
            found.state = state
        self._cc(
            "cc_agent_update",
            1067,
            [("CC-Agent", agent), ("CC-Action", "agent-state-change"), ("CC-Agent-State", state)],
        )

    def listing(self, queue: str, *, count: bool) -> str:
        rows = [m for m in self.members.values() if m.queue == queue]
        if count:
            return f"{self._count(queue)}\n"
        return table(MEMBER_COLUMNS, [m.row() for m in rows]) + "+OK\n"

"""mod_callcenter in the fake: agents and tiers that survive a restart (like callcenter.db),
queues that live in memory only and are (lazily) fetched from callcenter.conf over xml_curl,
POSTed exactly like FreeSWITCH does; every ``callcenter_config`` reply string and the
``callcenter::info`` events of the commands. Modelled on REFERENCE.md and the transcripts.

The tables live on the switch (``fs.agents``, ``fs.tiers``, ``fs.queues``: tests steer them
there); :class:`FakeCallcenter` runs the commands against them."""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import aiohttp

from tests.fakes.freeswitch.text import atoi, canonical, cell, separate_blank, switch_true, table
from tests.fakes.freeswitch.wire import QueuedEvent, fs_url_encode

if TYPE_CHECKING:
    from tests.fakes.freeswitch.switch import FakeFreeSwitch

_USAGE_FORMS = (
    "agent add [name] [type]",
    "agent del [name]",
    "agent reload [name]",
    "agent set status [agent_name] [status]",
    "agent set state [agent_name] [state]",
    "agent set contact [agent_name] [contact]",
    "agent set ready_time [agent_name] [wait till epoch]",
    "agent set reject_delay_time [agent_name] [wait second]",
    "agent set busy_delay_time [agent_name] [wait second]",
    "agent set no_answer_delay_time [agent_name] [wait second]",
    "agent get status [agent_name]",
    "agent get state [agent_name]",
    "agent get uuid [agent_name]",
    "agent list [[agent_name]]",
    "tier add [queue_name] [agent_name] [[level]] [[position]]",
    "tier set state [queue_name] [agent_name] [state]",
    "tier set level [queue_name] [agent_name] [level]",
    "tier set position [queue_name] [agent_name] [position]",
    "tier del [queue_name] [agent_name]",
    "tier reload [queue_name] [agent_name]",
    "tier list",
    "queue load [queue_name]",
    "queue unload [queue_name]",
    "queue reload [queue_name]",
    "queue list",
    "queue list agents [queue_name] [status] [state]",
    "queue list members [queue_name]",
    "queue list tiers [queue_name]",
    "queue count",
    "queue count agents [queue_name] [status] [state]",
    "queue count members [queue_name]",
    "queue count tiers [queue_name]",
)
CC_USAGE = (
    "-USAGE: \ncallcenter_config <target> <args>,\n"
    + " | \n".join(f"\tcallcenter_config {form}" for form in _USAGE_FORMS)
    + "\n"
)

AGENT_STATUSES = ("Logged Out", "Available", "Available (On Demand)", "On Break")
AGENT_STATES = ("Waiting", "Receiving", "In a queue call", "Idle", "Reserved")
AGENT_TYPES = ("Callback", "uuid-standby")
TIER_STATES = ("No Answer", "Ready", "Offering", "Active Inbound", "Standby")

AGENT_COLUMNS = (
    "name",
    "instance_id",
    "uuid",
    "type",
    "contact",
    "status",
    "state",
    "max_no_answer",
    "wrap_up_time",
    "reject_delay_time",
    "busy_delay_time",
    "no_answer_delay_time",
    "last_bridge_start",
    "last_bridge_end",
    "last_offered_call",
    "last_status_change",
    "no_answer_count",
    "calls_answered",
    "talk_time",
    "ready_time",
    "external_calls_count",
)
TIER_COLUMNS = ("queue", "agent", "state", "level", "position")
QUEUE_COLUMNS = (
    "name",
    "strategy",
    "moh_sound",
    "time_base_score",
    "tier_rules_apply",
    "tier_rule_wait_second",
    "tier_rule_wait_multiply_level",
    "tier_rule_no_agent_no_wait",
    "discard_abandoned_after",
    "abandoned_resume_allowed",
    "max_wait_time",
    "max_wait_time_with_no_agent",
    "max_wait_time_with_no_agent_time_reached",
    "record_template",
    "calls_answered",
    "calls_abandoned",
    "ring_progressively_delay",
    "skip_agents_with_external_calls",
    "agent_no_answer_status",
)
MUTATING = {
    ("agent", "add"),
    ("agent", "del"),
    ("agent", "set"),
    ("agent", "reload"),
    ("tier", "add"),
    ("tier", "set"),
    ("tier", "del"),
    ("tier", "reload"),
    ("queue", "load"),
    ("queue", "unload"),
    ("queue", "reload"),
}
NUMERIC_AGENT_KEYS = (
    "max_no_answer",
    "wrap_up_time",
    "ready_time",
    "reject_delay_time",
    "busy_delay_time",
    "no_answer_delay_time",
)

# The vanilla conf/autoload_configs/callcenter.conf.xml queue, as loaded in the transcripts
# (``$${hold_music}`` expanded): pass it as ``static_queues`` to reproduce them.
VANILLA_CALLCENTER_QUEUES: Mapping[str, Mapping[str, str]] = {
    "support@default": {
        "strategy": "longest-idle-agent",
        "moh-sound": "local_stream://moh",
        "time-base-score": "system",
        "max-wait-time": "0",
        "max-wait-time-with-no-agent": "0",
        "max-wait-time-with-no-agent-time-reached": "5",
        "tier-rules-apply": "false",
        "tier-rule-wait-second": "300",
        "tier-rule-wait-multiply-level": "true",
        "tier-rule-no-agent-no-wait": "false",
        "discard-abandoned-after": "60",
        "abandoned-resume-allowed": "false",
    }
}


@dataclass
class FakeAgent:
    """One row of mod_callcenter's ``agents`` table (None prints as an empty field)."""

    name: str
    type: str = "Callback"
    instance_id: str = "single_box"
    uuid: str | None = None
    contact: str | None = None
    status: str = "Logged Out"
    state: str = "Waiting"
    max_no_answer: int = 0
    wrap_up_time: int = 0
    reject_delay_time: int = 0
    busy_delay_time: int = 0
    no_answer_delay_time: int = 0
    last_bridge_start: int = 0
    last_bridge_end: int = 0
    last_offered_call: int = 0
    last_status_change: int = 0
    no_answer_count: int = 0
    calls_answered: int = 0
    talk_time: int = 0
    ready_time: int = 0
    external_calls_count: int = 0

    def row(self) -> list[object]:
        return [getattr(self, c) for c in AGENT_COLUMNS]


@dataclass
class FakeTier:
    queue: str
    agent: str
    state: str = "Ready"
    level: int = 1
    position: int = 1

    def row(self) -> list[object]:
        return [getattr(self, c) for c in TIER_COLUMNS]


@dataclass
class FakeQueue:
    """A queue in mod_callcenter's memory; fields are the ``queue list`` columns."""

    name: str
    strategy: str = "longest-idle-agent"
    moh_sound: str | None = None
    time_base_score: str = "queue"
    tier_rules_apply: bool = False
    tier_rule_wait_second: int = 0
    tier_rule_wait_multiply_level: bool = False
    tier_rule_no_agent_no_wait: bool = True
    discard_abandoned_after: int = 60
    abandoned_resume_allowed: bool = False
    max_wait_time: int = 0
    max_wait_time_with_no_agent: int = 0
    max_wait_time_with_no_agent_time_reached: int = 5
    record_template: str | None = None
    calls_answered: int = 0
    calls_abandoned: int = 0
    ring_progressively_delay: int = 0
    skip_agents_with_external_calls: bool = True
    agent_no_answer_status: str = "On Break"
    announce_sound: str | None = None
    announce_frequency: int = 0
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, str]) -> FakeQueue:
        """Build from ``<param name="dash-name" value=...>`` pairs; unknown params ignored."""
        queue = cls(name=name, params=dict(params))
        kinds = {f.name: f.type for f in fields(cls)}
        for raw_key, value in params.items():
            key = raw_key.replace("-", "_")
            if key in ("name", "params", "calls_answered", "calls_abandoned") or key not in kinds:
                continue
            kind = kinds[key]
            if kind == "bool":
                setattr(queue, key, switch_true(value))
            elif kind == "int":
                setattr(queue, key, min(max(atoi(value), 0), 86400))
            else:
                setattr(queue, key, value)
        return queue

    def row(self) -> list[object]:
        return [getattr(self, c) for c in QUEUE_COLUMNS]


@dataclass
class XmlCurlRequest:
    """One callcenter.conf fetch the fake made, with what came back."""

    queue: str
    body: str
    headers: dict[str, str]
    status: int | None = None
    response: str | None = None
    error: str | None = None


class FakeCallcenter:
    """``callcenter_config`` (and its ``json`` form) against the switch's tables."""

    def __init__(self, fs: FakeFreeSwitch) -> None:
        self.fs = fs
        self.queue_lock: asyncio.Lock | None = None

    def event(
        self, events: list[QueuedEvent], function: str, line: int, extra: list[tuple[str, str]]
    ) -> None:
        headers = self.fs.std_headers(
            "CUSTOM", "callcenter::info", "mod_callcenter.c", function, line
        )
        events.append(("CUSTOM", "callcenter::info", headers + extra, None))

    async def json_api(self, arg: str, events: list[QueuedEvent]) -> str:
        """``json {"command":"callcenter_config","data":{"arguments":"agent list"}}``.

        Only ``agent list`` is backed by a transcript (NULL columns are left out).
        """
        try:
            request = json.loads(arg)
            arguments = request["data"]["arguments"]
        except (ValueError, KeyError, TypeError):
            return '{"status":"error","message":"parse error"}\n'
        if request.get("command") != "callcenter_config" or arguments.split() != ["agent", "list"]:
            response = {**request, "status": "error", "message": "not modelled by the fake"}
        else:
            rows = [
                {c: cell(v) for c, v in zip(AGENT_COLUMNS, a.row(), strict=True) if v is not None}
                for a in self.fs.agents.values()
            ]
            response = {**request, "status": "success", "response": rows}
        return json.dumps(response, separators=(",", ":"), ensure_ascii=False) + "\n"

    async def config(self, arg: str, events: list[QueuedEvent], *, from_esl: bool) -> str:
        if not arg:
            return CC_USAGE
        argv = separate_blank(arg, 8)
        if len(argv) < 2:
            return "-ERR Invalid!\n"
        section, action = argv[0].lower(), argv[1].lower()
        if from_esl and (section, action) in MUTATING:
            self.fs.mutation_count += 1
        args = argv[2:]
        handler = {"agent": self._agent, "tier": self._tier, "queue": self._queue}.get(section)
        if handler is None:
            return ""
        return await handler(action, args, events)

    async def _agent(self, action: str, args: list[str], events: list[QueuedEvent]) -> str:
        if action == "add":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            name, agent_type = args[0], args[1]
            if name in self.fs.agents:
                return "-ERR Agent already exist!\n"
            if canonical(agent_type, AGENT_TYPES) is None:
                return "-ERR Agent type invalid!\n"
            self.fs.agents[name] = FakeAgent(name=name, type=agent_type)
            self.event(
                events,
                "cc_agent_add",
                915,
                [("CC-Agent", name), ("CC-Agent-Type", agent_type), ("CC-Action", "agent-add")],
            )
            return "+OK\n"
        if action == "del":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            self.fs.remove_agent(args[0])
            return "+OK\n"
        if action == "reload":
            return "-ERR Invalid!\n" if len(args) < 1 else "+OK\n"
        if action == "set":
            if len(args) < 3:
                return "-ERR Invalid!\n"
            return self._agent_update(args[0], args[1], args[2], events)
        if action == "get":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            key, name = args[0].lower(), args[1]
            agent = self.fs.agents.get(name)
            if agent is None:
                return "-ERR Agent not found!\n"
            if key not in ("status", "state", "uuid"):
                return "-ERR Invalid Agent Update KEY!\n"
            return getattr(agent, key) or ""
        if action == "list":
            agents = [a for a in self.fs.agents.values() if not args or a.name == args[0]]
            return table(AGENT_COLUMNS, [a.row() for a in agents]) + "+OK\n"
        return ""

    def _agent_update(self, key: str, name: str, value: str, events: list[QueuedEvent]) -> str:
        agent = self.fs.agents.get(name)
        if agent is None:
            return "-ERR Agent not found!\n"
        key = key.lower()
        if key == "status":
            if canonical(value, AGENT_STATUSES) is None:
                return "-ERR Invalid Agent Status!\n"
            if value.lower() == "available" and agent.status != value:
                agent.talk_time = agent.calls_answered = agent.no_answer_count = 0
            agent.status = value
            agent.last_status_change = self.fs.clock_us() // 1_000_000
            self.event(
                events,
                "cc_agent_update",
                1043,
                [
                    ("CC-Agent", name),
                    ("CC-Action", "agent-status-change"),
                    ("CC-Agent-Status", value),
                ],
            )
        elif key in ("state", "state_if_waiting"):
            if canonical(value, AGENT_STATES) is None:
                return "-ERR Invalid Agent State!\n"
            if key == "state_if_waiting" and agent.state != "Waiting":
                return "+OK\n"
            agent.state = value
            self.event(
                events,
                "cc_agent_update",
                1067,
                [
                    ("CC-Agent", name),
                    ("CC-Action", "agent-state-change"),
                    ("CC-Agent-State", value),
                ],
            )
        elif key == "contact":
            agent.contact = value
            self.event(
                events,
                "cc_agent_update",
                1091,
                [
                    ("CC-Agent", name),
                    ("CC-Action", "agent-contact-change"),
                    ("CC-Agent-Contact", value),
                ],
            )
        elif key == "type":
            if canonical(value, AGENT_TYPES) is None:
                return "-ERR Invalid Agent Type!\n"
            agent.type = value
        elif key == "uuid":
            agent.uuid = value
        elif key in NUMERIC_AGENT_KEYS:
            setattr(agent, key, atoi(value))
        else:
            return "-ERR Invalid Agent Update KEY!\n"
        return "+OK\n"

    async def _tier(self, action: str, args: list[str], events: list[QueuedEvent]) -> str:
        if action == "add":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            queue_name, agent_name = args[0], args[1]
            if await self.get_queue(queue_name) is None:
                return "-ERR Queue not found!\n"
            if agent_name not in self.fs.agents:
                return "-ERR Agent not found!\n"
            if (queue_name, agent_name) in self.fs.tiers:
                return "-ERR Tier already exist!\n"
            level = atoi(args[2]) if len(args) > 2 else 1
            position = atoi(args[3]) if len(args) > 3 else 1
            self.fs.tiers[(queue_name, agent_name)] = FakeTier(
                queue_name, agent_name, "Ready", level, position
            )
            return "+OK\n"
        if action == "set":
            if len(args) < 4:
                return "-ERR Invalid!\n"
            key, queue_name, agent_name, value = args[0].lower(), args[1], args[2], args[3]
            tier = self.fs.tiers.get((queue_name, agent_name))
            if tier is None or agent_name not in self.fs.agents:
                return "-ERR Unknown Error!\n"
            if await self.get_queue(queue_name) is None:
                return "-ERR Agent not found!\n"
            if key == "state":
                if canonical(value, TIER_STATES) is None:
                    return "-ERR Invalid Tier State!\n"
                tier.state = value
            elif key in ("level", "position"):
                setattr(tier, key, atoi(value))
            else:
                return "-ERR Invalid Tier Update KEY!\n"
            return "+OK\n"
        if action == "del":
            if len(args) < 2:
                return "-ERR Invalid!\n"
            self.fs.tiers.pop((args[0], args[1]), None)
            return "+OK\n"
        if action == "reload":
            return "-ERR Invalid!\n" if len(args) < 2 else "+OK\n"
        if action == "list":
            return table(TIER_COLUMNS, [t.row() for t in self._sorted_tiers()]) + "+OK\n"
        return ""

    def _sorted_tiers(self, queue: str | None = None) -> list[FakeTier]:
        tiers = [t for t in self.fs.tiers.values() if queue is None or t.queue == queue]
        return sorted(tiers, key=lambda t: (t.level, t.position))  # stable: insertion order

    async def _queue(self, action: str, args: list[str], events: list[QueuedEvent]) -> str:
        if action == "load":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            found = await self.get_queue(args[0])
            return "+OK\n" if found else "-ERR Invalid Queue not found!\n"
        if action == "unload":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            self.fs.queues.pop(args[0], None)
            return "+OK\n"
        if action == "reload":
            if len(args) < 1:
                return "-ERR Invalid!\n"
            self.fs.queues.pop(args[0], None)
            found = await self.get_queue(args[0])
            return "+OK\n" if found else "-ERR Invalid Queue not found!\n"
        if action in ("list", "count"):
            if not args:
                if action == "count":
                    return f"{len(self.fs.queues)}\n"
                header = "|".join(QUEUE_COLUMNS) + "\n"
                rows = "".join(
                    "|".join(cell(v) for v in self.fs.queues[name].row()) + "\n"
                    for name in sorted(self.fs.queues)
                )
                return header + rows + "+OK\n"
            what = args[0].lower()
            if len(args) < 2 or what not in ("agents", "members", "tiers"):
                return "-ERR Invalid!\n"
            queue_name = args[1]
            if what == "tiers":  # insertion order, not sorted (cc_queue_list_tiers)
                tiers = [t for t in self.fs.tiers.values() if t.queue == queue_name]
                if action == "count":
                    return f"{len(tiers)}\n"
                return table(TIER_COLUMNS, [t.row() for t in tiers]) + "+OK\n"
            if what == "members":
                return self.fs.members.listing(queue_name, count=action == "count")
            names = {t.agent for t in self.fs.tiers.values() if t.queue == queue_name}
            agents = [
                a
                for a in self.fs.agents.values()
                if a.name in names
                and (len(args) < 3 or a.status == args[2])
                and (len(args) < 4 or a.state == args[3])
            ]
            if action == "count":
                return f"{len(agents)}\n"
            return table(AGENT_COLUMNS, [a.row() for a in agents]) + "+OK\n"
        return ""

    # ------------------------------------------------------------------ queues and xml_curl

    def load_static_queues(self) -> None:
        for name, params in self.fs.static_queues.items():
            self.fs.queues[name] = FakeQueue.from_params(name, params)

    async def get_queue(self, name: str) -> FakeQueue | None:
        """The queue from memory, else fetched (mod_callcenter holds its global mutex meanwhile)."""
        if name in self.fs.queues:
            return self.fs.queues[name]
        lock = self.queue_lock or asyncio.Lock()
        async with lock:
            if name in self.fs.queues:
                return self.fs.queues[name]
            return await self._load_queue(name)

    async def _load_queue(self, name: str) -> FakeQueue | None:
        config = await self._fetch_callcenter_conf(name)
        if config is None:  # xml_curl failed or said "not found": the static files decide
            params = self.fs.static_queues.get(name)
            if params is None:
                return None
            queue = FakeQueue.from_params(name, params)
        else:
            self._import_agents_and_tiers(config)
            element = next(
                (q for q in config.iterfind("queues/queue") if q.get("name") == name), None
            )
            if element is None:
                return None
            params = {p.get("name", ""): p.get("value", "") for p in element.iterfind("param")}
            queue = FakeQueue.from_params(name, params)
        self.fs.queues[name] = queue
        return queue

    def _import_agents_and_tiers(self, config: ET.Element) -> None:
        """queue load/reload re-imports every <agent> and <tier> of the fetched document."""
        for element in config.iterfind("agents/agent"):
            name = element.get("name")
            if not name:
                continue
            agent = self.fs.agents.get(name) or self.fs.add_agent(
                name, element.get("type") or "Callback"
            )
            for attr, value in element.attrib.items():
                key = attr.replace("-", "_")
                if key in ("status", "state", "contact", "type"):
                    setattr(agent, key, value)
                elif key in NUMERIC_AGENT_KEYS:
                    setattr(agent, key, atoi(value))
        for element in config.iterfind("tiers/tier"):
            queue, agent_name = element.get("queue"), element.get("agent")
            if not queue or not agent_name:
                continue
            tier = self.fs.tiers.get((queue, agent_name)) or self.fs.add_tier(queue, agent_name)
            if element.get("level"):
                tier.level = atoi(element.get("level", "1"))
            if element.get("position"):
                tier.position = atoi(element.get("position", "1"))

    def xml_curl_body(self, queue: str | None) -> str:
        """The form body FreeSWITCH POSTs for callcenter.conf (CC-Queue set on queue loads)."""
        body = (
            f"hostname={self.fs.switchname}&section=configuration&tag_name=configuration"
            "&key_name=name&key_value=callcenter.conf"
        )
        if queue is None:
            return body
        params = [
            *self.fs.std_headers("REQUEST_PARAMS", None, "mod_callcenter.c", "load_queue", 724),
            ("CC-Queue", queue),
        ]
        return body + "".join(f"&{name}={fs_url_encode(value)}" for name, value in params)

    async def _fetch_callcenter_conf(self, queue: str) -> ET.Element | None:
        """POST like mod_xml_curl; the ``<configuration name="callcenter.conf">`` or None."""
        if not self.fs.xml_curl_url:
            return None
        body = self.xml_curl_body(queue)
        headers = {
            "User-Agent": "freeswitch-xml/1.0",
            "Accept": "*/*",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if self.fs.xml_curl_credentials:
            token = base64.b64encode(self.fs.xml_curl_credentials.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        record = XmlCurlRequest(queue=queue, body=body, headers=dict(headers))
        self.fs.xml_curl_log.append(record)
        # One fresh connection per fetch, like curl in mod_xml_curl; never blocks the loop.
        connector = aiohttp.TCPConnector(force_close=True)
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(total=self.fs.xml_curl_timeout),
                    skip_auto_headers=("Accept-Encoding",),
                ) as session,
                session.post(self.fs.xml_curl_url, data=body.encode(), headers=headers) as resp,
            ):
                record.status = resp.status
                raw = await resp.content.read(1 << 20)
                record.response = raw.decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            record.error = repr(exc)
            return None
        if record.status != 200:
            return None
        try:
            root = ET.fromstring(record.response)
        except ET.ParseError as exc:
            record.error = f"parse error: {exc}"
            return None
        for section in root.iterfind("section"):
            if section.get("name") == "configuration":
                for config in section.iterfind("configuration"):
                    if config.get("name") == "callcenter.conf":
                        return config
        return None

"""mod_callcenter's listings read into records: ``agent list``, ``tier list``, ``queue list``.

Every listing is ``|``-separated with a header line, read by column name (an upgraded
database can order columns differently), ends with ``+OK`` and prints NULL as an empty field.
Values are not escaped, so a ``|`` or a newline inside one breaks its row: such rows are kept
aside as ``unparsed``, reported and never acted upon. What the records mean to the reconciler
is ``plan``'s business; this module only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.switch.errors import CallcenterError

# Agent params this reconciler owns, as ``agent set`` spells them (type is given at add).
AGENT_NUMBER_FIELDS: tuple[str, ...] = (
    "max_no_answer",
    "wrap_up_time",
    "reject_delay_time",
    "busy_delay_time",
    "no_answer_delay_time",
)
AGENT_SET_FIELDS: tuple[str, ...] = ("contact", *AGENT_NUMBER_FIELDS)

# `queue list` columns that show configuration (the rest are the name and runtime counters).
QUEUE_LISTED_PARAMS: tuple[str, ...] = (
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
    "ring_progressively_delay",
    "skip_agents_with_external_calls",
    "agent_no_answer_status",
)


@dataclass(frozen=True, slots=True)
class LiveAgent:
    """An agent as ``agent list`` shows it; NULL columns read as ``""`` (text) or 0 (numbers)."""

    name: str
    type: str
    contact: str
    max_no_answer: int
    wrap_up_time: int
    reject_delay_time: int
    busy_delay_time: int
    no_answer_delay_time: int
    status: str
    state: str


@dataclass(frozen=True, slots=True)
class LiveTier:
    queue: str
    agent: str
    level: int
    position: int
    state: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.agent)


@dataclass(frozen=True)
class LiveQueue:
    """A loaded queue: ``params`` holds the configuration columns of ``queue list`` (underscore
    names, text as printed); the counters are runtime and restart on reload."""

    name: str
    params: Mapping[str, str]
    calls_answered: int = 0
    calls_abandoned: int = 0


@dataclass(frozen=True)
class LiveState:
    """What one switch holds. ``unparsed``: rows whose field count did not match the header
    (a ``|`` or newline inside a value); reported, never acted upon."""

    agents: Mapping[str, LiveAgent] = field(default_factory=dict)
    tiers: Mapping[tuple[str, str], LiveTier] = field(default_factory=dict)
    queues: Mapping[str, LiveQueue] = field(default_factory=dict)
    unparsed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """The rows of one listing, each keyed by column name, and the rows that did not fit."""

    rows: list[dict[str, str]]
    unparsed: list[str]


def read_table(text: str, first_column: str, required: Iterable[str], what: str) -> Table:
    """Rows of a ``|``-separated listing, keyed by its header line.

    Tolerates: empty output (``+OK`` only, or nothing), a trailing ``+OK``, CRLF. An ``-ERR`` or
    ``-USAGE`` reply raises. The header is found by its first column name, so column order is
    free."""
    stripped = text.strip()
    if stripped.startswith(("-ERR", "-USAGE")):
        raise CallcenterError(f"{what}: {stripped.splitlines()[0]}", reply=text)
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and lines[-1].strip() in ("", "+OK"):
        lines.pop()
    if not lines:
        return Table([], [])
    header = lines[0].split("|")
    if first_column not in header:
        raise CallcenterError(f"{what}: no header line, got {lines[0]!r}", reply=text)
    missing = [c for c in required if c not in header]
    if missing:
        raise CallcenterError(f"{what}: header lacks {', '.join(missing)}", reply=text)
    rows: list[dict[str, str]] = []
    unparsed: list[str] = []
    for line in lines[1:]:
        cells = line.split("|")
        if len(cells) != len(header):
            unparsed.append(line)
            continue
        rows.append(dict(zip(header, cells, strict=True)))
    return Table(rows, unparsed)


def number(value: str, what: str) -> int:
    """A listed integer; NULL (an empty field) reads as 0."""
    if value == "":
        return 0
    try:
        return int(value)
    except ValueError as exc:
        raise CallcenterError(f"{what}: {value!r} is not a number") from exc


AGENT_COLUMNS = ("name", "type", "contact", "status", "state", *AGENT_NUMBER_FIELDS)
TIER_COLUMNS = ("queue", "agent", "state", "level", "position")


def parse_agent_list(text: str) -> list[LiveAgent]:
    """``callcenter_config agent list`` body -> agents, in listing order."""
    return _agents(read_table(text, "name", AGENT_COLUMNS, "agent list"))


def _agents(table: Table) -> list[LiveAgent]:
    return [
        LiveAgent(
            name=row["name"],
            type=row["type"],
            contact=row["contact"],
            status=row["status"],
            state=row["state"],
            **{f: number(row[f], f"agent list {f}") for f in AGENT_NUMBER_FIELDS},
        )
        for row in table.rows
    ]


def parse_tier_list(text: str) -> list[LiveTier]:
    """``callcenter_config tier list`` body -> tiers, in listing order."""
    return _tiers(read_table(text, "queue", TIER_COLUMNS, "tier list"))


def _tiers(table: Table) -> list[LiveTier]:
    return [
        LiveTier(
            queue=row["queue"],
            agent=row["agent"],
            level=number(row["level"], "tier list level"),
            position=number(row["position"], "tier list position"),
            state=row["state"],
        )
        for row in table.rows
    ]


def parse_queue_list(text: str) -> list[LiveQueue]:
    """``callcenter_config queue list`` body -> loaded queues, in listing (hash) order.

    Only the configuration columns the header carries land in ``params``: a column an older
    or newer module does not print is simply not compared."""
    return _queues(read_table(text, "name", ("name",), "queue list"))


def _queues(table: Table) -> list[LiveQueue]:
    return [
        LiveQueue(
            name=row["name"],
            params={k: row[k] for k in QUEUE_LISTED_PARAMS if k in row},
            calls_answered=number(row.get("calls_answered", ""), "queue list calls_answered"),
            calls_abandoned=number(row.get("calls_abandoned", ""), "queue list calls_abandoned"),
        )
        for row in table.rows
    ]


def live_state(agent_list: str, tier_list: str, queue_list: str) -> LiveState:
    """The three listing bodies -> one ``LiveState``."""
    agents = read_table(agent_list, "name", AGENT_COLUMNS, "agent list")
    tiers = read_table(tier_list, "queue", TIER_COLUMNS, "tier list")
    queues = read_table(queue_list, "name", ("name",), "queue list")
    return LiveState(
        agents={a.name: a for a in _agents(agents)},
        tiers={t.key: t for t in _tiers(tiers)},
        queues={q.name: q for q in _queues(queues)},
        unparsed=tuple(agents.unparsed + tiers.unparsed + queues.unparsed),
    )


# --- the people side: agents' runtime facts and callers in queues ------------------------

MEMBER_COLUMNS = ("queue", "uuid", "cid_number", "cid_name", "joined_epoch", "state")
LIVE_MEMBER_STATES = ("Waiting", "Trying", "Answered")  # callers still in the queue


@dataclass(frozen=True, slots=True)
class ListedAgentPresence:
    """An agent's runtime facts as ``agent list`` shows them."""

    name: str
    status: str
    state: str
    calls_answered: int
    last_status_change: int  # epoch seconds, 0 = never


@dataclass(frozen=True, slots=True)
class ListedMember:
    """A caller as ``queue list members <queue>`` shows it."""

    queue: str
    uuid: str
    cid_number: str
    cid_name: str
    joined_epoch: int
    state: str
    serving_agent: str


def parse_agent_presence(text: str) -> list[ListedAgentPresence]:
    """``agent list`` -> every agent's status, state and counters (unreadable rows skipped)."""
    table = read_table(text, "name", ("name", "status", "state"), "agent list")
    return [
        ListedAgentPresence(
            name=row["name"],
            status=row["status"],
            state=row["state"],
            calls_answered=number(row.get("calls_answered", ""), "agent list calls_answered"),
            last_status_change=number(
                row.get("last_status_change", ""), "agent list last_status_change"
            ),
        )
        for row in table.rows
    ]


def parse_member_list(text: str) -> list[ListedMember]:
    """``queue list members <queue>`` -> the callers still in it (an Abandoned row stays
    listed a while for a possible resume; it is no longer a caller in the queue)."""
    table = read_table(text, "queue", MEMBER_COLUMNS, "queue list members")
    return [
        ListedMember(
            queue=row["queue"],
            uuid=row["uuid"],
            cid_number=row["cid_number"],
            cid_name=row["cid_name"],
            joined_epoch=number(row["joined_epoch"], "queue list members joined_epoch"),
            state=row["state"],
            serving_agent=row.get("serving_agent", ""),
        )
        for row in table.rows
        if row["state"] in LIVE_MEMBER_STATES
    ]

"""Normalized, hashable records shared by desired state (specs), actual state (Postgres) and
the served snapshot; plus the one place that knows FreeSWITCH's ``name@domain`` rule.

Records hold no tenant id: they live inside a ``TenantState`` that does. Secrets are not
records: SIP credentials never enter the planner, so a plan can never print one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar

from specs_schema.agents import AgentType

PUBLIC_CONTEXT = "public"


class Kind(StrEnum):
    """Resource kinds: a tenant's in parent -> child order (creates run in this order,
    deletes reversed), then the platform's (objects of no tenant, ``_platform.yaml``)."""

    TENANT = "tenant"
    EXTENSION = "extension"
    USER = "user"
    AGENT = "agent"
    QUEUE = "queue"
    TIER = "tier"
    INBOUND_NUMBER = "inbound_number"
    OUTBOUND = "outbound"
    OUTBOUND_ROUTE = "outbound_route"
    PLATFORM_ADMIN = "platform_admin"
    GATEWAY = "gateway"


PLATFORM_KINDS: tuple[Kind, ...] = (Kind.PLATFORM_ADMIN, Kind.GATEWAY)
"""Kinds of the platform scope, in parent -> child order."""

KIND_ORDER: tuple[Kind, ...] = tuple(k for k in Kind if k not in PLATFORM_KINDS)
"""Kinds of a tenant scope, in parent -> child order."""

PLATFORM = "_platform"
"""The platform scope's id where a tenant id would stand (a change's scope, a history row):
tenant ids start with a letter, so it can never name a tenant; it is the stem of the file
that declares the platform, ``_platform.yaml``."""


class TenantLifecycle(StrEnum):
    """Stored tenant status. ``orphaned``: its file left git; kept, not served, prunable."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ORPHANED = "orphaned"


def fs_name(name: str, domain: str) -> str:
    """FreeSWITCH name of a tenant's queue or agent: the single home of the rule."""
    return f"{name}@{domain}"


def user_contact(extension: str, domain: str) -> str:
    """Agent contact derived from the extension it answers on: the rule's one home, with
    its parse (``user_contact_extension``) below."""
    return f"user/{extension}@{domain}"


def user_contact_extension(contact: str, domain: str) -> str | None:
    """The extension of a ``user/<digits>@<domain>`` contact on ``domain`` (compared
    case-insensitively), else None: what ``user_contact`` built, read back."""
    number, at, _ = contact.removeprefix("user/").partition("@")
    if not contact.startswith("user/") or not at or not (number.isascii() and number.isdigit()):
        return None
    return number if user_contact(number, domain) == contact.lower() else None


def fs_agent_type(agent_type: str) -> str:
    """The exact spelling mod_callcenter uses (it stores what it is sent, case included)."""
    return "Callback" if agent_type == AgentType.CALLBACK else agent_type


class Record:
    """Mixin: records compare field by field and render as plain dicts."""

    kind: ClassVar[Kind]

    @property
    def key(self) -> str:
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    def changed_fields(self, other: Record) -> dict[str, tuple[Any, Any]]:
        """``{field: (self value, other value)}`` for every field that differs."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) != getattr(other, f.name)
        }


@dataclass(frozen=True, slots=True)
class Tenant(Record):
    kind: ClassVar[Kind] = Kind.TENANT
    id: str
    domain: str
    name: str
    status: str
    extension_min: int = 2
    extension_max: int = 6
    call_timeout: int = 30
    outbound_caller_id_name: str | None = None
    outbound_caller_id_number: str | None = None
    feature_available: str = "*22"
    feature_on_break: str = "*23"
    feature_logged_out: str = "*24"

    @property
    def key(self) -> str:
        return self.id

    @property
    def served(self) -> bool:
        """Only active tenants are served to FreeSWITCH or pushed to mod_callcenter."""
        return self.status == TenantLifecycle.ACTIVE


@dataclass(frozen=True, slots=True)
class Extension(Record):
    kind: ClassVar[Kind] = Kind.EXTENSION
    number: str
    name: str
    caller_id_name: str | None = None
    caller_id_number: str | None = None
    enabled: bool = True
    call_timeout: int | None = None
    max_registrations: int = 3
    voicemail_enabled: bool = False
    voicemail_max_message_seconds: int = 120
    voicemail_pin_on_own_phone: bool = True
    voicemail_greeting: str | None = None  # a sound (``tenant:`` or FreeSWITCH's), as declared
    record: str = "none"  # inbound | outbound | all | none
    calling_right: str = "internal"  # internal | local | national | international

    @property
    def key(self) -> str:
        return self.number


@dataclass(frozen=True, slots=True)
class User(Record):
    kind: ClassVar[Kind] = Kind.USER
    email: str
    name: str
    role: str
    extensions: tuple[str, ...] = ()  # sorted

    @property
    def key(self) -> str:
        return self.email


@dataclass(frozen=True, slots=True)
class Agent(Record):
    """``contact`` is always resolved (derived from ``extension`` when that is given)."""

    kind: ClassVar[Kind] = Kind.AGENT
    name: str
    type: str
    contact: str
    extension: str | None = None
    max_no_answer: int = 3
    wrap_up_time: int = 10
    reject_delay_time: int = 10
    busy_delay_time: int = 60
    no_answer_delay_time: int = 60
    initial_status: str | None = None

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Queue(Record):
    """Field names are mod_callcenter's params with ``_`` for ``-``."""

    kind: ClassVar[Kind] = Kind.QUEUE
    name: str
    number: str
    strategy: str = "longest-idle-agent"
    moh_sound: str | None = None
    announce_sound: str | None = None
    announce_frequency: int = 0
    record_template: str | None = None
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
    ring_progressively_delay: int = 0
    skip_agents_with_external_calls: bool = True
    agent_no_answer_status: str = "On Break"

    @property
    def key(self) -> str:
        return self.name

    def callcenter_params(self) -> dict[str, str]:
        """Params as mod_callcenter's XML spells them (dashes, lowercase booleans, no
        ``number``: the dial number is ours, not the switch's)."""
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name in ("name", "number"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out[f.name.replace("_", "-")] = text
        return out


QUEUE_PARAM_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Queue) if f.name not in ("name", "number")
)


@dataclass(frozen=True, slots=True)
class Tier(Record):
    kind: ClassVar[Kind] = Kind.TIER
    queue: str
    agent: str
    level: int = 1
    position: int = 1

    @property
    def key(self) -> str:
        return f"{self.queue}/{self.agent}"


@dataclass(frozen=True, slots=True)
class InboundNumber(Record):
    kind: ClassVar[Kind] = Kind.INBOUND_NUMBER
    number: str
    destination_kind: str  # "extension" | "queue"
    destination: str

    @property
    def key(self) -> str:
        return self.number


OUTBOUND_KEY = "outbound"


@dataclass(frozen=True, slots=True)
class Outbound(Record):
    """A tenant's outbound calling: at most one (none: no outside call is placed). The
    caller ids are resolved (``outbound.caller_id``, else ``settings.outbound_caller_id``;
    the emergency one falls back to it) and checked against the tenant's own numbers."""

    kind: ClassVar[Kind] = Kind.OUTBOUND
    country: str
    caller_id_number: str
    caller_id_name: str | None = None
    area_code: str | None = None
    emergency_caller_id_number: str | None = None
    emergency_numbers: tuple[str, ...] = ()  # empty: all of the country's
    max_concurrent: int = 2
    calls_per_minute: int = 5
    international: bool = False

    @property
    def key(self) -> str:
        return OUTBOUND_KEY


def outbound_from_values(values: Sequence[Any]) -> Outbound:
    """An ``Outbound`` from its field values in order, lists (a database array, JSON)
    taken as the tuples the record holds."""
    fixed: list[Any] = [tuple(v) if isinstance(v, list) else v for v in values]
    return Outbound(*fixed)


@dataclass(frozen=True, slots=True)
class OutboundRoute(Record):
    """Numbers of one class (or E.164 prefix) leave through these gateways, in order."""

    kind: ClassVar[Kind] = Kind.OUTBOUND_ROUTE
    match: str
    gateways: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.match


@dataclass(frozen=True)
class TenantState:
    """Everything one tenant holds, keyed per kind by each record's ``key``."""

    tenant: Tenant
    extensions: Mapping[str, Extension] = field(default_factory=dict)
    users: Mapping[str, User] = field(default_factory=dict)
    agents: Mapping[str, Agent] = field(default_factory=dict)
    queues: Mapping[str, Queue] = field(default_factory=dict)
    tiers: Mapping[str, Tier] = field(default_factory=dict)
    inbound_numbers: Mapping[str, InboundNumber] = field(default_factory=dict)
    outbound: Mapping[str, Outbound] = field(default_factory=dict)
    outbound_routes: Mapping[str, OutboundRoute] = field(default_factory=dict)

    def records(self, kind: Kind) -> Mapping[str, Record]:
        """Records of one kind (the tenant itself for ``Kind.TENANT``)."""
        if kind is Kind.TENANT:
            return {self.tenant.key: self.tenant}
        return getattr(self, COLLECTION_OF[kind])  # type: ignore[no-any-return]


COLLECTION_OF: Mapping[Kind, str] = {
    Kind.EXTENSION: "extensions",
    Kind.USER: "users",
    Kind.AGENT: "agents",
    Kind.QUEUE: "queues",
    Kind.TIER: "tiers",
    Kind.INBOUND_NUMBER: "inbound_numbers",
    Kind.OUTBOUND: "outbound",
    Kind.OUTBOUND_ROUTE: "outbound_routes",
}


State = Mapping[str, TenantState]


@dataclass(frozen=True, slots=True)
class PlatformAdmin(Record):
    """A super admin of ``_platform.yaml``; ``email`` is lowercased (the table's key)."""

    kind: ClassVar[Kind] = Kind.PLATFORM_ADMIN
    email: str
    name: str

    @property
    def key(self) -> str:
        return self.email


@dataclass(frozen=True, slots=True)
class CarrierSettings:
    """What a switch is told of a carrier gateway, password aside: declared once for the
    record (``Gateway``) and the served snapshot's form (``serve.gateways.ServedGateway``).
    ``codecs`` is comma-joined."""

    name: str
    proxy: str
    registrar: str
    realm: str
    username: str | None
    register: bool
    transport: str
    expire_seconds: int
    retry_seconds: int
    ping_seconds: int
    caller_id_in_from: bool
    codecs: str


@dataclass(frozen=True, slots=True)
class Gateway(Record, CarrierSettings):
    """A carrier gateway of ``_platform.yaml``: carried onto the switches when it has a proxy
    (``managed``), else only a name agent contacts may use. ``credentials`` is a marker,
    never the password: ``none`` (no username), ``missing`` (the host holds no password:
    this gateway is in error) or a slow salted digest that changes with the password
    (``reconciler.sources.secrets``). ``nodes`` is comma-joined (empty: every switch)."""

    kind: ClassVar[Kind] = Kind.GATEWAY
    nodes: str
    credentials: str

    @property
    def key(self) -> str:
        return self.name

    @property
    def managed(self) -> bool:
        """Carried onto the switches by the reconciler; False: a name only in
        ``_platform.yaml``, a gateway managed outside (never created or removed)."""
        return self.proxy != ""

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.nodes.split(",") if n)

    def carried_by(self, node: str, host: str) -> bool:
        """True on every switch when no node is named, else on those named by their
        ``host:port`` or their host."""
        names = self.node_names
        return not names or node in names or host in names


@dataclass(frozen=True)
class PlatformState:
    """Everything the platform scope holds, keyed per kind like ``TenantState``."""

    admins: Mapping[str, PlatformAdmin] = field(default_factory=dict)
    gateways: Mapping[str, Gateway] = field(default_factory=dict)

    def records(self, kind: Kind) -> Mapping[str, Record]:
        return getattr(self, PLATFORM_COLLECTION_OF[kind])  # type: ignore[no-any-return]

    @classmethod
    def of_admins(cls, admins: Mapping[str, str]) -> PlatformState:
        """From ``{email: name}`` (the file's list, or the table's rows)."""
        records = (PlatformAdmin(email.lower(), name) for email, name in admins.items())
        return cls(admins={r.email: r for r in sorted(records, key=lambda r: r.email)})

    def with_gateways(self, gateways: Iterable[Gateway]) -> PlatformState:
        return replace(self, gateways={g.name: g for g in sorted(gateways, key=lambda g: g.name)})


PLATFORM_COLLECTION_OF: Mapping[Kind, str] = {
    Kind.PLATFORM_ADMIN: "admins",
    Kind.GATEWAY: "gateways",
}

RECORD_TYPES: Mapping[Kind, type[Record]] = {
    Kind.TENANT: Tenant,
    Kind.EXTENSION: Extension,
    Kind.USER: User,
    Kind.AGENT: Agent,
    Kind.QUEUE: Queue,
    Kind.TIER: Tier,
    Kind.INBOUND_NUMBER: InboundNumber,
    Kind.OUTBOUND: Outbound,
    Kind.OUTBOUND_ROUTE: OutboundRoute,
    Kind.PLATFORM_ADMIN: PlatformAdmin,
    Kind.GATEWAY: Gateway,
}

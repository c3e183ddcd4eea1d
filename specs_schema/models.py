"""The public YAML contract: pydantic models of one tenant file and of the platform file.

Key names are fixed by ``shared/SPEC-EXAMPLE.yaml``; fields may be added, never renamed.
Every string that reaches FreeSWITCH (XML attributes, ESL command arguments, ``|``-separated
``callcenter_config`` listings) has one of the allow-listed shapes of ``specs_schema.shapes``:
a tenant file is hostile input and FreeSWITCH expands variables in many of these places.
Display names may hold printable Unicode (templates escape it), but no invisible or
direction-changing characters, and no ``$``/``{``/``}`` where FreeSWITCH receives them.

Cross-reference rules (numbers that clash, tiers naming unknown agents, ...) live in
``specs_schema.rules``; this module only describes shapes, types and ranges.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from specs_schema import shapes
from specs_schema.agents import AgentStatus, AgentType
from specs_schema.numbering import COUNTRIES, CallingRight

# --- constrained strings -------------------------------------------------------------

# Shapes shared with the reconciler (which re-checks at render and ESL time) live in
# specs_schema.shapes; the ones below only matter to the YAML contract.
TENANT_ID_PATTERN = shapes.TENANT_ID_PATTERN
SLUG_PATTERN = shapes.SLUG_PATTERN
DOMAIN_PATTERN = shapes.DOMAIN_PATTERN
DIGITS_PATTERN = shapes.DIGITS_PATTERN
E164_PATTERN = shapes.E164_PATTERN
GATEWAY_PATTERN = shapes.GATEWAY_PATTERN
CONTACT_PATTERN = shapes.GATEWAY_CONTACT_PATTERN
SOUND_PATTERN = shapes.SOUND_PATTERN
RECORD_TEMPLATE_PATTERN = shapes.RECORD_TEMPLATE_PATTERN
FEATURE_CODE_PATTERN = r"^[*#]?[0-9]{1,10}$"
CALLER_ID_NUMBER_PATTERN = r"^\+?[0-9]{1,20}$"
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&*+/=?^_`{}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$"


def _display_name(value: str) -> str:
    """Any printable Unicode, but nothing that hides what a name says (bidi overrides,
    invisible characters) or breaks lines; the message names the character."""
    problem = shapes.display_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _fs_display_name(value: str) -> str:
    """A display name FreeSWITCH receives (directory variables): no ``$``, ``{``, ``}``."""
    problem = shapes.display_name_problem(value, reaches_freeswitch=True)
    if problem is not None:
        raise ValueError(problem)
    return value


def _lower(value: str) -> str:
    return value.lower()


TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Domain = Annotated[
    str, StringConstraints(pattern=DOMAIN_PATTERN, max_length=253), AfterValidator(_lower)
]
Digits = Annotated[str, StringConstraints(pattern=DIGITS_PATTERN)]
FeatureCode = Annotated[str, StringConstraints(pattern=FEATURE_CODE_PATTERN)]
E164 = Annotated[str, StringConstraints(pattern=E164_PATTERN)]
CallerIdNumber = Annotated[str, StringConstraints(pattern=CALLER_ID_NUMBER_PATTERN)]
Email = Annotated[
    str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254), AfterValidator(_lower)
]
_NAME_LENGTH = StringConstraints(min_length=1, max_length=shapes.DISPLAY_NAME_MAX_LENGTH)
DisplayName = Annotated[str, _NAME_LENGTH, AfterValidator(_display_name)]
FsDisplayName = Annotated[str, _NAME_LENGTH, AfterValidator(_fs_display_name)]
"""A display name that reaches FreeSWITCH (extension and caller id names)."""
GatewayName = Annotated[str, StringConstraints(pattern=GATEWAY_PATTERN)]
Contact = Annotated[str, StringConstraints(pattern=CONTACT_PATTERN)]
SoundPath = Annotated[
    str, StringConstraints(pattern=SOUND_PATTERN, max_length=shapes.SOUND_MAX_LENGTH)
]
RecordTemplate = Annotated[
    str,
    StringConstraints(
        pattern=RECORD_TEMPLATE_PATTERN, max_length=shapes.RECORD_TEMPLATE_MAX_LENGTH
    ),
]
Number = Annotated[int, Strict()]
"""An integer written as one: YAML's ``true`` (a bool, which Python counts as 1), ``"30"`` or
``30.0`` are errors, never quietly converted."""
Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` unquoted: ``"no"`` or ``0`` are errors, never quietly converted."""
Seconds = Annotated[Number, Field(ge=0, le=86400)]


class _Spec(BaseModel):
    """Strict base: unknown keys are errors (typos must not silently do nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# --- enums ---------------------------------------------------------------------------


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    MEMBER = "member"


class Strategy(StrEnum):
    RING_ALL = "ring-all"
    RING_PROGRESSIVELY = "ring-progressively"
    LONGEST_IDLE_AGENT = "longest-idle-agent"
    ROUND_ROBIN = "round-robin"
    TOP_DOWN = "top-down"
    AGENT_WITH_LEAST_TALK_TIME = "agent-with-least-talk-time"
    AGENT_WITH_FEWEST_CALLS = "agent-with-fewest-calls"
    SEQUENTIALLY_BY_AGENT_ORDER = "sequentially-by-agent-order"
    RANDOM = "random"


class TimeBaseScore(StrEnum):
    QUEUE = "queue"
    SYSTEM = "system"


# --- tenant settings -----------------------------------------------------------------


class ExtensionLength(_Spec):
    """Allowed digit count of extension numbers in this tenant."""

    min: Number = Field(default=2, ge=1, le=15)
    max: Number = Field(default=6, ge=1, le=15)

    @model_validator(mode="after")
    def _ordered(self) -> ExtensionLength:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class CallerId(_Spec):
    """Caller id sent with calls: FreeSWITCH reads it from directory variables."""

    name: FsDisplayName | None = None
    number: CallerIdNumber | None = None


class FeatureCodes(_Spec):
    """Codes agents dial to set their own mod_callcenter status (how agents log in)."""

    agent_available: FeatureCode = "*22"
    agent_on_break: FeatureCode = "*23"
    agent_logged_out: FeatureCode = "*24"


class VoicemailDefaults(_Spec):
    """The tenant's default for every extension's ``voicemail:`` (each key may be overridden
    per extension). Off unless declared: an unanswered call then just ends, as before."""

    enabled: Flag = False
    max_message_seconds: Number = Field(
        default=120,
        ge=shapes.VOICEMAIL_MESSAGE_SECONDS.start,
        le=shapes.VOICEMAIL_MESSAGE_SECONDS[-1],
        multiple_of=shapes.VOICEMAIL_MESSAGE_SECONDS.step,
        description="Longest message a caller may leave: 30 to 600 seconds, in steps of 30.",
    )
    pin_on_own_phone: Flag = Field(
        default=True,
        description="Checking your own box (*97) from its own extension asks its PIN; "
        "false: the registered phone is proof enough. Any box (*98) always asks.",
    )


class ExtensionVoicemail(_Spec):
    """One extension's box; an omitted key takes the tenant's ``settings.voicemail``. The
    PIN is generated by the reconciler, like the SIP password, and never lives in git."""

    enabled: Flag | None = None
    max_message_seconds: Number | None = Field(
        default=None,
        ge=shapes.VOICEMAIL_MESSAGE_SECONDS.start,
        le=shapes.VOICEMAIL_MESSAGE_SECONDS[-1],
        multiple_of=shapes.VOICEMAIL_MESSAGE_SECONDS.step,
    )
    pin_on_own_phone: Flag | None = None
    greeting: SoundPath | None = Field(
        default=None,
        description="What a caller hears before leaving a message: a tenant sound from git "
        "(tenant:greetings/1001.wav) or a FreeSWITCH sound; else mod_voicemail's own.",
    )
    retention: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{0,4}d$",
        description="Days this box keeps a message, e.g. 30d; else the tenant's "
        "retention.voicemail, the platform's, or 90 days.",
    )
    pin: SkipJsonSchema[object] = Field(default=None, exclude=True, repr=False)

    @field_validator("pin", mode="before")
    @classmethod
    def _no_pin(cls, value: object) -> object:
        raise ValueError(
            "not allowed: voicemail PINs are generated by the reconciler, stored only in the "
            "database and never live in git; remove this key and use "
            "`pbx credentials show TENANT EXTENSION --pin`"
        )


class Settings(_Spec):
    extension_length: ExtensionLength = ExtensionLength()
    call_timeout: Number = Field(
        default=30, ge=5, le=600, description="Seconds an extension rings."
    )
    outbound_caller_id: CallerId | None = None
    feature_codes: FeatureCodes = FeatureCodes()
    voicemail: VoicemailDefaults = VoicemailDefaults()


RETENTION_PATTERN = r"^[1-9][0-9]{0,4}d$"
Days = Annotated[
    str,
    StringConstraints(pattern=RETENTION_PATTERN),
    Field(description="A number of days, e.g. 90d."),
]


class Retention(_Spec):
    """How long this tenant's history is kept; the daemon (its leader) deletes what is older.
    Call records default to 400 days. Audio (recordings, voicemail) left unset falls back to
    the platform's defaults (``_platform.yaml``), else is kept forever."""

    calls: str = Field(
        default="400d",
        pattern=RETENTION_PATTERN,
        description="Call records, in days: e.g. 400d.",
    )
    voicemail: Days | None = None
    recordings: Days | None = None

    @property
    def calls_days(self) -> int:
        return int(self.calls[:-1])


# --- resources -----------------------------------------------------------------------


class UserSpec(_Spec):
    """A person, decoupled from SIP endpoints: owns zero or many extensions."""

    email: Email
    name: DisplayName
    role: Role = Role.MEMBER
    extensions: list[Digits] = Field(default_factory=list)


class RecordMode(StrEnum):
    """Which calls of an extension are recorded into the tenant's recordings."""

    INBOUND = "inbound"  # calls it answers
    OUTBOUND = "outbound"  # calls it makes
    ALL = "all"
    NONE = "none"


class ExtensionSpec(_Spec):
    """A SIP endpoint. Its password is generated by the reconciler and never lives in git."""

    number: Digits
    name: FsDisplayName
    caller_id: CallerId | None = None
    enabled: Flag = True
    call_timeout: Number | None = Field(default=None, ge=5, le=600)
    max_registrations: Number = Field(default=3, ge=1, le=100)
    voicemail: ExtensionVoicemail = ExtensionVoicemail()
    record: RecordMode = RecordMode.NONE
    calling_right: CallingRight | None = Field(
        default=None,
        description="How far this extension may call out: internal, local, national or "
        "international; omitted: the tenant's outbound.default_calling_right. Emergency "
        "numbers are always allowed.",
    )
    # Declared only to reject it with a useful message; never stored, never in the schema.
    password: SkipJsonSchema[object] = Field(default=None, exclude=True, repr=False)

    @field_validator("password", mode="before")
    @classmethod
    def _no_password(cls, value: object) -> object:
        raise ValueError(
            "not allowed: SIP passwords are generated by the reconciler, stored only in the "
            "database and never live in git; remove this key and use "
            "`pbx credentials show TENANT EXTENSION` to provision a phone"
        )


class AgentSpec(_Spec):
    """A mod_callcenter agent ``<name>@<domain>``; exactly one of extension/contact."""

    name: Slug
    extension: Digits | None = None
    contact: Contact | None = Field(
        default=None,
        description="sofia/gateway/<gateway>/<E.164 number>, the gateway declared in "
        "_platform.yaml `gateways:`; to ring an extension of this tenant give `extension:`.",
    )
    type: AgentType = AgentType.CALLBACK
    max_no_answer: Number = Field(default=3, ge=0, le=1000)
    wrap_up_time: Seconds = 10
    reject_delay_time: Seconds = 10
    busy_delay_time: Seconds = 60
    no_answer_delay_time: Seconds = 60
    initial_status: AgentStatus | None = Field(
        default=None,
        description="Set once, when the agent is first created; runtime status belongs "
        "to the agent afterwards.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> AgentSpec:
        if (self.extension is None) == (self.contact is None):
            raise ValueError("give exactly one of 'extension' or 'contact'")
        return self


class TierSpec(_Spec):
    agent: Slug
    level: Number = Field(default=1, ge=0, le=1000)
    position: Number = Field(default=1, ge=0, le=1000)


class QueueSpec(_Spec):
    """A mod_callcenter queue ``<name>@<domain>``; defaults are mod_callcenter's own."""

    name: Slug
    number: Digits
    strategy: Strategy = Strategy.LONGEST_IDLE_AGENT
    moh_sound: SoundPath | None = None
    announce_sound: SoundPath | None = None
    announce_frequency: Seconds = 0
    record_template: RecordTemplate | None = Field(
        default=None,
        description="Path in the tenant's recordings storage; placeholders {uuid}, {date}, "
        "{time}, {queue}; ends .wav or .mp3 (e.g. support/{date}/{uuid}.wav).",
    )
    time_base_score: TimeBaseScore = TimeBaseScore.QUEUE
    tier_rules_apply: Flag = False
    tier_rule_wait_second: Seconds = 0
    tier_rule_wait_multiply_level: Flag = False
    tier_rule_no_agent_no_wait: Flag = True
    discard_abandoned_after: Seconds = 60
    abandoned_resume_allowed: Flag = False
    max_wait_time: Seconds = 0
    max_wait_time_with_no_agent: Seconds = 0
    max_wait_time_with_no_agent_time_reached: Seconds = 5
    ring_progressively_delay: Seconds = 0
    skip_agents_with_external_calls: Flag = True
    agent_no_answer_status: AgentStatus = AgentStatus.ON_BREAK
    tiers: list[TierSpec] = Field(default_factory=list)


class Destination(_Spec):
    """Where a DID lands: exactly one extension or queue of the same tenant."""

    extension: Digits | None = None
    queue: Slug | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Destination:
        if (self.extension is None) == (self.queue is None):
            raise ValueError("give exactly one of 'extension' or 'queue'")
        return self


class InboundNumberSpec(_Spec):
    """A DID (E.164) arriving in the ``public`` context, routed inside its tenant."""

    number: E164
    destination: Destination


# --- outbound calling ------------------------------------------------------------------

ROUTE_PREFIX_PATTERN = shapes.ROUTE_PREFIX_PATTERN
ROUTE_MATCH_PATTERN = shapes.ROUTE_MATCH_PATTERN
COUNTRY_PATTERN = r"^[A-Z]{2}$"
AREA_CODE_PATTERN = r"^[1-9][0-9]{0,4}$"
RouteMatch = Annotated[
    str,
    StringConstraints(pattern=ROUTE_MATCH_PATTERN),
    Field(
        description="A number class (emergency, local, national, international) or an "
        "E.164 prefix such as +44 (the longest matching prefix wins over classes)."
    ),
]


def _supported_country(value: str) -> str:
    if value not in COUNTRIES:
        supported = ", ".join(sorted(COUNTRIES))
        raise ValueError(f"unsupported country {value!r}; supported: {supported}")
    return value


CountryCode = Annotated[
    str, StringConstraints(pattern=COUNTRY_PATTERN), AfterValidator(_supported_country)
]


class OutboundRouteSpec(_Spec):
    """Where one class (or E.164 prefix) of numbers leaves: the platform's gateways in
    order, the next tried when one fails (never after busy or no answer)."""

    match: RouteMatch
    gateways: list[GatewayName] = Field(min_length=1, max_length=5)

    @field_validator("gateways")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a gateway is listed twice")
        return value


class OutboundCallerId(_Spec):
    """The caller id presented on outside calls: one of the tenant's own DIDs, or a
    number ``_platform.yaml`` allows it (``outbound_caller_ids``)."""

    name: FsDisplayName | None = None
    number: E164


class OutboundLimits(_Spec):
    """Toll-fraud brakes, per switch node. Safe unless raised: 2 calls at once, 5 a
    minute, no international calls at all."""

    max_concurrent: Number = Field(default=2, ge=1, le=1000)
    calls_per_minute: Number = Field(default=5, ge=1, le=6000)
    international: Flag = Field(
        default=False, description="International calls are refused unless this is true."
    )


class EmergencySpec(_Spec):
    """Emergency numbers are always allowed, from any extension, without limits."""

    caller_id: E164 | None = Field(
        default=None,
        description="The number presented on emergency calls (default: the outbound "
        "caller id); an own DID or a number the platform allows.",
    )
    numbers: list[Digits] | None = Field(
        default=None,
        description="The emergency numbers dialled (default: all of the country's); only "
        "the country's own emergency numbers may be listed.",
    )


class OutboundSpec(_Spec):
    """How this tenant calls outside numbers. Absent: no outside call is ever placed."""

    country: CountryCode
    area_code: Annotated[str, StringConstraints(pattern=AREA_CODE_PATTERN)] | None = Field(
        default=None,
        description="National prefix of the tenant's own area: its numbers are 'local' "
        "(and in the NANP may be dialled with 7 digits).",
    )
    caller_id: OutboundCallerId | None = Field(
        default=None, description="Default: settings.outbound_caller_id."
    )
    default_calling_right: CallingRight = CallingRight.INTERNAL
    routes: list[OutboundRouteSpec] = Field(default_factory=list)
    emergency: EmergencySpec = EmergencySpec()
    limits: OutboundLimits = OutboundLimits()


class TenantSpec(_Spec):
    """One tenant = one SIP domain = one PostgreSQL schema ``tenant_<id>``."""

    id: TenantId
    domain: Domain
    name: DisplayName
    status: TenantStatus = TenantStatus.ACTIVE
    settings: Settings = Settings()
    retention: Retention = Retention()
    users: list[UserSpec] = Field(default_factory=list)
    extensions: list[ExtensionSpec] = Field(default_factory=list)
    agents: list[AgentSpec] = Field(default_factory=list)
    queues: list[QueueSpec] = Field(default_factory=list)
    inbound_numbers: list[InboundNumberSpec] = Field(default_factory=list)
    outbound: OutboundSpec | None = None


class SuperAdmin(_Spec):
    email: Email
    name: DisplayName


class GatewayTransport(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


def _port_in_range(value: str) -> str:
    _, colon, port = value.rpartition(":") if not value.endswith("]") else ("", "", "")
    if colon and port.isdigit() and int(port) > 65535:
        raise ValueError(f"port {port} is not in 1..65535")
    return value


HostPort = Annotated[
    str,
    StringConstraints(pattern=shapes.HOST_PORT_PATTERN, max_length=260),
    AfterValidator(_port_in_range),
]
Host = Annotated[str, StringConstraints(pattern=shapes.HOST_PATTERN, max_length=253)]
SipUser = Annotated[str, StringConstraints(pattern=shapes.SIP_USER_PATTERN)]
Codec = Annotated[str, StringConstraints(pattern=shapes.CODEC_PATTERN)]
NodeName = Annotated[
    str,
    StringConstraints(pattern=shapes.NODE_PATTERN, max_length=260),
    AfterValidator(_port_in_range),
]


class GatewaySpec(_Spec):
    """A carrier gateway of the platform's ``carriers`` SIP profile; agents of any tenant
    may be reached through it (``contact: sofia/gateway/<name>/<E.164>``).

    With ``proxy`` the reconciler carries it onto the switches (``nodes``, default all) and
    keeps it there; its password is never in git but in the host's secrets source
    (``PBX_SECRETS_FILE`` or ``PBX_GATEWAY_<NAME>_PASSWORD``). A gateway with a name only
    is managed outside the reconciler (a file on the node): usable by contacts, never
    created or removed."""

    name: GatewayName
    proxy: HostPort | None = None
    registrar: HostPort | None = None
    """Where REGISTER goes (FreeSWITCH's ``register-proxy``); default: ``proxy``."""
    realm: Host | None = None
    """Digest realm and From host; default: ``proxy``'s host."""
    username: SipUser | None = None
    register_: Flag = Field(False, alias="register")
    """Register with the carrier (``register`` in YAML; pydantic's own ``register`` is an
    attribute of every model)."""
    transport: GatewayTransport = GatewayTransport.UDP
    expire_seconds: Annotated[Number, Field(ge=60, le=86400)] = 3600
    retry_seconds: Annotated[Number, Field(ge=5, le=3600)] = 30
    ping_seconds: Annotated[Number, Field(ge=0, le=3600)] = 0
    """OPTIONS ping interval; 0: no ping."""
    caller_id_in_from: Flag = True
    codecs: list[Codec] = Field(default_factory=list, max_length=16)
    """Offered in this order (empty: the profile's list)."""
    nodes: list[NodeName] | None = None
    """The switches that carry it, as ``--freeswitch`` names them (host or host:port);
    default: every switch."""

    @model_validator(mode="after")
    def _carried(self) -> GatewaySpec:
        if self.proxy is None:
            declared = {"register" if f == "register_" else f for f in self.model_fields_set}
            declared -= {"name"}
            if declared:
                raise ValueError(
                    f"'{sorted(declared)[0]}' needs 'proxy': a gateway with a name only is "
                    "managed outside the reconciler"
                )
        elif self.register_ and self.username is None:
            raise ValueError("'register: true' needs 'username' (the account to register)")
        return self

    @property
    def managed(self) -> bool:
        """Carried onto the switches by the reconciler (declared with a proxy)."""
        return self.proxy is not None


class PlatformSpec(_Spec):
    """``tenants.d/_platform.yaml``: the platform itself (GitOps bootstrap of super admins,
    the carrier gateways agent contacts may use)."""

    super_admins: list[SuperAdmin] = Field(default_factory=list)
    gateways: list[GatewaySpec] = Field(default_factory=list)
    retention: Retention = Retention()
    outbound_caller_ids: dict[TenantId, list[E164]] = Field(
        default_factory=dict,
        description="Numbers a tenant may present as its outbound caller id besides its "
        "own DIDs (e.g. a number ported elsewhere), by tenant id.",
    )

    def gateway_names(self) -> frozenset[str]:
        """Names agent contacts may use in ``sofia/gateway/<name>/...``."""
        return frozenset(g.name for g in self.gateways)


FileKind = Literal["tenant", "platform"]
PLATFORM_FILE_STEM = "_platform"

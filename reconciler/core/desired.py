"""Specs -> records: a valid tenant file as the planner's desired state of that tenant.

Everything the switch will receive is decided from the spec here (contacts built from
extensions, names normalized) so the planner, the store and the served XML all see one
normalized value.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from reconciler.core.model import (
    Agent,
    Extension,
    Gateway,
    InboundNumber,
    Outbound,
    OutboundRoute,
    PlatformState,
    Queue,
    Tenant,
    TenantState,
    Tier,
    User,
    fs_agent_type,
    user_contact,
)
from specs_schema.models import GatewaySpec, PlatformSpec, TenantSpec


def tenant_state_from_spec(spec: TenantSpec) -> TenantState:
    """Desired state of one tenant: the spec normalized into records."""
    tenant = _tenant(spec)
    queues, tiers = _queues_and_tiers(spec)
    return TenantState(
        tenant=tenant,
        extensions=_keyed(_extensions(spec)),
        users=_keyed(_users(spec)),
        agents=_keyed(_agents(spec, tenant.domain)),
        queues=_keyed(queues),
        tiers=_keyed(tiers),
        inbound_numbers=_keyed(_inbound_numbers(spec)),
        outbound=_keyed(_outbound(spec)),
        outbound_routes=_keyed(_outbound_routes(spec)),
    )


def platform_state_from_spec(
    spec: PlatformSpec, credentials: Mapping[str, str] | None = None
) -> PlatformState:
    """The platform records ``_platform.yaml`` declares: super admins and gateways (those
    with a name only recorded as managed outside: never carried, never removed).
    ``credentials``: each gateway's marker from the host's secrets source (absent:
    ``missing`` when it has a username)."""
    admins = PlatformState.of_admins({a.email: a.name for a in spec.super_admins})
    markers = credentials or {}
    return admins.with_gateways(
        gateway_record(g, markers.get(g.name, "missing" if g.username else "none"))
        for g in spec.gateways
    )


def gateway_record(spec: GatewaySpec, credentials: str) -> Gateway:
    """One gateway: defaults made explicit (registrar and realm from the proxy); one with a
    name only has an empty proxy (managed outside)."""
    if spec.proxy is None:
        return Gateway(spec.name, "", "", "", None, False, "udp", 3600, 30, 0, True, "", "", "none")
    return Gateway(
        name=spec.name,
        proxy=spec.proxy,
        registrar=spec.registrar or spec.proxy,
        realm=spec.realm or host_of(spec.proxy),
        username=spec.username,
        register=spec.register_,
        transport=spec.transport.value,
        expire_seconds=spec.expire_seconds,
        retry_seconds=spec.retry_seconds,
        ping_seconds=spec.ping_seconds,
        caller_id_in_from=spec.caller_id_in_from,
        codecs=",".join(spec.codecs),
        nodes=",".join(spec.nodes or ()),
        credentials=credentials,
    )


def host_of(host_port: str) -> str:
    """``host`` of ``host[:port]`` (a bracketed IPv6 address keeps its brackets)."""
    if host_port.startswith("["):
        return host_port[: host_port.index("]") + 1]
    return host_port.partition(":")[0]


def _keyed(records: list[Any]) -> dict[str, Any]:
    return {r.key: r for r in records}


def _tenant(spec: TenantSpec) -> Tenant:
    s = spec.settings
    ocid = s.outbound_caller_id
    return Tenant(
        id=spec.id,
        domain=spec.domain.lower(),
        name=spec.name,
        status=str(spec.status),
        extension_min=s.extension_length.min,
        extension_max=s.extension_length.max,
        call_timeout=s.call_timeout,
        outbound_caller_id_name=ocid.name if ocid else None,
        outbound_caller_id_number=ocid.number if ocid else None,
        feature_available=s.feature_codes.agent_available,
        feature_on_break=s.feature_codes.agent_on_break,
        feature_logged_out=s.feature_codes.agent_logged_out,
    )


def _extensions(spec: TenantSpec) -> list[Extension]:
    """Each extension's voicemail is resolved here against the tenant's default, so the
    store and the switch see one effective value per box."""
    box = spec.settings.voicemail
    return [
        Extension(
            number=e.number,
            name=e.name,
            caller_id_name=e.caller_id.name if e.caller_id else None,
            caller_id_number=e.caller_id.number if e.caller_id else None,
            enabled=e.enabled,
            call_timeout=e.call_timeout,
            max_registrations=e.max_registrations,
            voicemail_enabled=_or(e.voicemail.enabled, box.enabled),
            voicemail_max_message_seconds=_or(
                e.voicemail.max_message_seconds, box.max_message_seconds
            ),
            voicemail_pin_on_own_phone=_or(e.voicemail.pin_on_own_phone, box.pin_on_own_phone),
            voicemail_greeting=e.voicemail.greeting,
            record=e.record.value,
            calling_right=sys.intern(
                str(
                    e.calling_right
                    or (spec.outbound.default_calling_right if spec.outbound else "internal")
                )
            ),
        )
        for e in spec.extensions
    ]


_T = TypeVar("_T")


def _lower(text: str) -> str:
    """``text`` lowercased, the spec's own string when it already is (``lower`` always
    copies; a copy per user is megabytes at 100,000 users). Enum values above are
    interned for the same reason: ``str`` of a ``StrEnum`` is a new string each time."""
    lowered = text.lower()
    return text if lowered == text else lowered


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _users(spec: TenantSpec) -> list[User]:
    return [
        User(
            email=_lower(u.email),
            name=u.name,
            role=sys.intern(str(u.role)),
            extensions=tuple(sorted(set(u.extensions))),
        )
        for u in spec.users
    ]


def _agents(spec: TenantSpec, domain: str) -> list[Agent]:
    return [
        Agent(
            name=a.name,
            type=sys.intern(fs_agent_type(str(a.type))),
            contact=a.contact if a.contact is not None else user_contact(a.extension or "", domain),
            extension=a.extension,
            max_no_answer=a.max_no_answer,
            wrap_up_time=a.wrap_up_time,
            reject_delay_time=a.reject_delay_time,
            busy_delay_time=a.busy_delay_time,
            no_answer_delay_time=a.no_answer_delay_time,
            initial_status=str(a.initial_status) if a.initial_status else None,
        )
        for a in spec.agents
    ]


def _queues_and_tiers(spec: TenantSpec) -> tuple[list[Queue], list[Tier]]:
    """Queue fields keep the spec's own spelling (``tenant:x.wav``, ``{uuid}``): what the
    switch gets is rendered at the edge, by one rule (``core.served.served_queue_params``)."""
    queues: list[Queue] = []
    tiers: list[Tier] = []
    for q in spec.queues:
        queues.append(Queue(**q.model_dump(mode="json", exclude={"tiers"})))
        tiers += [
            Tier(queue=q.name, agent=t.agent, level=t.level, position=t.position) for t in q.tiers
        ]
    return queues, tiers


def _inbound_numbers(spec: TenantSpec) -> list[InboundNumber]:
    return [
        InboundNumber(
            number=d.number,
            destination_kind="extension" if d.destination.extension is not None else "queue",
            destination=d.destination.extension or d.destination.queue or "",
        )
        for d in spec.inbound_numbers
    ]


def _outbound(spec: TenantSpec) -> list[Outbound]:
    """The tenant's outbound settings with caller ids resolved (validation made sure the
    numbers are the tenant's own)."""
    out = spec.outbound
    fallback = spec.settings.outbound_caller_id
    caller_id = out.caller_id if out else None
    number = caller_id.number if caller_id else (fallback.number if fallback else None)
    if out is None or number is None:
        return []
    name = caller_id.name if caller_id else (fallback.name if fallback else None)
    return [
        Outbound(
            country=out.country,
            caller_id_number=number,
            caller_id_name=name,
            area_code=out.area_code,
            emergency_caller_id_number=out.emergency.caller_id,
            emergency_numbers=tuple(out.emergency.numbers or ()),
            max_concurrent=out.limits.max_concurrent,
            calls_per_minute=out.limits.calls_per_minute,
            international=out.limits.international,
        )
    ]


def _outbound_routes(spec: TenantSpec) -> list[OutboundRoute]:
    routes = spec.outbound.routes if spec.outbound else []
    return [OutboundRoute(match=r.match, gateways=tuple(r.gateways)) for r in routes]

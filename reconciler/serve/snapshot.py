"""The served view of reconciled state: what mod_xml_curl may see, indexed for O(1) lookups.

Built (purely) from a ``State`` plus the A1 hashes the store keeps, swapped in whole by the
daemon, read by ``reconciler.serve.xmlcurl`` on every FreeSWITCH fetch, and saved to disk by
``reconciler.serve.persist`` so that a restart while PostgreSQL is down still serves.

What is served is decided here, once, so the request path never has to: only ACTIVE tenants
(``core.served``), only ENABLED extensions, only extensions that HAVE a well-formed A1 hash
(a ``<user>`` without ``a1-hash`` would be accepted without any password check), and only
records whose every served string passes ``reconciler.serve.inert`` (FreeSWITCH would expand
``${...}`` in them). What is left out on purpose is listed in ``Snapshot.problems``.

The snapshot holds only what templates may render: no tenant or extension display name that
FreeSWITCH never gets, so a template override cannot serve an unchecked string.

Neighbours: ``reconciler.core.model`` (records in), ``reconciler.serve.xmlcurl`` (lookups out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.gcpause import gc_paused
from reconciler.core.model import (
    Extension,
    Gateway,
    Queue,
    State,
    Tenant,
    TenantState,
    fs_name,
    user_contact_extension,
)
from reconciler.core.outbound import OutboundPolicy
from reconciler.core.recording_names import extension_recording
from reconciler.core.served import served_queue_params, served_tenants
from reconciler.core.voicemail import VOICEMAIL_ROUTES, tenant_storage, voicemail_profile
from reconciler.serve.gateways import ServedGateway, serve_gateways
from reconciler.serve.inert import shown, text_clean, text_problem, token_clean, token_problem
from specs_schema import shapes
from specs_schema.agents import AgentStatus
from specs_schema.shapes import GATEWAY_PATTERN, RECORD_PLACEHOLDERS, ROUTE_MATCH_PATTERN

_A1_HASH = re.compile(r"^[0-9a-f]{32}$")
_GATEWAY = re.compile(GATEWAY_PATTERN)
_ROUTE_MATCH = re.compile(ROUTE_MATCH_PATTERN)
_OUTSIDE_NUMBER = re.compile(r"^\+?[0-9]{1,16}$")
_EMPTY: Mapping[str, Any] = MappingProxyType({})
RECORD_TEMPLATE_PARAM = "record-template"
# queue params served verbatim that are names or paths rather than free text
_TOKEN_PARAMS = frozenset({"strategy", "moh-sound", "announce-sound", "time-base-score"})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


class RouteKind(StrEnum):
    """What a dialled number inside a tenant's context does."""

    EXTENSION = "extension"  # ring user/<number>@<domain>
    QUEUE = "queue"  # enter callcenter queue <name>@<domain>
    FEATURE = "feature"  # the calling agent sets its own mod_callcenter status
    VOICEMAIL = "voicemail"  # check a voicemail box: the caller's own, or any of the tenant


class DirectoryUser(NamedTuple):
    """One served extension: everything its ``<user>`` element needs, nothing secret but
    the A1 hash (which FreeSWITCH needs to check digests)."""

    number: str
    a1_hash: str
    caller_id_name: str
    caller_id_number: str
    max_registrations: int
    call_timeout: int
    agents: tuple[str, ...]  # FreeSWITCH names of the agents answering on this extension
    voicemail_profile: str = ""  # mod_voicemail profile taking its messages; "": no box
    vm_a1_hash: str = ""  # md5("<number>:<domain>:<PIN>"): mod_voicemail's PIN check
    vm_pin_on_own_phone: bool = True  # *97 from this extension asks the PIN
    # where its calls are recorded (``core.recording_names``), "" when they are not: the
    # call it answers, the call it makes
    record_inbound: str = ""
    record_outbound: str = ""
    calling_right: str = "internal"  # how far it may call out (``core.outbound``)

    @property
    def voicemail(self) -> bool:
        return bool(self.voicemail_profile)


class Route(NamedTuple):
    """A number in a tenant context. ``target``: the extension number to bridge, the queue's
    FreeSWITCH name, or the exact agent status a feature code sets."""

    kind: RouteKind
    number: str
    target: str
    call_timeout: int = 0  # extension routes only
    voicemail_profile: str = ""  # extension routes: where an unanswered call goes; "": none
    voicemail_greeting: str = ""  # the box's greeting as FreeSWITCH plays it; "": the module's


class DidRoute(NamedTuple):
    """A DID in the ``public`` context: lands on ``target`` inside ``context`` (the tenant's)."""

    number: str
    tenant_id: str
    context: str
    target: str


class QueueConfig(NamedTuple):
    """A queue as callcenter.conf serves it: FreeSWITCH name and dash-spelled params."""

    name: str
    tenant_id: str
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ServedTenant:
    """An active tenant: its domain is both its SIP realm and its dialplan context."""

    id: str
    domain: str
    outbound_caller_id_name: str | None
    outbound_caller_id_number: str | None
    users: Mapping[str, DirectoryUser] = field(default_factory=_empty)
    routes: Mapping[str, Route] = field(default_factory=_empty)
    outbound: OutboundPolicy | None = None  # None: no outside call is placed

    @property
    def context(self) -> str:
        return self.domain

    @property
    def voicemail_storage(self) -> str:
        return tenant_storage(self.id)


class Lookups(Protocol):
    """What answering a lookup reads: a ``Snapshot`` in memory, or a generation mapped by
    an xml_curl worker (``reconciler.serve.generation.MappedGeneration``)."""

    @property
    def generation(self) -> str: ...

    @property
    def queues(self) -> Mapping[str, QueueConfig]: ...

    def user(self, domain: str, number: str) -> tuple[ServedTenant, DirectoryUser] | None: ...

    def route(self, context: str, number: str) -> tuple[ServedTenant, Route] | None: ...

    def did(self, number: str) -> DidRoute | None: ...

    def queue(self, name: str) -> QueueConfig | None: ...

    @property
    def gateways(self) -> Mapping[str, ServedGateway]: ...

    def outbound(self, context: str) -> tuple[ServedTenant, OutboundPolicy] | None: ...

    def counts(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Immutable and self-contained: the request path reads it without locks or I/O.

    ``problems`` lists what was left out on purpose (clashing domains, DIDs with no served
    target, strings FreeSWITCH would expand, ...) so that the daemon can report it; serving
    never depends on it.
    """

    generation: str = ""
    tenants: Mapping[str, ServedTenant] = field(default_factory=_empty)  # by lowercased domain
    dids: Mapping[str, DidRoute] = field(default_factory=_empty)
    queues: Mapping[str, QueueConfig] = field(default_factory=_empty)  # by FreeSWITCH name, ordered
    problems: tuple[str, ...] = ()
    gateways: Mapping[str, ServedGateway] = field(default_factory=_empty)  # carriers', by name

    def tenant(self, domain: str) -> ServedTenant | None:
        """The served tenant of a SIP domain or dialplan context (case-insensitive)."""
        return self.tenants.get(domain.lower())

    def user(self, domain: str, number: str) -> tuple[ServedTenant, DirectoryUser] | None:
        tenant = self.tenants.get(domain.lower())
        if tenant is None:
            return None
        user = tenant.users.get(number)
        return None if user is None else (tenant, user)

    def route(self, context: str, number: str) -> tuple[ServedTenant, Route] | None:
        tenant = self.tenants.get(context.lower())
        if tenant is None:
            return None
        route = tenant.routes.get(number)
        return None if route is None else (tenant, route)

    def did(self, number: str) -> DidRoute | None:
        return self.dids.get(number)

    def queue(self, name: str) -> QueueConfig | None:
        return self.queues.get(name)

    def outbound(self, context: str) -> tuple[ServedTenant, OutboundPolicy] | None:
        """The outbound policy of the tenant whose context this is, never another's."""
        tenant = self.tenants.get(context.lower())
        if tenant is None or tenant.outbound is None:
            return None
        return tenant, tenant.outbound

    @property
    def user_count(self) -> int:
        return sum(len(t.users) for t in self.tenants.values())

    def counts(self) -> dict[str, int]:
        """Sizes for /status and logs."""
        return {
            "tenants": len(self.tenants),
            "users": self.user_count,
            "routes": sum(len(t.routes) for t in self.tenants.values()),
            "dids": len(self.dids),
            "queues": len(self.queues),
            **({"gateways": len(self.gateways)} if self.gateways else {}),
        }


FEATURE_STATUS: tuple[tuple[str, str], ...] = (
    ("feature_available", AgentStatus.AVAILABLE.value),
    ("feature_on_break", AgentStatus.ON_BREAK.value),
    ("feature_logged_out", AgentStatus.LOGGED_OUT.value),
)


def build_snapshot(
    state: State,
    a1_hashes: Mapping[tuple[str, str], str],
    *,
    voicemail_hashes: Mapping[tuple[str, str], str] | None = None,
    generation: str = "",
    freeze: bool = False,
    roots: AudioRoots = DEFAULT_ROOTS,
    gateways: Iterable[Gateway] = (),
) -> Snapshot:
    """The served view of ``state``. Pure; a tenant whose domain clashes with another's, a
    DID claimed twice and any record with a string FreeSWITCH would interpret are left out
    (fail closed) and listed in ``problems``.

    ``freeze=True`` is for the serving process: see ``reconciler.core.gcpause``. ``roots``
    are where the switch keeps each tenant's audio (a setting of the daemon)."""
    with gc_paused(freeze):
        snapshot = _build(state, Digests(a1_hashes, voicemail_hashes or {}), generation, roots)
    served, problems = serve_gateways(gateways)
    if not served and not problems:
        return snapshot
    return replace(snapshot, gateways=served, problems=snapshot.problems + tuple(problems))


def declares_users(state: State) -> bool:
    """True when an active tenant of ``state`` has an enabled extension. A snapshot of such
    a state that serves no user is suspect (missing hashes, every record refused): the
    daemon then keeps the last good file (``generation.write_generation(allow_empty=False)``)."""
    return any(
        ts.tenant.served and any(ext.enabled for ext in ts.extensions.values())
        for ts in state.values()
    )


class Digests(NamedTuple):
    """The secrets' digests the directory serves, keyed ``(tenant id, extension)``."""

    sip: Mapping[tuple[str, str], str]
    voicemail: Mapping[tuple[str, str], str]


def _build(state: State, digests: Digests, generation: str, roots: AudioRoots) -> Snapshot:
    served = served_tenants(state)
    problems: list[str] = list(served.problems)

    tenants: dict[str, ServedTenant] = {}
    queues: dict[str, QueueConfig] = {}
    did_claims: list[DidRoute] = []
    for domain, tenant_state in served.by_domain.items():
        view = serve_tenant(tenant_state, domain, digests, roots)
        problems.extend(view.problems)
        if view.tenant is None:
            continue
        tenants[domain] = view.tenant
        queues.update(view.queues)
        did_claims.extend(view.dids)
    dids, did_problems = resolve_dids(did_claims)
    problems.extend(did_problems)
    return Snapshot(
        generation=generation,
        tenants=MappingProxyType(tenants),
        dids=MappingProxyType(dids),
        queues=MappingProxyType(queues),
        problems=tuple(problems),
    )


class TenantView(NamedTuple):
    """One served tenant's records (``tenant`` None: the whole tenant is withheld) and
    why anything of it was left out: built one tenant at a time, so that a generation can
    be written tenant by tenant (``serve.generation_writer``) without the whole view in
    the heap."""

    tenant: ServedTenant | None
    queues: Mapping[str, QueueConfig]  # by FreeSWITCH name, in served order
    dids: tuple[DidRoute, ...]  # claims: a number claimed by two tenants is served by none
    problems: tuple[str, ...]


def serve_tenant(
    tenant_state: TenantState, domain: str, digests: Digests, roots: AudioRoots = DEFAULT_ROOTS
) -> TenantView:
    """The served view of one tenant served under ``domain`` (``core.served``). Pure."""
    problems: list[str] = []
    problem = _tenant_problem(tenant_state.tenant)
    if problem is not None:
        problems.append(f"tenant {tenant_state.tenant.id}: {problem}: not served")
        return TenantView(None, _EMPTY, (), tuple(problems))
    served_tenant, tenant_queues, tenant_dids = _serve_tenant(
        tenant_state, domain, digests, problems, roots
    )
    return TenantView(served_tenant, tenant_queues, tuple(tenant_dids), tuple(problems))


def resolve_dids(claims: list[DidRoute]) -> tuple[dict[str, DidRoute], list[str]]:
    """The DIDs served, by number in order, and the numbers claimed by several tenants
    (served by none)."""
    by_number: dict[str, list[DidRoute]] = {}
    for did in claims:
        by_number.setdefault(did.number, []).append(did)
    dids: dict[str, DidRoute] = {}
    problems: list[str] = []
    for number in sorted(by_number):
        found = by_number[number]
        if len(found) > 1:
            ids = ", ".join(c.tenant_id for c in found)
            problems.append(f"inbound number {number} is claimed by tenants {ids}: not served")
            continue
        dids[number] = found[0]
    return dids, problems


def _tenant_problem(tenant: Tenant) -> str | None:
    """Why a tenant's own served strings disqualify the whole tenant, or None."""
    tokens = {
        "id": tenant.id,
        "domain": tenant.domain,
        "feature_available": tenant.feature_available,
        "feature_on_break": tenant.feature_on_break,
        "feature_logged_out": tenant.feature_logged_out,
    }
    if tenant.outbound_caller_id_number is not None:
        tokens["outbound_caller_id_number"] = tenant.outbound_caller_id_number
    for name, value in tokens.items():
        problem = token_problem(value)
        if problem is not None:
            return f"{name} {shown(value)} {problem}"
    if tenant.outbound_caller_id_name is not None:
        problem = text_problem(tenant.outbound_caller_id_name)
        if problem is not None:
            return f"outbound_caller_id_name {problem}"
    return None


def _serve_tenant(
    ts: TenantState,
    domain: str,
    digests: Digests,
    problems: list[str],
    roots: AudioRoots,
) -> tuple[ServedTenant, dict[str, QueueConfig], list[DidRoute]]:
    tenant = ts.tenant
    agents_on = _agents_by_extension(ts, domain, problems)
    users: dict[str, DirectoryUser] = {}
    routes: dict[str, Route] = {}
    for number in ts.extensions:
        user = _serve_user(ts, number, digests, agents_on, problems, roots)
        if user is not None:
            users[number] = user
            routes[number] = Route(
                RouteKind.EXTENSION,
                number,
                number,
                user.call_timeout,
                user.voicemail_profile,
                _greeting(ts.extensions[number], user, tenant.id, problems, roots),
            )

    tenant_queues: dict[str, QueueConfig] = {}
    queue_numbers: dict[str, str] = {}
    for queue in sorted(ts.queues.values(), key=lambda q: q.name):
        config = _serve_queue(queue, tenant.id, domain, problems, roots)
        if config is None:
            continue
        tenant_queues[config.name] = config
        queue_numbers[queue.name] = queue.number
        _add_route(routes, Route(RouteKind.QUEUE, queue.number, config.name), tenant.id, problems)
    for attribute, status in FEATURE_STATUS:
        code = getattr(tenant, attribute)
        _add_route(routes, Route(RouteKind.FEATURE, code, status), tenant.id, problems)
    for code, target in VOICEMAIL_ROUTES:
        _add_route(routes, Route(RouteKind.VOICEMAIL, code, target), tenant.id, problems)

    dids = _serve_dids(ts, domain, users, queue_numbers, problems)
    outbound = _serve_outbound(ts, problems)
    served = ServedTenant(
        id=tenant.id,
        domain=domain,
        outbound_caller_id_name=tenant.outbound_caller_id_name or None,
        outbound_caller_id_number=tenant.outbound_caller_id_number,
        users=MappingProxyType(users),
        routes=MappingProxyType(routes),
        outbound=outbound,
    )
    return served, tenant_queues, dids


def _serve_outbound(ts: TenantState, problems: list[str]) -> OutboundPolicy | None:
    """The tenant's outbound policy, or None (no outside calls, with a problem) when any
    string of it is not an allowed shape: numbers are digits and '+', gateways slugs."""
    settings = next(iter(ts.outbound.values()), None)
    if settings is None:
        return None
    routes = tuple(sorted(ts.outbound_routes.values(), key=lambda r: r.match))
    numbers = [settings.caller_id_number, *settings.emergency_numbers]
    if settings.emergency_caller_id_number:
        numbers.append(settings.emergency_caller_id_number)
    if settings.area_code:
        numbers.append(settings.area_code)
    bad = [n for n in numbers if not _OUTSIDE_NUMBER.match(n)]
    bad += [g for r in routes for g in r.gateways if not _GATEWAY.match(g)]
    bad += [r.match for r in routes if not _ROUTE_MATCH.match(r.match)]
    if not re.fullmatch(r"[A-Z]{2}", settings.country):
        bad.append(settings.country)
    name = settings.caller_id_name
    if name is not None and text_problem(name) is not None:
        bad.append(name)
    if bad:
        problems.append(
            f"tenant {ts.tenant.id}: outbound {shown(bad[0])} is not an allowed shape: "
            "no outside calls"
        )
        return None
    return OutboundPolicy(settings, routes)


def _agents_by_extension(ts: TenantState, domain: str, problems: list[str]) -> dict[str, list[str]]:
    """Extension number -> FreeSWITCH names of the agents answering on it. An agent whose
    name may not be served is left out: the feature codes then do not act for it."""
    agents_on: dict[str, list[str]] = {}
    for agent in ts.agents.values():
        problem = token_problem(agent.name)
        if problem is not None:
            problems.append(f"tenant {ts.tenant.id}: agent {shown(agent.name)} {problem}: left out")
            continue
        numbers = {agent.extension} if agent.extension else set()
        # an agent given an explicit `user/<n>@<domain>` contact answers on <n> too
        number = user_contact_extension(agent.contact, domain)
        if number is not None:
            numbers.add(number)
        for number in numbers:
            agents_on.setdefault(number, []).append(fs_name(agent.name, domain))
    return agents_on


def _greeting(
    ext: Extension, user: DirectoryUser, tenant_id: str, problems: list[str], roots: AudioRoots
) -> str:
    """The box's greeting as the dialplan hands it to mod_voicemail (its channel variable
    ``voicemail_greeting_path``), or "" for the module's own; a value that is not an allowed
    sound shape (the spec refuses it; a hand-edited database might not) is left out."""
    if not (user.voicemail and ext.voicemail_greeting):
        return ""
    try:
        return shapes.sound_path(ext.voicemail_greeting, tenant_id, roots.sounds)
    except ValueError:
        problems.append(f"tenant {tenant_id}: extension {ext.number}: greeting not served")
        return ""


def _serve_user(
    ts: TenantState,
    number: str,
    digests: Digests,
    agents_on: Mapping[str, list[str]],
    problems: list[str],
    roots: AudioRoots = DEFAULT_ROOTS,
) -> DirectoryUser | None:
    """The directory entry of one extension, or None when it must not be served."""
    ext = ts.extensions[number]
    tenant_id = ts.tenant.id
    if not ext.enabled:
        return None
    a1_hash = (digests.sip.get((tenant_id, number)) or "").lower()
    if not a1_hash:
        return None
    caller_id_name = ext.caller_id_name or ext.name
    caller_id_number = ext.caller_id_number or number
    clean = token_clean(number) and text_clean(caller_id_name) and token_clean(caller_id_number)
    problem = None if clean else (
        _field_problem("number", number, token_problem)
        or _field_problem("caller id name", caller_id_name, text_problem)
        or _field_problem("caller id number", caller_id_number, token_problem)
    )  # fmt: skip
    if problem is not None:
        problems.append(f"tenant {tenant_id}: extension {shown(number)}: {problem}: not served")
        return None
    if _A1_HASH.match(a1_hash) is None:
        problems.append(f"tenant {tenant_id}: extension {number} has a malformed A1 hash")
        return None
    vm_a1_hash = (digests.voicemail.get((tenant_id, number)) or "").lower()
    if _A1_HASH.match(vm_a1_hash) is None:
        vm_a1_hash = ""
    profile = voicemail_profile(ext.voicemail_max_message_seconds) if ext.voicemail_enabled else ""
    if profile and not vm_a1_hash:
        problems.append(f"tenant {tenant_id}: extension {number} has no voicemail PIN: no box")
        profile = ""
    return DirectoryUser(
        number,
        a1_hash,
        caller_id_name,
        caller_id_number,
        ext.max_registrations,
        ext.call_timeout or ts.tenant.call_timeout,
        tuple(sorted(agents_on.get(number, ()))),
        profile,
        vm_a1_hash,
        ext.voicemail_pin_on_own_phone,
        *_record_paths(ext.record, tenant_id, number, roots),
        ext.calling_right,
    )


def _record_paths(record: str, tenant_id: str, number: str, roots: AudioRoots) -> tuple[str, str]:
    """The inbound and outbound recording paths of an extension ("" when not recorded):
    a checked root, the tenant id, digits and FreeSWITCH's own date and uuid only."""
    base = f"{roots.recordings}/{tenant_id}"
    inbound = record in ("inbound", "all")
    outbound = record in ("outbound", "all")
    return (
        f"{base}/{extension_recording(number, 'inbound')}" if inbound else "",
        f"{base}/{extension_recording(number, 'outbound')}" if outbound else "",
    )


def _field_problem(name: str, value: str, check: Callable[[str], str | None]) -> str | None:
    problem = check(value)
    return None if problem is None else f"{name} {problem}"


def _serve_queue(
    queue: Queue, tenant_id: str, domain: str, problems: list[str], roots: AudioRoots
) -> QueueConfig | None:
    """callcenter.conf's view of one queue, or None (with a problem) when a name or param
    may not be served."""
    name = fs_name(queue.name, domain)
    problem = _field_problem("name", queue.name, token_problem) or _field_problem(
        "number", queue.number, token_problem
    )
    params: tuple[tuple[str, str], ...] = ()
    if problem is None:
        params, problem = _queue_params(queue, tenant_id, domain, roots)
    if problem is not None:
        problems.append(f"tenant {tenant_id}: queue {shown(queue.name)}: {problem}: not served")
        return None
    return QueueConfig(name, tenant_id, params)


def _queue_params(
    queue: Queue, tenant_id: str, domain: str, roots: AudioRoots
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Served params (``core.served.served_queue_params``), or the first problem. The
    record template is the one value holding ``${``: only the fixed expansions the shared
    rule wrote, so it is checked with those taken out."""
    try:
        rendered = served_queue_params(queue, tenant_id, domain, roots)
    except ValueError as exc:
        return (), str(exc)
    params: list[tuple[str, str]] = []
    for param, value in rendered.items():
        if param == RECORD_TEMPLATE_PARAM:
            problem = _field_problem(param, _without_expansions(value), token_problem)
        else:
            check = token_problem if param in _TOKEN_PARAMS else text_problem
            problem = _field_problem(param, value, check)
        if problem is not None:
            return (), problem
        params.append((param, value))
    return tuple(params), None


def _without_expansions(value: str) -> str:
    for expansion in RECORD_PLACEHOLDERS.values():
        value = value.replace(expansion, "")
    return value


def _serve_dids(
    ts: TenantState,
    domain: str,
    users: Mapping[str, DirectoryUser],
    queue_numbers: Mapping[str, str],
    problems: list[str],
) -> list[DidRoute]:
    tenant_id = ts.tenant.id
    dids: list[DidRoute] = []
    for did in ts.inbound_numbers.values():
        problem = token_problem(did.number)
        if problem is not None:
            problems.append(f"tenant {tenant_id}: inbound number {shown(did.number)} {problem}")
            continue
        if did.destination_kind == "queue":
            target = queue_numbers.get(did.destination)
        else:
            target = did.destination if did.destination in users else None
        if target is None:
            problems.append(
                f"tenant {tenant_id}: inbound number {did.number} targets "
                f"{did.destination_kind} {shown(did.destination)}, which is not served"
            )
            continue
        dids.append(DidRoute(did.number, tenant_id, domain, target))
    return dids


def _add_route(routes: dict[str, Route], route: Route, tenant_id: str, problems: list[str]) -> None:
    existing = routes.setdefault(route.number, route)
    if existing is not route:
        problems.append(
            f"tenant {tenant_id}: number {route.number} of {route.kind} {route.target} "
            f"is already a {existing.kind} route: left out"
        )

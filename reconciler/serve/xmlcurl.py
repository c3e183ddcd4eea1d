"""mod_xml_curl, pure: FreeSWITCH's form in, one tenant's XML out. No I/O here.

* ``parse_form``: the body exactly as FreeSWITCH 1.10 writes it (the first five fields raw,
  the rest url-encoded by ``switch_url_encode``, which leaves ``,`` alone and never writes
  ``+`` for a blank), or ``MalformedRequest`` (HTTP 400).
* ``answer``: ``(snapshot, form, templates) -> XmlAnswer``. Every lookup is a dict hit in the
  immutable ``Snapshot``; nothing from the request is echoed but a dialplan context name.
  Anything unknown, unserved, ambiguous or longer than ``FIELD_LIMITS`` allows is "not found"
  (or, in the dialplan, a context that rejects the call), never a neighbour tenant's data.

Requests are hostile input too (anyone who can reach the port, or a phone choosing its SIP
user name): every value a request can choose is bounded before it is used, and what the
answer reports for metrics comes from the fixed sets ``Section`` and ``Result``, never from
the request.

Neighbours: ``reconciler.serve.snapshot`` (lookups), ``reconciler.serve.templating`` (XML),
``reconciler.serve.xmlcurl_app`` (the HTTP side).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from reconciler.core.errors import Permanent
from reconciler.core.model import PUBLIC_CONTEXT
from reconciler.core.outbound import OutboundCall, decide
from reconciler.core.switch_args import quote_arg
from reconciler.core.voicemail import OWN
from reconciler.serve.gateways import (
    ALL_GATEWAYS,
    PasswordOf,
    render_gateways,
    wanted_gateways,
)
from reconciler.serve.outcomes import Result as Result  # re-exported: its old home
from reconciler.serve.outcomes import Section as Section
from reconciler.serve.snapshot import DirectoryUser, Lookups, Route, RouteKind, ServedTenant
from reconciler.serve.templating import Templates, dialplan_context

XML_PATH = "/freeswitch/xml"
CONTENT_TYPE = "text/xml"

# The five fields mod_xml_curl writes itself, unencoded, at the start of every body.
RAW_FIELDS = ("hostname", "section", "tag_name", "key_name", "key_value")
_RAW_FIELD_SET = frozenset(RAW_FIELDS)
_RAW_COUNT = len(RAW_FIELDS)
# Fields an answer depends on, with the longest value that can mean anything (a domain is at
# most 253 characters, a queue name 63 + "@" + domain): a second copy makes the request
# ambiguous, so it is refused rather than resolved by position (a raw key_value holding
# "&user=..." must not pick a user); a longer value is "not found".
FIELD_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "hostname": 255,
        "section": 32,
        "tag_name": 64,
        "key_name": 64,
        "key_value": 255,
        "purpose": 64,
        "action": 64,
        "user": 64,
        "domain": 253,
        "Hunt-Context": 255,
        "Caller-Context": 255,
        "Hunt-Destination-Number": 64,
        "Caller-Destination-Number": 64,
        "variable_user_name": 64,
        "variable_domain_name": 253,
        "CC-Queue": 320,
        "profile": 64,
        "reconfig": 16,
        "gateway": 64,
    }
)
DECISION_FIELDS = frozenset(FIELD_LIMITS)
_USER_LIMIT = FIELD_LIMITS["user"]
_DOMAIN_LIMIT = FIELD_LIMITS["domain"]
MAX_FIELDS = 1000  # FreeSWITCH's largest captured body (a dialplan fetch) has 159
_HEX_DIGITS = "0123456789abcdefABCDEF"
_PERCENT_BYTE = {a + b: chr(int(a + b, 16)) for a in _HEX_DIGITS for b in _HEX_DIGITS}
# FreeSWITCH encodes control and non-ASCII bytes, so a raw one means a foreign body.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))
# A requested context name is echoed into the reply only when it is safe XML text and
# nothing FreeSWITCH would expand while parsing the reply ($${...}).
_UNSAFE_CONTEXT = re.compile("[${}\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


_SECTIONS: Mapping[str, Section] = MappingProxyType(
    {s.value: s for s in Section if s is not Section.OTHER}
)


def section_of(form: Mapping[str, str]) -> Section:
    return _SECTIONS.get(form.get("section", ""), Section.OTHER)


class MalformedRequest(Permanent, ValueError):
    """The body is not a form FreeSWITCH would send: answered with HTTP 400."""


class XmlAnswer(NamedTuple):
    status: int
    body: str
    section: Section
    result: Result


# --- form parsing ------------------------------------------------------------------------


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a mod_xml_curl POST body. The first five fields are taken verbatim; later
    values are percent-decoded (``+`` stays ``+``: FreeSWITCH encodes a blank as ``%20`` and
    a plus as ``%2B``). A repeated field keeps its first value, except that a repeated
    ``DECISION_FIELDS`` member is refused."""
    stray = body.translate(None, _PRINTABLE_ASCII)
    if stray:
        raise MalformedRequest(f"byte {stray[0]:#04x} is not printable ASCII")
    pairs = body.decode("ascii").split("&")
    if len(pairs) > MAX_FIELDS:
        raise MalformedRequest(f"more than {MAX_FIELDS} fields")
    form: dict[str, str] = {}
    raw_fields = _RAW_FIELD_SET
    for index, pair in enumerate(pairs):
        name, sep, value = pair.partition("=")
        if not sep or not name:
            if not pair:
                continue
            raise MalformedRequest(f"field {index + 1} is not name=value")
        if "%" in value and (index >= _RAW_COUNT or name not in raw_fields):
            value = _percent_decode(value)
        if name in form:
            if name in DECISION_FIELDS:
                raise MalformedRequest(f"a decision field appears twice (field {index + 1})")
            continue
        form[name] = value
    if not form.get("section"):
        raise MalformedRequest("no section")
    return form


def _percent_decode(value: str) -> str:
    """``%XX`` escapes to UTF-8 text (invalid UTF-8 becomes U+FFFD: a phone's display name is
    no reason to refuse a call). 2-3x quicker than ``urllib.parse.unquote`` here, and it
    validates as it goes."""
    parts = value.split("%")
    decoded = [parts[0]]
    for part in parts[1:]:
        byte = _PERCENT_BYTE.get(part[:2])
        if byte is None:
            raise MalformedRequest("bad percent escape")
        decoded.append(byte)
        decoded.append(part[2:])
    text = "".join(decoded)
    return text if text.isascii() else text.encode("latin-1").decode("utf-8", "replace")


def oversized(form: Mapping[str, str]) -> bool:
    """True when a field an answer depends on is longer than any meaningful value."""
    return any(len(form.get(name, "")) > limit for name, limit in FIELD_LIMITS.items())


# --- answering ---------------------------------------------------------------------------


def answer(
    snapshot: Lookups | None,
    form: Mapping[str, str],
    templates: Templates,
    password_of: PasswordOf | None = None,
) -> XmlAnswer:
    """The XML for one request; pure. Without a snapshot everything is "not found".
    ``password_of``: a carrier gateway's password (None: no gateway is ever served)."""
    section = section_of(form)
    if snapshot is None or section is Section.OTHER:
        return not_found(templates, section)
    if section is Section.DIRECTORY:
        found = directory_user(snapshot, form)
        if found is None:
            return not_found(templates, section)
        return XmlAnswer(200, render_directory(templates, *found), section, Result.FOUND)
    if oversized(form):
        return not_found(templates, section)
    if section is Section.DIALPLAN:
        return _dialplan(snapshot, form, templates)
    if form.get("key_value") == "sofia.conf":
        return _gateways(snapshot, form, templates, password_of)
    return _configuration(snapshot, form, templates)


def not_found(templates: Templates, section: Section) -> XmlAnswer:
    return XmlAnswer(200, templates.not_found, section, Result.NOT_FOUND)


def directory_user(
    snapshot: Lookups, form: Mapping[str, str]
) -> tuple[ServedTenant, DirectoryUser] | None:
    """The served user a directory request asks for, or None. The returned objects belong
    to the snapshot, whatever the spelling of the request (a cache key that cannot grow).
    Only bounded values can match: no other length check is needed on this path."""
    # gateways / network-list lookups ask for domain-wide data we do not serve
    if form.get("purpose"):
        return None
    key_value = form.get("key_value", "")
    domain = form.get("domain") or key_value
    number = form.get("user", "")
    if not domain or not number or len(number) > _USER_LIMIT or len(domain) > _DOMAIN_LIMIT:
        return None
    if key_value and key_value.lower() != domain.lower():
        return None
    return snapshot.user(domain, number)


def render_directory(templates: Templates, tenant: ServedTenant, user: DirectoryUser) -> str:
    return templates.directory.render(tenant=tenant, user=user)


def _dialplan(snapshot: Lookups, form: Mapping[str, str], templates: Templates) -> XmlAnswer:
    context = form.get("Hunt-Context") or form.get("Caller-Context") or ""
    number = form.get("Hunt-Destination-Number") or form.get("Caller-Destination-Number") or ""
    if not context or _UNSAFE_CONTEXT.search(context):
        return not_found(templates, Section.DIALPLAN)

    if context == PUBLIC_CONTEXT:
        did = snapshot.did(number)
        if did is None:
            return _reject(templates, context)
        values = dialplan_context(context, "did", expression=_exact(number), did=did)
        return _dialplan_answer(templates, values, Result.FOUND)

    found = snapshot.route(context, number)
    if found is None:
        return _outside_call(snapshot, form, templates, context, number)
    tenant, route = found
    expression = _exact(route.number)
    if route.kind is RouteKind.VOICEMAIL:
        return _voicemail_check(snapshot, form, templates, context, tenant, route)
    if route.kind is not RouteKind.FEATURE:
        values = dialplan_context(
            context,
            route.kind.value,
            expression=expression,
            tenant=tenant,
            route=route,
            record_paths=_record_paths(snapshot, form, tenant, route),
        )
        return _dialplan_answer(templates, values, Result.FOUND)
    agents = _calling_agents(snapshot, form, tenant.domain)
    if not agents:
        values = dialplan_context(
            context, "feature_denied", expression=expression, tenant=tenant, route=route
        )
        return _dialplan_answer(templates, values, Result.REJECTED)
    values = dialplan_context(
        context,
        "feature",
        expression=expression,
        tenant=tenant,
        route=route,
        agents=agents,
        status_arg=quote_arg(route.target),
    )
    return _dialplan_answer(templates, values, Result.FOUND)


def _voicemail_check(
    snapshot: Lookups,
    form: Mapping[str, str],
    templates: Templates,
    context: str,
    tenant: ServedTenant,
    route: Route,
) -> XmlAnswer:
    """``*97``: the caller's own box (its PIN asked unless the box waives it on its own
    phone); ``*98``: any box of the tenant, number and PIN asked. Only an authenticated
    caller of this tenant gets either; else the error tone."""
    expression = _exact(route.number)
    caller = _caller(snapshot, form, tenant.domain)
    if caller is None or (route.target == OWN and not caller.voicemail):
        values = dialplan_context(
            context, "feature_denied", expression=expression, tenant=tenant, route=route
        )
        return _dialplan_answer(templates, values, Result.REJECTED)
    own = route.target == OWN
    values = dialplan_context(
        context,
        "voicemail",
        expression=expression,
        tenant=tenant,
        route=route,
        box=caller.number if own else "",
        check_pin=not own or caller.vm_pin_on_own_phone,
    )
    return _dialplan_answer(templates, values, Result.FOUND)


def _outside_call(
    snapshot: Lookups, form: Mapping[str, str], templates: Templates, context: str, number: str
) -> XmlAnswer:
    """A number that is none of the tenant's own: an outside call through the tenant's own
    routes with its own caller id, if the calling extension has the right; else refused
    with a cause (and ``pbx_outbound_refused`` for the CDR). Not an outside number (or a
    tenant without ``outbound:``): unallocated, as always."""
    found = snapshot.outbound(context)
    if found is None:
        return _reject(templates, context)
    tenant, policy = found
    caller = _caller(snapshot, form, tenant.domain)
    decision = decide(policy, caller.calling_right if caller else "internal", number)
    if decision is None:
        return _reject(templates, context)
    if not isinstance(decision, OutboundCall):
        values = dialplan_context(
            context, "outbound_refused", expression=_exact(number), tenant=tenant, call=decision
        )
        return _dialplan_answer(templates, values, Result.REJECTED)
    values = dialplan_context(
        context,
        "outbound",
        expression=_exact(number),
        tenant=tenant,
        call=decision,
        limits=policy.settings,
        record_paths=(caller.record_outbound,) if caller and caller.record_outbound else (),
    )
    return _dialplan_answer(templates, values, Result.FOUND)


def _dialplan_answer(
    templates: Templates, values: Mapping[str, object], result: Result
) -> XmlAnswer:
    return XmlAnswer(200, templates.dialplan.render(values), Section.DIALPLAN, result)


def _reject(templates: Templates, context: str) -> XmlAnswer:
    return _dialplan_answer(templates, dialplan_context(context, "reject"), Result.REJECTED)


def _calling_agents(snapshot: Lookups, form: Mapping[str, str], domain: str) -> tuple[str, ...]:
    """Agents on the caller's extension."""
    caller = _caller(snapshot, form, domain)
    return caller.agents if caller is not None else ()


def _caller(snapshot: Lookups, form: Mapping[str, str], domain: str) -> DirectoryUser | None:
    """The calling extension of ``domain``: the user sofia authenticated
    (``variable_user_name``/``variable_domain_name``, set from the directory after digest
    auth), never the From user (``Caller-Username``), which anyone can write."""
    user_name = form.get("variable_user_name", "")
    user_domain = form.get("variable_domain_name", "")
    if not user_name or user_domain.lower() != domain:
        return None
    found = snapshot.user(user_domain, user_name)
    return found[1] if found is not None else None


def _record_paths(
    snapshot: Lookups, form: Mapping[str, str], tenant: ServedTenant, route: Route
) -> tuple[str, ...]:
    """Where this call is recorded: as the call the dialled extension answers (its
    ``record: inbound|all``) and as the call the authenticated caller makes (``outbound|
    all``). Paths were built when the snapshot was (``snapshot._record_paths``)."""
    paths: list[str] = []
    if route.kind is RouteKind.EXTENSION:
        callee = snapshot.user(tenant.domain, route.target)
        if callee is not None and callee[1].record_inbound:
            paths.append(callee[1].record_inbound)
    caller = _caller(snapshot, form, tenant.domain)
    if caller is not None and caller.record_outbound:
        paths.append(caller.record_outbound)
    return tuple(paths)


def _exact(number: str) -> str:
    """A PCRE matching exactly ``number`` (``*``, ``#`` and ``+`` escaped)."""
    return "^" + re.escape(number) + "$"


def _gateways(
    snapshot: Lookups,
    form: Mapping[str, str],
    templates: Templates,
    password_of: PasswordOf | None,
) -> XmlAnswer:
    """``sofia profile carriers startgw <gw>``'s fetch: that gateway (or ``_all_``); every
    other sofia.conf fetch falls back to the node's files (see ``reconciler.serve.gateways``)."""
    wanted = wanted_gateways(form)
    if wanted is None or password_of is None:
        return not_found(templates, Section.CONFIGURATION)
    if wanted == ALL_GATEWAYS:
        chosen = list(snapshot.gateways.values())
    else:
        one = snapshot.gateways.get(wanted)
        chosen = [one] if one is not None else []
    body = render_gateways(chosen, password_of) if chosen else None
    if body is None:
        return not_found(templates, Section.CONFIGURATION)
    return XmlAnswer(200, body, Section.CONFIGURATION, Result.FOUND)


def _configuration(snapshot: Lookups, form: Mapping[str, str], templates: Templates) -> XmlAnswer:
    if form.get("key_value") == "voicemail.conf":
        return XmlAnswer(200, templates.voicemail, Section.CONFIGURATION, Result.FOUND)
    if form.get("key_value") != "callcenter.conf":
        return not_found(templates, Section.CONFIGURATION)
    if "CC-Queue" in form:
        # a queue load/reload or a lazy load: only that queue, and a removed one must stay
        # removed (answering it would silently bring it back)
        queue = snapshot.queue(form["CC-Queue"])
        if queue is None:
            return not_found(templates, Section.CONFIGURATION)
        queues = [queue]
    else:
        # module load: every served queue, even none (an empty <queues/> still beats the
        # static fallback's demo queue)
        queues = list(snapshot.queues.values())
    body = templates.callcenter.render(queues=queues)
    return XmlAnswer(200, body, Section.CONFIGURATION, Result.FOUND)

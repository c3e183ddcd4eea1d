"""Properties of the endpoint over generated tenants: every answer is well-formed XML, a
request under one tenant's domain or context never carries another tenant's data, and a
hostile string in any record field never reaches an answer."""

from __future__ import annotations

import dataclasses
import functools
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import PUBLIC_CONTEXT, State, TenantState
from reconciler.core.voicemail import tenant_storage
from reconciler.serve.inert import text_problem
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import Templates, load_templates
from reconciler.serve.xmlcurl import MalformedRequest, answer, parse_form
from specs_schema.models import TenantSpec
from tests.serve.test_xmlcurl_fixtures import a1_hash, a1_hashes_for, load_state, parse_xml
from tests.strategies import tenant_sets, tenant_specs

TEMPLATES: Templates = load_templates()
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Display text as the spec allows it: any Unicode but control characters.
display_text = st.one_of(
    st.sampled_from(['A&B <x> "q"', "${system(id)}", "]]>", "&amp;", "\ufffe\uffff"]),
    st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40),
)


def snapshot_of(specs: list[TenantSpec]) -> tuple[Snapshot, dict[tuple[str, str], str]]:
    state = {spec.id: tenant_state_from_spec(spec) for spec in specs}
    hashes = {
        (tid, number): a1_hash(number, ts.tenant.domain, f"secret-{tid}-{number}")
        for tid, ts in state.items()
        for number in ts.extensions
    }
    return build_snapshot(state, hashes), hashes


def directory(snapshot: Snapshot, domain: str, user: str) -> ET.Element:
    form = {
        "hostname": "fs1",
        "section": "directory",
        "tag_name": "domain",
        "key_name": "name",
        "key_value": domain,
        "action": "sip_auth",
        "key": "id",
        "user": user,
        "domain": domain,
    }
    result = answer(snapshot, form, TEMPLATES)
    return parse_xml(result.body.encode())


def dialplan(snapshot: Snapshot, context: str, number: str, caller: str = "") -> ET.Element:
    form = {
        "hostname": "fs1",
        "section": "dialplan",
        "tag_name": "",
        "key_name": "",
        "key_value": "",
        "Hunt-Context": context,
        "Hunt-Destination-Number": number,
        "variable_user_name": caller,
        "variable_domain_name": context,
    }
    return parse_xml(answer(snapshot, form, TEMPLATES).body.encode())


def callcenter(snapshot: Snapshot, queue: str | None = None) -> ET.Element:
    form = {
        "hostname": "fs1",
        "section": "configuration",
        "tag_name": "configuration",
        "key_name": "name",
        "key_value": "callcenter.conf",
    }
    if queue is not None:
        form["CC-Queue"] = queue
    return parse_xml(answer(snapshot, form, TEMPLATES).body.encode())


def all_numbers(specs: list[TenantSpec]) -> set[str]:
    numbers = set()
    for spec in specs:
        numbers |= {e.number for e in spec.extensions}
        numbers |= {q.number for q in spec.queues}
        codes = spec.settings.feature_codes
        numbers |= {codes.agent_available, codes.agent_on_break, codes.agent_logged_out}
    return numbers


@PROPERTY_SETTINGS
@given(
    spec=tenant_specs(),
    name=display_text,
    caller_id_name=display_text,
    outbound_name=display_text,
)
def test_arbitrary_display_text_always_gives_well_formed_xml(
    spec: TenantSpec, name: str, caller_id_name: str, outbound_name: str
) -> None:
    ts = tenant_state_from_spec(spec)
    tenant = dataclasses.replace(
        ts.tenant, status="active", name=name, outbound_caller_id_name=outbound_name
    )
    extensions = {
        number: dataclasses.replace(ext, enabled=True, name=name, caller_id_name=caller_id_name)
        for number, ext in ts.extensions.items()
    }
    state = {spec.id: dataclasses.replace(ts, tenant=tenant, extensions=extensions)}
    hashes = {(spec.id, n): a1_hash(n, tenant.domain, "pw") for n in extensions}
    snapshot = build_snapshot(state, hashes)

    served = text_problem(caller_id_name) is None and text_problem(outbound_name) is None
    for number in extensions:
        root = directory(snapshot, tenant.domain, number)
        if not served:
            assert root.find(".//user") is None
            continue
        variables = {v.get("name"): v.get("value") for v in root.iter("variable")}
        assert variables["effective_caller_id_name"] == caller_id_name
        assert variables["outbound_caller_id_name"] == outbound_name
    for number in all_numbers([spec]) | {"0", "*"}:
        dialplan(snapshot, tenant.domain, number, caller=next(iter(extensions), ""))
    for did in ts.inbound_numbers:
        dialplan(snapshot, PUBLIC_CONTEXT, did)
    callcenter(snapshot)
    for queue in ts.queues:
        callcenter(snapshot, f"{queue}@{tenant.domain}")


@pytest.mark.parametrize("context", ["default", "x\u00e9\u6771", 'a"b<c>&d', "public"])
def test_requested_context_names_are_echoed_as_well_formed_xml(context: str) -> None:
    root = dialplan(Snapshot(), context, "1000")
    assert root.find(".//context").get("name") == context


@PROPERTY_SETTINGS
@given(specs=tenant_sets(min_size=2, max_size=2))
def test_a_tenant_request_never_returns_another_tenants_data(specs: list[TenantSpec]) -> None:
    snapshot, hashes = snapshot_of(specs)
    numbers = all_numbers(specs)
    for spec in specs:
        own = spec.domain
        others = [s for s in specs if s.id != spec.id]
        foreign_hashes = {h for (tid, _), h in hashes.items() if tid != spec.id}
        foreign_domains = {s.domain for s in others}

        for number in numbers:
            root = directory(snapshot, own, number)
            for domain in root.iter("domain"):
                assert domain.get("name") == own
            for param in root.iter("param"):
                if param.get("name") == "a1-hash":
                    assert param.get("value") == hashes[(spec.id, number)]
                    assert param.get("value") not in foreign_hashes
            for variable in root.iter("variable"):
                if variable.get("name") in ("user_context", "domain_name"):
                    assert variable.get("value") == own

            caller = next(iter(e.number for e in spec.extensions), "")
            root = dialplan(snapshot, own, number, caller=caller)
            assert [c.get("name") for c in root.iter("context")] == [own]
            for action in root.iter("action"):
                data = action.get("data") or ""
                assert not any(domain in data for domain in foreign_domains), data
                if action.get("application") in ("bridge", "callcenter"):
                    assert data.endswith(f"@{own}")
                assert action.get("application") != "transfer"

        for other in others:
            for queue in other.queues:
                root = callcenter(snapshot, f"{queue.name}@{own}")
                names = [q.get("name") for q in root.iter("queue")]
                assert all(name.endswith(f"@{own}") for name in names)
            for did in other.inbound_numbers:
                root = dialplan(snapshot, PUBLIC_CONTEXT, did.number)
                for action in root.iter("action"):
                    if action.get("application") == "transfer":
                        assert action.get("data").endswith(f" XML {other.domain}")
                        assert other.status == "active"


def servable(spec: TenantSpec) -> bool:
    """Active, and nothing FreeSWITCH would expand in its outbound caller id."""
    ocid = spec.settings.outbound_caller_id
    name = ocid.name if ocid is not None else None
    return spec.status == "active" and (name is None or text_problem(name) is None)


@PROPERTY_SETTINGS
@given(specs=tenant_sets(min_size=1, max_size=3))
def test_only_active_tenants_enabled_extensions_are_ever_found(specs: list[TenantSpec]) -> None:
    snapshot, _ = snapshot_of(specs)
    for spec in specs:
        for ext in spec.extensions:
            root = directory(snapshot, spec.domain, ext.number)
            found = root.find(".//user") is not None
            shown_name = ext.caller_id.name if ext.caller_id and ext.caller_id.name else ext.name
            expected = servable(spec) and ext.enabled and text_problem(shown_name) is None
            assert found == expected
        queues = {q.get("name") for q in callcenter(snapshot).iter("queue")}
        for queue in spec.queues:
            assert (f"{queue.name}@{spec.domain}" in queues) == servable(spec)


# --- parse_form --------------------------------------------------------------------------

_UNSAFE = set('\r\n #%&+:;<=>?@[\\]^`{|}"')  # FreeSWITCH's SWITCH_URL_UNSAFE


def fs_url_encode(value: str) -> str:
    """switch_url_encode: control, non-ASCII and SWITCH_URL_UNSAFE bytes become %XX."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        out.append(f"%{byte:02X}" if byte < 0x20 or byte > 0x7E or char in _UNSAFE else char)
    return "".join(out)


header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda n: n not in ("hostname", "section", "tag_name", "key_name", "key_value")
)


@PROPERTY_SETTINGS
@given(
    headers=st.dictionaries(
        header_names, st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
    )
)
def test_what_freeswitch_encodes_parses_back_exactly(headers: dict[str, str]) -> None:
    head = "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value="
    body = head + "".join(f"&{name}={fs_url_encode(value)}" for name, value in headers.items())
    form = parse_form(body.encode())
    assert {k: v for k, v in form.items() if k in headers} == headers


@PROPERTY_SETTINGS
@given(body=st.binary(max_size=300))
def test_any_bytes_give_a_form_or_malformed_request(body: bytes) -> None:
    try:
        form = parse_form(body)
    except MalformedRequest:
        return
    assert form["section"]
    answer(Snapshot(), form, TEMPLATES)


# --- hostile strings in any record field ----------------------------------------------------

# what our own templates and renderers write: the only `${` (and braces) an answer may hold
_DIAL_STRING = (
    "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
    "${sofia_contact(*/${dialed_user}@${dialed_domain})}"
)
_AGENT_STATUS_CALL = re.compile(
    r"\$\{callcenter_config\(agent set status [a-z0-9_@.-]+ "
    r"(?:Available|'On Break'|'Logged Out')\)\}"
)
_RECORD_EXPANSIONS = ("${uuid}", "${strftime(%Y-%m-%d)}", "${strftime(%H%M%S)}")
_REGEX_ANCHOR = '$"'  # the end of a dialplan expression="^...$"

hostile_text = st.one_of(
    st.sampled_from(
        ["${system(id)}", "$${domain}", "x}{y", "a\x00b", "line\nbreak", "$", "{", "}", "\x1b[2J"]
    ),
    st.text(
        st.one_of(st.sampled_from(list("${}\x00\x07\n\r\t\x7f\x85")), st.characters()),
        min_size=1,
        max_size=24,
    ).filter(lambda t: text_problem(t) is not None),
)

HOSTILE_FIELDS = (
    ("tenant", "outbound_caller_id_name"),
    ("tenant", "outbound_caller_id_number"),
    ("tenant", "feature_available"),
    ("tenant", "feature_on_break"),
    ("tenant", "domain"),
    ("extension", "number"),
    ("extension", "name"),
    ("extension", "caller_id_name"),
    ("extension", "caller_id_number"),
    ("agent", "name"),
    ("queue", "name"),
    ("queue", "number"),
    ("queue", "moh_sound"),
    ("queue", "announce_sound"),
    ("queue", "record_template"),
    ("queue", "strategy"),
    ("queue", "agent_no_answer_status"),
    ("inbound_number", "number"),
    ("inbound_number", "destination"),
)


@functools.cache
def base_state() -> tuple[State, dict[tuple[str, str], str]]:
    state = load_state(Path(tempfile.mkdtemp(prefix="hostile-")) / "tenants.d")
    return state, a1_hashes_for(state)


def poisoned(state: State, kind: str, field: str, value: str) -> State:
    """acme with one field of one record (the first of its kind) set to ``value``."""
    acme = state["acme"]
    if kind == "tenant":
        changed: TenantState = dataclasses.replace(
            acme, tenant=dataclasses.replace(acme.tenant, **{field: value})
        )
    else:
        collection = {
            "extension": "extensions",
            "agent": "agents",
            "queue": "queues",
            "inbound_number": "inbound_numbers",
        }[kind]
        records = dict(getattr(acme, collection))
        key = sorted(records)[0] if kind != "extension" else "1001"
        record = dataclasses.replace(records.pop(key), **{field: value})
        records[record.key] = record
        changed = dataclasses.replace(acme, **{collection: records})
    return {**state, "acme": changed}


def every_answer(snapshot: Snapshot, value: str) -> list[str]:
    """What any request could get: every user, route, DID and queue, plus the value itself
    asked for as a user, number, context and queue."""
    bodies = []
    domains = ["acme.example.com", "globex.example.com", value]
    numbers = ["1001", "1002", "1003", "7000", "7001", "*22", "*23", "*24", value]
    for domain in domains:
        for number in numbers:
            for form in (
                directory_form(domain, number),
                dialplan_form(domain, number, "1001"),
            ):
                bodies.append(answer(snapshot, form, TEMPLATES).body)
    for did in [*snapshot.dids, value, "+14155550100"]:
        bodies.append(answer(snapshot, dialplan_form(PUBLIC_CONTEXT, did, ""), TEMPLATES).body)
    for queue in [None, *snapshot.queues, f"{value}@acme.example.com"]:
        bodies.append(answer(snapshot, callcenter_form(queue), TEMPLATES).body)
    return bodies


def directory_form(domain: str, user: str) -> dict[str, str]:
    return {"section": "directory", "key_value": domain, "user": user, "domain": domain}


def dialplan_form(context: str, number: str, caller: str) -> dict[str, str]:
    return {
        "section": "dialplan",
        "Hunt-Context": context,
        "Hunt-Destination-Number": number,
        "variable_user_name": caller,
        "variable_domain_name": context,
    }


def callcenter_form(queue: str | None) -> dict[str, str]:
    form = {"section": "configuration", "key_value": "callcenter.conf"}
    if queue is not None:
        form["CC-Queue"] = queue
    return form


def without_our_own_expansions(body: str) -> str:
    body = body.replace(_DIAL_STRING, "")
    body = body.replace(tenant_storage("acme"), "").replace(tenant_storage("globex"), "")
    body = _AGENT_STATUS_CALL.sub("", body)
    for expansion in _RECORD_EXPANSIONS:
        body = body.replace(expansion, "")
    return body.replace(_REGEX_ANCHOR, '"')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(HOSTILE_FIELDS), value=hostile_text)
def test_a_hostile_string_in_any_record_field_never_reaches_an_answer(
    target: tuple[str, str], value: str
) -> None:
    state, hashes = base_state()
    kind, field = target
    snapshot = build_snapshot(poisoned(state, kind, field, value), hashes)

    assert any(p.startswith("tenant acme") for p in snapshot.problems), snapshot.problems
    for body in every_answer(snapshot, value):
        root = parse_xml(body.encode())  # well-formed, whatever was asked
        for element in root.iter():  # what FreeSWITCH reads, XML escapes resolved
            for text in [*element.attrib.values(), element.text or ""]:
                rest = without_our_own_expansions(text + '"')
                # a value of only blanks and line breaks is also the documents' own layout
                # (hypothesis found "\n"): the characters test below still holds for it
                if value.strip():
                    assert value not in rest, text
                assert not any(char in rest for char in "${}"), text

"""Properties of the endpoint over generated tenants: every answer is well-formed XML, and a
request under one tenant's domain or context never carries another tenant's data."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import PUBLIC_CONTEXT
from reconciler.serve.snapshot import Snapshot, build_snapshot, served_text
from reconciler.serve.templating import Templates, load_templates
from reconciler.serve.xmlcurl import MalformedRequest, answer, parse_form
from specs_schema.models import TenantSpec
from tests.serve.test_xmlcurl_fixtures import a1_hash, parse_xml
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

    for number in extensions:
        root = directory(snapshot, tenant.domain, number)
        variables = {v.get("name"): v.get("value") for v in root.iter("variable")}
        assert variables["effective_caller_id_name"] == served_text(caller_id_name)
        assert variables["outbound_caller_id_name"] == served_text(outbound_name)
        assert "${" not in variables["effective_caller_id_name"]
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


@PROPERTY_SETTINGS
@given(specs=tenant_sets(min_size=1, max_size=3))
def test_only_active_tenants_enabled_extensions_are_ever_found(specs: list[TenantSpec]) -> None:
    snapshot, _ = snapshot_of(specs)
    for spec in specs:
        for ext in spec.extensions:
            root = directory(snapshot, spec.domain, ext.number)
            found = root.find(".//user") is not None
            assert found == (spec.status == "active" and ext.enabled)
        queues = {q.get("name") for q in callcenter(snapshot).iter("queue")}
        for queue in spec.queues:
            assert (f"{queue.name}@{spec.domain}" in queues) == (spec.status == "active")


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

"""parse_form and answer(): FreeSWITCH's captured requests in, one tenant's XML out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.core.audio_roots import AudioRoots
from reconciler.core.identity import DatabaseIdentity
from reconciler.core.switch_args import quote_arg
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import TemplateLoadError, Templates, load_templates
from reconciler.serve.xmlcurl import (
    FIELD_LIMITS,
    MAX_FIELDS,
    MalformedRequest,
    Result,
    Section,
    answer,
    parse_form,
)
from tests.serve.test_xmlcurl_fixtures import (
    CAPTURED_1001_A1,
    a1_hash,
    a1_hashes_for,
    captured,
    captured_body,
    is_not_found,
    load_state,
    parse_xml,
    password,
    replace_field,
)

IDENTITY = DatabaseIdentity("7000000000000000001", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")

NOT_FOUND = (
    '<document type="freeswitch/xml"><section name="result">'
    '<result status="not found"/></section></document>'
)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return load_templates()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory):
    return load_state(tmp_path_factory.mktemp("tenants"))


# Every answer test runs twice: on the snapshot in memory (in-process serving) and on the
# same snapshot written as a generation file and mapped (what an xml_curl worker reads).
SERVED_FROM = ["memory", "generation"]


def served_from(kind: str, built: Snapshot, tmp: Path):
    if kind == "memory":
        return built
    path = tmp / "xmlcurl.generation"
    write_generation(built, path, identity=IDENTITY, dsn_fingerprint="fp", allow_empty=True)
    return open_generation(path, expected_identity=IDENTITY, dsn_fingerprint="fp")


@pytest.fixture(scope="module", params=SERVED_FROM)
def snapshot(request, state, tmp_path_factory):
    built = build_snapshot(state, a1_hashes_for(state), generation="test")
    return served_from(request.param, built, tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module", params=SERVED_FROM)
def capture_snapshot(request, state, tmp_path_factory):
    """What the capture server knew: acme only (globex.example.com was "not found")."""
    acme_only = {tid: ts for tid, ts in state.items() if tid != "globex"}
    built = build_snapshot(acme_only, a1_hashes_for(state), generation="capture")
    return served_from(request.param, built, tmp_path_factory.mktemp("gen"))


def ask(snapshot: Snapshot | None, templates: Templates, body: str):
    result = answer(snapshot, parse_form(body.encode()), templates)
    return result, parse_xml(result.body)


def dialplan_body(
    destination: str,
    context: str = "acme.example.com",
    user: str = "1001",
    domain: str = "acme.example.com",
) -> str:
    body = captured_body("19-")
    for name in ("Hunt-Destination-Number", "Caller-Destination-Number"):
        body = replace_field(body, name, destination.replace("+", "%2B").replace("*", "*"))
    for name in ("Hunt-Context", "Caller-Context"):
        body = replace_field(body, name, context)
    body = replace_field(body, "variable_user_name", user)
    return replace_field(body, "variable_domain_name", domain)


def actions(root) -> list[tuple[str, str | None]]:
    return [(a.get("application"), a.get("data")) for a in root.iter("action")]


# --- parse_form --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, _ in captured()])
def test_every_captured_body_parses(name: str) -> None:
    capture = dict(captured())[name]
    form = parse_form(str(capture["body"]).encode())
    assert form["hostname"] == "fs1"
    assert form["section"] in ("configuration", "directory", "dialplan")


def test_first_five_fields_are_taken_raw_and_the_rest_decoded() -> None:
    form = parse_form(captured_body("11-").encode())
    assert form["key_value"] == "acme.example.com"
    assert form["sip_auth_uri"] == "sip:127.0.0.1:5060"
    assert form["sip_call_id"] == "1-30706@127.0.0.1"
    assert form["FreeSWITCH-IPv6"] == "fd00::2"


def test_comma_left_raw_by_freeswitch_is_kept() -> None:
    form = parse_form(captured_body("19-").encode())
    assert form["Event-Date-GMT"] == "Tue, 24 Nov 2026 20:48:58 GMT"
    assert form["variable_rtp_use_codec_string"] == "OPUS,G722,PCMU,PCMA,H264,VP8"
    assert form["variable_switch_r_sdp"].startswith("v=0\r\no=user1")


def test_cc_queue_is_decoded() -> None:
    form = parse_form(captured_body("07-").encode())
    assert form["CC-Queue"] == "support@acme.example.com"


def test_plus_is_a_plus_not_a_blank() -> None:
    form = parse_form(b"hostname=fs1&section=dialplan&tag_name=&key_name=&key_value=&a=+1&b=%2B1")
    assert form["a"] == "+1"
    assert form["b"] == "+1"


def test_raw_first_fields_keep_percent_signs_verbatim() -> None:
    form = parse_form(
        b"hostname=fs1&section=directory&tag_name=domain&key_name=name&key_value=a%41"
    )
    assert form["key_value"] == "a%41"


def test_empty_values_are_kept() -> None:
    form = parse_form(captured_body("17-").encode())
    assert form["tag_name"] == "" and form["key_name"] == "" and form["key_value"] == ""


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"hostname=fs1&tag_name=domain&key_name=name&key_value=x",
        b"hostname=fs1&section=&tag_name=",
        b"hostname=fs1&section=directory&user=%zz",
        b"hostname=fs1&section=directory&user=100%",
        b"hostname=fs1&section=directory&user=%4",
        b"hostname=fs1&section=directory&justaname",
        b"hostname=fs1&section=directory&=value",
        b"hostname=fs1&section=directory&user=1001\n",
        b"hostname=fs1&section=directory&user=1001&user=1002",
        b"hostname=fs1&section=directory&tag_name=domain&key_name=name&key_value=x&section=dialplan",
        "hostname=fs1&section=directory&user=caf\u00e9".encode(),
        b"\x00\x01\x02",
    ],
    ids=[
        "empty",
        "garbage-bytes",
        "no-section",
        "empty-section",
        "bad-hex",
        "truncated-escape",
        "short-escape",
        "no-equals",
        "no-name",
        "control-char",
        "duplicate-user",
        "duplicate-section",
        "raw-non-ascii",
        "nul-bytes",
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_form(body)


def test_repeated_unimportant_field_keeps_the_first_value() -> None:
    form = parse_form(b"hostname=fs1&section=dialplan&x=1&x=2")
    assert form["x"] == "1"


def test_invalid_utf8_in_an_encoded_value_does_not_refuse_the_request() -> None:
    # a phone may send latin-1 in its display name; the call must still route
    form = parse_form(b"hostname=fs1&section=dialplan&Caller-Caller-ID-Name=Zo%EB")
    assert form["Caller-Caller-ID-Name"] == "Zo\ufffd"


# --- the captured exchanges --------------------------------------------------------------


def test_captured_directory_answer_carries_the_captured_a1_hash(snapshot, templates) -> None:
    result, root = ask(snapshot, templates, captured_body("11-"))
    assert (result.section, result.result) == ("directory", "found")
    domains = root.findall("./section[@name='directory']/domain")
    assert [d.get("name") for d in domains] == ["acme.example.com"]
    users = root.findall(".//user")
    assert [u.get("id") for u in users] == ["1001"]
    params = {p.get("name"): p.get("value") for p in users[0].iter("param")}
    assert params == {
        "a1-hash": CAPTURED_1001_A1,
        "max-registrations-per-extension": "3",
        # no PIN in this fixture: no vm-a1-hash, so no box (the SIP password never opens it)
        "vm-enabled": "false",
        "vm-domain-storage-dir": "$${pbx_voicemail_dir}/acme",
    }
    variables = {v.get("name"): v.get("value") for v in users[0].iter("variable")}
    assert variables == {
        "user_context": "acme.example.com",
        "domain_name": "acme.example.com",
        "effective_caller_id_name": "Alice Smith",
        "effective_caller_id_number": "1001",
        "outbound_caller_id_name": "Acme Corporation",
        "outbound_caller_id_number": "+14155550100",
        "call_timeout": "30",
        # no box: no message-waiting NOTIFY at each registration
        "send-message-query-on-register": "false",
    }


def test_dial_string_is_at_domain_level(snapshot, templates) -> None:
    _, root = ask(snapshot, templates, captured_body("20-"))
    dial = root.find("./section/domain/params/param[@name='dial-string']")
    assert dial is not None
    assert dial.get("value") == (
        "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
        "${sofia_contact(*/${dialed_user}@${dialed_domain})}"
    )


@pytest.mark.parametrize("prefix", ["11-", "12-", "15-", "16-", "18-", "20-", "21-", "22-"])
def test_no_password_anywhere_in_directory_answers(snapshot, templates, prefix: str) -> None:
    result, root = ask(snapshot, templates, captured_body(prefix))
    assert result.result == "found"
    assert root.find(".//param[@name='password']") is None
    assert "password" not in result.body
    user = root.find(".//user")
    assert user is not None
    number = user.get("id")
    expected = a1_hash(number, "acme.example.com", password("acme", number))
    assert user.find("./params/param[@name='a1-hash']").get("value") == expected


def test_user_call_lookup_returns_the_called_user(snapshot, templates) -> None:
    _result, root = ask(snapshot, templates, captured_body("20-"))
    assert [u.get("id") for u in root.iter("user")] == ["1002"]
    variables = {v.get("name"): v.get("value") for v in root.iter("variable")}
    assert variables["call_timeout"] == "25"


@pytest.mark.parametrize(
    "prefix", ["10-", "13-", "14-"], ids=["forced-domain", "unknown-domain", "static-domain"]
)
def test_captured_lookups_of_unserved_domains_are_not_found(
    capture_snapshot, templates, prefix
) -> None:
    result, root = ask(capture_snapshot, templates, captured_body(prefix))
    assert result.result == "not_found"
    assert result.body == NOT_FOUND
    assert is_not_found(root)


def test_captured_dialplan_answer_names_the_hunt_context(snapshot, templates) -> None:
    result, root = ask(snapshot, templates, captured_body("17-"))
    assert result.result == "found"
    contexts = root.findall("./section[@name='dialplan']/context")
    assert [c.get("name") for c in contexts] == ["acme.example.com"]
    assert len(root.findall(".//extension")) == 1
    condition = root.find(".//condition")
    assert condition.get("field") == "destination_number"
    assert condition.get("expression") == "^1002$"
    assert actions(root) == [
        ("set", "call_timeout=25"),
        ("set", "hangup_after_bridge=true"),
        ("bridge", "user/1002@acme.example.com"),
        ("hangup", "NO_ANSWER"),
    ]


def test_captured_bridge_call_to_1003(snapshot, templates) -> None:
    _, root = ask(snapshot, templates, captured_body("19-"))
    assert ("bridge", "user/1003@acme.example.com") in actions(root)


def test_module_load_returns_every_served_queue_without_agents_or_tiers(
    snapshot, templates
) -> None:
    result, root = ask(snapshot, templates, captured_body("06-"))
    assert result.result == "found"
    configuration = root.find("./section[@name='configuration']/configuration")
    assert configuration.get("name") == "callcenter.conf"
    assert configuration.get("description") == "CallCenter"
    assert configuration.find("settings") is not None
    names = [q.get("name") for q in configuration.iter("queue")]
    assert sorted(names) == [
        "sales@acme.example.com",
        "support@acme.example.com",
        "support@globex.example.com",
    ]
    assert root.find(".//agents") is None and root.find(".//tiers") is None


@pytest.mark.parametrize("prefix", ["07-", "08-"], ids=["queue-load", "queue-reload"])
def test_queue_load_returns_only_that_queue(snapshot, templates, prefix: str) -> None:
    result, root = ask(snapshot, templates, captured_body(prefix))
    assert result.result == "found"
    queues = root.findall(".//queues/queue")
    assert [q.get("name") for q in queues] == ["support@acme.example.com"]
    params = {p.get("name"): p.get("value") for p in queues[0].iter("param")}
    # the captured answer's params, as FreeSWITCH accepted them (plus explicit defaults)
    assert params["strategy"] == "longest-idle-agent"
    assert params["moh-sound"] == "local_stream://moh"
    assert params["max-wait-time"] == "120"
    assert all("_" not in name for name in params)
    assert root.find(".//agents") is None and root.find(".//tiers") is None


def test_removed_queue_is_not_found_on_lazy_load(state, templates) -> None:
    # capture 09: the queue stopped being served; a lazy re-fetch must not bring it back
    acme = state["acme"]
    without = dict(state)
    without["acme"] = dataclasses.replace(
        acme,
        queues={k: v for k, v in acme.queues.items() if k != "support"},
        inbound_numbers={
            k: v for k, v in acme.inbound_numbers.items() if v.destination != "support"
        },
    )
    snapshot = build_snapshot(without, a1_hashes_for(state))
    result, _ = ask(snapshot, templates, captured_body("09-"))
    assert result.result == "not_found"


@pytest.mark.parametrize("prefix", ["01-", "02-", "03-"])
def test_unknown_cc_queue_is_not_found(snapshot, templates, prefix: str) -> None:
    result, _ = ask(snapshot, templates, captured_body(prefix))
    assert result.result == "not_found"


@pytest.mark.parametrize("prefix", ["04-", "05-"], ids=["loopback.conf", "timezones.conf"])
def test_other_configuration_files_are_not_found(snapshot, templates, prefix: str) -> None:
    result, _ = ask(snapshot, templates, captured_body(prefix))
    assert (result.section, result.result) == ("configuration", "not_found")


# What each captured request gets from a snapshot of what the capture server knew. Where the
# capture said "not found" and we do not, the comment says why.
CAPTURE_EXPECTATIONS = {
    "01-": "not_found",  # CC-Queue nosuch@acme.example.com
    "02-": "not_found",  # CC-Queue support@default (the static demo queue)
    "03-": "not_found",  # CC-Queue nosuchqueue@x
    "04-": "not_found",  # loopback.conf
    "05-": "not_found",  # timezones.conf
    "06-": "found",  # module load: every served queue (the capture run served none)
    "07-": "found",
    "08-": "found",
    "09-": "found",  # = 07 while support is still served; removal: see below
    "10-": "not_found",  # forced register domain 127.0.0.1
    "11-": "found",
    "12-": "found",  # a wrong password still gets the user: FreeSWITCH compares digests
    "13-": "not_found",  # globex.example.com is not served
    "14-": "not_found",  # 127.0.0.1
    "15-": "found",
    "16-": "found",
    "17-": "found",
    "18-": "found",
    "19-": "found",
    "20-": "found",
    "21-": "found",
    "22-": "found",
}


def test_expectations_cover_every_capture() -> None:
    assert sorted(CAPTURE_EXPECTATIONS) == sorted(name[:3] for name, _ in captured())


@pytest.mark.parametrize("name", [n for n, _ in captured()])
def test_every_captured_request_gets_the_expected_answer(
    capture_snapshot, templates, name: str
) -> None:
    capture = dict(captured())[name]
    result, root = ask(capture_snapshot, templates, str(capture["body"]))
    assert root.tag == "document" and root.get("type") == "freeswitch/xml"
    assert result.result == CAPTURE_EXPECTATIONS[name[:3]]
    if result.result == "not_found":
        assert result.body == NOT_FOUND
        return
    theirs = parse_xml(str(capture["response_body"]))
    if is_not_found(theirs):
        return
    assert root.find("section").get("name") == theirs.find("section").get("name")
    for tag, key in (("domain", "name"), ("context", "name"), ("queue", "name")):
        assert {e.get(key) for e in root.iter(tag)} == {e.get(key) for e in theirs.iter(tag)}
    if root.find("section").get("name") == "directory":
        assert [u.get("id") for u in root.iter("user")] == [
            u.get("id") for u in theirs.iter("user")
        ]


def test_no_snapshot_means_not_found(templates) -> None:
    for _, capture in captured():
        result = answer(None, parse_form(str(capture["body"]).encode()), templates)
        assert result.body == NOT_FOUND


# --- directory rules ---------------------------------------------------------------------


def directory_body(user: str, domain: str, key_value: str | None = None) -> str:
    body = captured_body("11-")
    body = replace_field(body, "key_value", domain if key_value is None else key_value)
    body = replace_field(body, "user", user)
    return replace_field(body, "domain", domain)


@pytest.mark.parametrize(
    ("user", "domain"),
    [
        ("1004", "acme.example.com"),  # disabled
        ("1999", "acme.example.com"),  # unknown
        ("1001", "initech.example.com"),  # suspended tenant
        ("1001", "nowhere.example.com"),  # unknown domain
        ("7000", "acme.example.com"),  # a queue number is no user
        ("*22", "acme.example.com"),  # nor a feature code
        ("", "acme.example.com"),
    ],
)
def test_unserved_users_are_not_found(snapshot, templates, user: str, domain: str) -> None:
    result, _ = ask(snapshot, templates, directory_body(user, domain))
    assert result.result == "not_found"


def test_domain_is_matched_case_insensitively(snapshot, templates) -> None:
    result, root = ask(snapshot, templates, directory_body("1001", "ACME.example.com"))
    assert result.result == "found"
    assert root.find(".//domain").get("name") == "acme.example.com"


def test_each_domain_gets_its_own_user(snapshot, templates) -> None:
    _, acme = ask(snapshot, templates, directory_body("1001", "acme.example.com"))
    _, globex = ask(snapshot, templates, directory_body("1001", "globex.example.com"))
    acme_hash = acme.find(".//param[@name='a1-hash']").get("value")
    globex_hash = globex.find(".//param[@name='a1-hash']").get("value")
    assert acme_hash == CAPTURED_1001_A1
    assert globex_hash == a1_hash("1001", "globex.example.com", password("globex", "1001"))
    assert globex.find(".//variable[@name='user_context']").get("value") == "globex.example.com"


def test_key_value_and_domain_must_agree(snapshot, templates) -> None:
    body = directory_body("1001", "acme.example.com", key_value="globex.example.com")
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"


def test_injected_user_in_a_raw_key_value_is_refused() -> None:
    body = directory_body("1001", "acme.example.com", key_value="acme.example.com&user=1002")
    with pytest.raises(MalformedRequest):
        parse_form(body.encode())


@pytest.mark.parametrize("purpose", ["gateways", "network-list"])
def test_domain_wide_purposes_are_not_found(snapshot, templates, purpose: str) -> None:
    body = (
        "hostname=fs1&section=directory&tag_name=&key_name=&key_value="
        f"&Event-Name=REQUEST_PARAMS&purpose={purpose}&profile=internal"
    )
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"
    body = directory_body("1001", "acme.example.com") + f"&purpose={purpose}"
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"


def test_lookup_without_user_is_not_found(snapshot, templates) -> None:
    body = "hostname=fs1&section=directory&tag_name=domain&key_name=name&key_value=acme.example.com"
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"


def test_display_text_is_escaped(state, templates) -> None:
    acme = state["acme"]
    ext = dataclasses.replace(
        acme.extensions["1001"], caller_id_name='A&B <x> "q"', name="whatever"
    )
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, extensions={**acme.extensions, "1001": ext})
    snapshot = build_snapshot(changed, a1_hashes_for(state))
    result, root = ask(snapshot, templates, directory_body("1001", "acme.example.com"))
    assert "A&amp;B &lt;x&gt; &#34;q&#34;" in result.body
    name = root.find(".//variable[@name='effective_caller_id_name']").get("value")
    assert name == 'A&B <x> "q"'


# --- dialplan rules ----------------------------------------------------------------------


def test_queue_number_enters_the_tenant_queue(snapshot, templates) -> None:
    result, root = ask(snapshot, templates, dialplan_body("7000"))
    assert result.result == "found"
    assert actions(root) == [
        ("answer", None),
        ("set", "hangup_after_bridge=true"),
        ("callcenter", "support@acme.example.com"),
        ("hangup", None),
    ]


def test_same_number_in_another_tenant_reaches_that_tenant(snapshot, templates) -> None:
    _, root = ask(
        snapshot,
        templates,
        dialplan_body("7000", context="globex.example.com", domain="globex.example.com"),
    )
    assert ("callcenter", "support@globex.example.com") in actions(root)
    assert root.find(".//context").get("name") == "globex.example.com"


@pytest.mark.parametrize(
    ("code", "status"),
    [("*22", "Available"), ("*23", "'On Break'"), ("*24", "'Logged Out'")],
)
def test_feature_code_sets_the_calling_agents_status(snapshot, templates, code, status) -> None:
    result, root = ask(snapshot, templates, dialplan_body(code, user="1001"))
    assert result.result == "found"
    assert root.find(".//condition").get("expression") == "^\\" + code + "$"
    assert actions(root) == [
        (
            "set",
            "callcenter_result=${callcenter_config(agent set status alice@acme.example.com "
            f"{status})}}",
        ),
        ("answer", None),
        ("playback", "tone_stream://%(300,100,880);loops=2"),
        ("hangup", None),
    ]


def test_feature_code_from_an_extension_with_no_agent_is_refused(state, templates) -> None:
    acme = state["acme"]
    changed = dict(state)
    changed["acme"] = dataclasses.replace(acme, agents={})
    snapshot = build_snapshot(changed, a1_hashes_for(state))
    result, root = ask(snapshot, templates, dialplan_body("*23", user="1001"))
    assert result.result == "rejected"
    assert "callcenter_config" not in result.body
    assert ("hangup", "CALL_REJECTED") in actions(root)


def test_feature_code_ignores_a_caller_authenticated_in_another_domain(snapshot, templates) -> None:
    body = dialplan_body("*23", user="1001", domain="globex.example.com")
    result, _ = ask(snapshot, templates, body)
    assert result.result == "rejected"
    assert "callcenter_config" not in result.body


def test_feature_code_does_not_trust_the_from_user(snapshot, templates) -> None:
    body = dialplan_body("*23", user="1001")
    body = replace_field(body, "variable_user_name", "")
    result, _ = ask(snapshot, templates, body)  # Caller-Username=1001 is still there
    assert result.result == "rejected"


def test_did_transfers_into_the_tenant_context(snapshot, templates) -> None:
    result, root = ask(snapshot, templates, dialplan_body("+14155550100", context="public"))
    assert result.result == "found"
    assert root.find(".//context").get("name") == "public"
    assert root.find(".//condition").get("expression") == "^\\+14155550100$"
    assert actions(root) == [("transfer", "7000 XML acme.example.com")]


def test_did_to_an_extension(snapshot, templates) -> None:
    _, root = ask(snapshot, templates, dialplan_body("+442071230000", context="public"))
    assert actions(root) == [("transfer", "1001 XML globex.example.com")]


@pytest.mark.parametrize(
    ("number", "context"),
    [
        ("1999", "acme.example.com"),  # unknown number
        ("1004", "acme.example.com"),  # disabled extension
        ("1001", "initech.example.com"),  # suspended tenant
        ("1001", "default"),  # a context we do not serve
        ("+19995550000", "public"),  # unknown DID
        ("+15125550100", "public"),  # suspended tenant's DID
        ("+14155550104", "public"),  # DID to a disabled extension
        ("1001", "public"),  # an extension is not a DID
        ("+14155550100", "acme.example.com"),  # a DID is no internal number
    ],
)
def test_anything_else_is_rejected_in_the_requested_context(
    snapshot, templates, number: str, context: str
) -> None:
    result, root = ask(snapshot, templates, dialplan_body(number, context=context))
    assert result.result == "rejected"
    assert [c.get("name") for c in root.iter("context")] == [context]
    assert actions(root) == [("hangup", "UNALLOCATED_NUMBER")]


def test_caller_fields_are_the_fallback_for_hunt_fields(snapshot, templates) -> None:
    body = (
        "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value="
        "&Caller-Context=acme.example.com&Caller-Destination-Number=1002"
    )
    result, root = ask(snapshot, templates, body)
    assert result.result == "found"
    assert root.find(".//context").get("name") == "acme.example.com"


def test_hunt_fields_win_over_caller_fields(snapshot, templates) -> None:
    body = (
        "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value="
        "&Caller-Context=public&Caller-Destination-Number=%2B14155550100"
        "&Hunt-Context=acme.example.com&Hunt-Destination-Number=7000"
    )
    _, root = ask(snapshot, templates, body)
    assert root.find(".//context").get("name") == "acme.example.com"
    assert ("callcenter", "support@acme.example.com") in actions(root)


def test_dialplan_without_context_is_not_found(snapshot, templates) -> None:
    body = "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value=&Hunt-Destination-Number=1"
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"


def test_context_with_control_characters_is_not_echoed(snapshot, templates) -> None:
    body = (
        "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value="
        "&Hunt-Context=evil%00ctx&Hunt-Destination-Number=1"
    )
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"


def test_odd_context_names_are_escaped(snapshot, templates) -> None:
    body = (
        "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value="
        "&Hunt-Context=a%22%3E%3Cx%20y%3D%27&Hunt-Destination-Number=1"
    )
    result, root = ask(snapshot, templates, body)
    assert result.result == "rejected"
    assert root.find(".//context").get("name") == "a\"><x y='"


@pytest.mark.parametrize("section", ["phrases", "languages", "chatplan", "bogus"])
def test_other_sections_are_not_found(snapshot, templates, section: str) -> None:
    result, _ = ask(snapshot, templates, f"hostname=fs1&section={section}&tag_name=&key_name=")
    assert result.result == "not_found"


@pytest.mark.parametrize("section", ["phrases", "bogus", "x" * 32, "Directory", "directory2"])
def test_unknown_sections_are_labelled_other(snapshot, templates, section: str) -> None:
    result, _ = ask(snapshot, templates, f"hostname=fs1&section={section}&tag_name=&key_name=")
    assert (result.section, result.result) == (Section.OTHER, Result.NOT_FOUND)


def test_every_captured_request_is_labelled_from_the_fixed_sets(snapshot, templates) -> None:
    for _, capture in captured():
        result = answer(snapshot, parse_form(str(capture["body"]).encode()), templates)
        assert result.section in set(Section) and result.result in set(Result)
        assert result.section is not Section.OTHER


@pytest.mark.parametrize("context", ["${system(id)}", "$${domain}", "a{b}", "x%7D"])
def test_context_names_freeswitch_would_expand_are_not_echoed(
    snapshot, templates, context: str
) -> None:
    encoded = context.replace("$", "%24").replace("{", "%7B").replace("}", "%7D")
    body = (
        "hostname=fs1&section=dialplan&tag_name=&key_name=&key_value="
        f"&Hunt-Context={encoded}&Hunt-Destination-Number=1"
    )
    result, _ = ask(snapshot, templates, body)
    assert result.result == "not_found"
    assert "$" not in result.body and "{" not in result.body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "1001" + "0" * FIELD_LIMITS["user"]),
        ("domain", "acme.example.com" + "." * FIELD_LIMITS["domain"]),
        ("sip_auth_username", None),  # not a decision field: any length, still found
    ],
)
def test_overlong_decision_fields_are_not_found(
    snapshot, templates, field: str, value: str | None
) -> None:
    body = captured_body("11-")
    if value is None:
        body = replace_field(body, field, "1" * 10_000)
        assert ask(snapshot, templates, body)[0].result == "found"
        return
    result, _ = ask(snapshot, templates, replace_field(body, field, value))
    assert result.result == "not_found"


def test_overlong_context_is_not_echoed(snapshot, templates) -> None:
    context = "c" * (FIELD_LIMITS["Hunt-Context"] + 1)
    result, _ = ask(snapshot, templates, dialplan_body("1001", context=context))
    assert result.result == "not_found"
    assert context not in result.body


def test_a_body_with_too_many_fields_is_malformed() -> None:
    body = "hostname=fs1&section=dialplan" + "".join(f"&f{i}=1" for i in range(MAX_FIELDS))
    with pytest.raises(MalformedRequest, match="fields"):
        parse_form(body.encode())


def test_malformed_request_messages_do_not_echo_the_request() -> None:
    for body in (b"hostname=fs1&section=x&user=1&user=2", b"hostname=fs1&section=x&evil%zz=%zz"):
        with pytest.raises(MalformedRequest) as raised:
            parse_form(body)
        assert "user" not in str(raised.value) and "evil" not in str(raised.value)


# --- helpers and templates ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "argument"),
    [("Available", "Available"), ("On Break", "'On Break'"), ("Logged Out", "'Logged Out'")],
)
def test_callcenter_arguments_with_blanks_are_quoted(status: str, argument: str) -> None:
    assert quote_arg(status) == argument


def test_not_found_template_is_exact(templates) -> None:
    assert templates.not_found == NOT_FOUND


def test_override_directory_replaces_one_template(tmp_path: Path, snapshot) -> None:
    (tmp_path / "not_found.xml.j2").write_text(
        '<document type="freeswitch/xml"><section name="result">'
        '<result status="not found"/></section><!-- custom --></document>'
    )
    custom = load_templates(tmp_path)
    assert custom.not_found.endswith("<!-- custom --></document>")
    result, _ = ask(snapshot, custom, captured_body("11-"))  # the rest are shipped ones
    assert result.result == "found"


def test_override_referencing_an_unknown_variable_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "directory.xml.j2").write_text("<document>{{ no_such_thing }}</document>")
    with pytest.raises(TemplateLoadError, match="directory"):
        load_templates(tmp_path)


def test_override_rendering_broken_xml_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "callcenter.conf.xml.j2").write_text("<document><queues></document>")
    with pytest.raises(TemplateLoadError, match="well-formed"):
        load_templates(tmp_path)


def test_override_with_a_syntax_error_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "dialplan.xml.j2").write_text("{% if %}")
    with pytest.raises(TemplateLoadError, match="dialplan"):
        load_templates(tmp_path)


def test_missing_override_directory_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(TemplateLoadError):
        load_templates(tmp_path / "nope")


# --- per-extension call recording ------------------------------------------------------


@pytest.fixture(scope="module", params=SERVED_FROM)
def recording_snapshot(request, state, tmp_path_factory):
    """acme's 1001 records what it makes, 1003 what it answers; recordings moved."""
    acme = state["acme"]
    exts = dict(acme.extensions)
    exts["1001"] = dataclasses.replace(exts["1001"], record="outbound")
    exts["1003"] = dataclasses.replace(exts["1003"], record="inbound")
    moved = {**state, "acme": dataclasses.replace(acme, extensions=exts)}
    roots = AudioRoots(recordings="/srv/rec")
    built = build_snapshot(moved, a1_hashes_for(state), generation="rec", roots=roots)
    return served_from(request.param, built, tmp_path_factory.mktemp("gen"))


def _recorded(root) -> list[str | None]:
    return [data for app, data in actions(root) if app == "record_session"]


def test_a_call_is_recorded_for_the_callee_and_the_caller_that_declare_it(
    recording_snapshot, templates
) -> None:
    _, root = ask(recording_snapshot, templates, dialplan_body("1003", user="1001"))
    base = "/srv/rec/acme/extensions"
    day = "${strftime(%Y-%m-%d)}"
    assert _recorded(root) == [
        f"{base}/1003/{day}/${{uuid}}.in.wav",
        f"{base}/1001/{day}/${{uuid}}.out.wav",
    ]
    names = [app for app, _ in actions(root)]
    assert names.index("record_session") < names.index("bridge")


def test_no_recording_unless_declared_and_never_from_the_request(
    recording_snapshot, templates
) -> None:
    _, root = ask(recording_snapshot, templates, dialplan_body("1001", user="1003"))
    assert _recorded(root) == []  # 1001 records only what it makes; 1003 only what it answers
    # a caller of another domain claiming to be 1001 is not 1001 of acme
    _, root = ask(
        recording_snapshot, templates, dialplan_body("1002", user="1001", domain="x.example")
    )
    assert _recorded(root) == []

"""Voicemail as FreeSWITCH is served it: the spec's defaults resolved per extension, the
directory's box params, busy/unanswered calls to the box, *97/*98, and voicemail.conf."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.desired import tenant_state_from_spec
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import Templates, load_templates
from reconciler.serve.xmlcurl import answer
from specs_schema.models import RecordMode, TenantSpec
from specs_schema.rules import tenant_findings

DOMAIN = "vm.example.com"


def _spec(**settings: Any) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "id": "vm",
            "domain": DOMAIN,
            "name": "VM",
            "settings": {"voicemail": {"enabled": True, **settings}},
            "extensions": [
                {"number": "101", "name": "Own box", "voicemail": {"pin_on_own_phone": False}},
                {"number": "102", "name": "Long box", "voicemail": {"max_message_seconds": 300}},
                {"number": "103", "name": "No box", "voicemail": {"enabled": False}},
            ],
        }
    )


@pytest.fixture(scope="module")
def templates() -> Templates:
    return load_templates()


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    state = {"vm": tenant_state_from_spec(_spec())}
    sip = {("vm", n): f"{n[-1]}" * 32 for n in ("101", "102", "103")}
    pins = {("vm", "101"): "a" * 32, ("vm", "102"): "b" * 32}  # 103 has none
    return build_snapshot(state, sip, voicemail_hashes=pins)


def _ask(snapshot: Snapshot, templates: Templates, **form: str) -> tuple[str, ET.Element]:
    result = answer(snapshot, form, templates)
    return result.result, ET.fromstring(result.body)


def _params(snapshot: Snapshot, templates: Templates, user: str) -> dict[str, str | None]:
    _, root = _ask(snapshot, templates, section="directory", user=user, domain=DOMAIN)
    return {p.get("name") or "": p.get("value") for p in root.iter("param")}


def _actions(root: ET.Element) -> list[tuple[str | None, str | None]]:
    return [(a.get("application"), a.get("data")) for a in root.iter("action")]


def test_the_tenant_default_is_resolved_per_extension() -> None:
    exts = tenant_state_from_spec(_spec(max_message_seconds=60)).extensions
    assert exts["101"].voicemail_enabled and exts["101"].voicemail_max_message_seconds == 60
    assert not exts["101"].voicemail_pin_on_own_phone and exts["102"].voicemail_pin_on_own_phone
    assert exts["102"].voicemail_max_message_seconds == 300
    assert not exts["103"].voicemail_enabled


@pytest.mark.parametrize(
    "voicemail",
    [
        {"pin": "1234"},
        {"max_message_seconds": 45},
        {"max_message_seconds": 900},
        {"enabled": "yes"},
    ],
)
def test_a_pin_in_git_or_an_odd_length_is_refused(voicemail: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TenantSpec.model_validate(
            {
                "id": "vm",
                "domain": DOMAIN,
                "name": "VM",
                "extensions": [{"number": "101", "name": "x", "voicemail": voicemail}],
            }
        )


def test_a_feature_code_may_not_take_a_voicemail_code() -> None:
    data = {
        "id": "vm",
        "domain": DOMAIN,
        "name": "VM",
        "settings": {"feature_codes": {"agent_available": "*97"}},
    }
    findings = tenant_findings(data)
    assert any("voicemail code" in message for _, message in findings), findings


def test_the_directory_serves_the_pin_digest_and_the_tenant_storage(
    snapshot: Snapshot, templates: Templates
) -> None:
    params = _params(snapshot, templates, "101")
    assert params["vm-enabled"] == "true"
    assert params["vm-a1-hash"] == "a" * 32
    assert params["vm-domain-storage-dir"] == "$${pbx_voicemail_dir}/vm"
    assert "password" not in params and "vm-password" not in params


def test_a_box_without_a_pin_is_no_box(snapshot: Snapshot, templates: Templates) -> None:
    params = _params(snapshot, templates, "103")
    assert params["vm-enabled"] == "false"
    assert "vm-a1-hash" not in params
    route = snapshot.route(DOMAIN, "103")
    assert route is not None and route[1].voicemail_profile == ""


def test_an_unanswered_call_goes_to_the_box_of_its_length(
    snapshot: Snapshot, templates: Templates
) -> None:
    _, root = _ask(
        snapshot, templates, section="dialplan", **{"Hunt-Context": DOMAIN},
        **{"Hunt-Destination-Number": "102"},
    )  # fmt: skip
    actions = _actions(root)
    bridge = actions.index(("bridge", f"user/102@{DOMAIN}"))
    [fail_over] = [d for _, d in actions[:bridge] if d and d.startswith("continue_on_fail=")]
    assert {"USER_BUSY", "NO_ANSWER"} <= set(fail_over.partition("=")[2].split(","))
    assert ("voicemail", f"len300 {DOMAIN} 102") in actions[bridge:]
    _, plain = _ask(
        snapshot, templates, section="dialplan", **{"Hunt-Context": DOMAIN},
        **{"Hunt-Destination-Number": "103"},
    )  # fmt: skip
    assert not any(app == "voicemail" for app, _ in _actions(plain))


def test_a_recorded_extension_with_a_box_records_the_call_but_not_the_message(
    templates: Templates,
) -> None:
    """record_session before the bridge; on fail-over each recording is stopped before the
    box answers, so a message never lands among the call recordings too."""
    spec = _spec().model_copy(deep=True)
    spec.extensions[1] = spec.extensions[1].model_copy(update={"record": RecordMode.INBOUND})
    state = {"vm": tenant_state_from_spec(spec)}
    sip = {("vm", n): f"{n[-1]}" * 32 for n in ("101", "102", "103")}
    built = build_snapshot(state, sip, voicemail_hashes={("vm", "102"): "b" * 32})
    _, root = _ask(
        built, templates, section="dialplan", **{"Hunt-Context": DOMAIN},
        **{"Hunt-Destination-Number": "102"},
    )  # fmt: skip
    apps = [app for app, _ in _actions(root)]
    assert apps.index("record_session") < apps.index("bridge")
    assert apps.index("bridge") < apps.index("stop_record_session") < apps.index("voicemail")
    [(_, recorded)] = [a for a in _actions(root) if a[0] == "record_session"]
    assert ("stop_record_session", recorded) in _actions(root)


def _dial(snapshot: Snapshot, templates: Templates, code: str, caller: str | None) -> Any:
    form = {"section": "dialplan", "Hunt-Context": DOMAIN, "Hunt-Destination-Number": code}
    if caller is not None:
        form |= {"variable_user_name": caller, "variable_domain_name": DOMAIN}
    return _ask(snapshot, templates, **form)


def test_star97_checks_the_callers_own_box(snapshot: Snapshot, templates: Templates) -> None:
    result, root = _dial(snapshot, templates, "*97", "101")  # PIN waived on its own phone
    assert result == "found"
    assert ("voicemail", f"check auth default {DOMAIN} 101") in _actions(root)
    _, root = _dial(snapshot, templates, "*97", "102")  # PIN asked
    assert ("voicemail", f"check default {DOMAIN} 102") in _actions(root)


def test_star98_asks_for_any_box_and_its_pin(snapshot: Snapshot, templates: Templates) -> None:
    result, root = _dial(snapshot, templates, "*98", "103")
    assert result == "found"
    assert ("voicemail", f"check default {DOMAIN}") in _actions(root)


@pytest.mark.parametrize(("code", "caller"), [("*97", None), ("*98", None), ("*97", "103")])
def test_no_check_without_an_authenticated_caller_with_a_box(
    snapshot: Snapshot, templates: Templates, code: str, caller: str | None
) -> None:
    result, root = _dial(snapshot, templates, code, caller)
    assert result == "rejected"
    assert not any(app == "voicemail" for app, _ in _actions(root))


def test_voicemail_conf_declares_a_profile_per_length_on_one_database(
    snapshot: Snapshot, templates: Templates
) -> None:
    result, root = _ask(snapshot, templates, section="configuration", key_value="voicemail.conf")
    assert result == "found"
    profiles = {p.get("name"): p for p in root.iter("profile")}
    assert {"default", "len30", "len300", "len600"} <= set(profiles)
    for profile in profiles.values():
        params = {p.get("name"): p.get("value") for p in profile.iter("param")}
        assert params["dbname"] == "voicemail_default"
        # the change-password key is the main menu's: a caller never sets a PIN of their own
        assert params["change-pass-key"] == params["main-menu-key"]
    assert {p.get("name"): p.get("value") for p in profiles["len300"].iter("param")}[
        "max-record-len"
    ] == "300"


def test_a_greeting_from_git_is_handed_to_mod_voicemail_before_the_box(
    templates: Templates,
) -> None:
    """``voicemail_greeting_path`` (read by mod_voicemail's ``voicemail`` application) names
    the tenant's copy of the sound, under the sounds root; a box without one gets none."""
    spec = _spec().model_copy(deep=True)
    box = spec.extensions[1].voicemail.model_copy(update={"greeting": "tenant:greetings/102.wav"})
    spec.extensions[1] = spec.extensions[1].model_copy(update={"voicemail": box})
    state = {"vm": tenant_state_from_spec(spec)}
    assert state["vm"].extensions["102"].voicemail_greeting == "tenant:greetings/102.wav"
    sip = {("vm", n): f"{n[-1]}" * 32 for n in ("101", "102", "103")}
    pins = {("vm", "101"): "a" * 32, ("vm", "102"): "b" * 32}
    built = build_snapshot(state, sip, voicemail_hashes=pins)
    _, root = _ask(
        built, templates, section="dialplan", **{"Hunt-Context": DOMAIN},
        **{"Hunt-Destination-Number": "102"},
    )  # fmt: skip
    actions = _actions(root)
    greeting = ("set", "voicemail_greeting_path=/var/lib/pbx/sounds/vm/greetings/102.wav")
    assert actions.index(greeting) < actions.index(("voicemail", f"len300 {DOMAIN} 102"))
    _, other = _ask(
        built, templates, section="dialplan", **{"Hunt-Context": DOMAIN},
        **{"Hunt-Destination-Number": "101"},
    )  # fmt: skip
    assert not any(d and d.startswith("voicemail_greeting_path") for _, d in _actions(other))


@pytest.mark.parametrize("greeting", ["tenant:../x.wav", "${system(id)}", "/etc/passwd.wav"])
def test_a_greeting_of_another_shape_is_refused(greeting: str) -> None:
    data = _spec().model_dump(mode="json", exclude_none=True)
    data["extensions"][0]["voicemail"]["greeting"] = greeting
    with pytest.raises(ValidationError):
        TenantSpec.model_validate(data)

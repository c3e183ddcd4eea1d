"""Property tests of spec loading: every generated valid spec survives YAML and validation
unchanged; every mutation from a catalogue of mistakes is rejected, pointing at its line."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.core.desired import tenant_state_from_spec
from specs_schema.load import load_specs
from specs_schema.models import TenantSpec
from tests import strategies
from tests.specs_schema.test_tenant_sounds import make_wav

# The gateway of the one gateway contact tests/strategies.py draws.
PLATFORM = "gateways:\n  - {name: out}\n"


@st.composite
def tenant_specs(draw: st.DrawFn) -> TenantSpec:
    """The shared strategy, minus the specs the hardened rules reject (contacts other than
    sofia/gateway/..., absolute sound paths, names with $ { } or invisible characters) until
    tests/strategies.py stops drawing them; then this filter rejects nothing."""
    try:
        return draw(strategies.tenant_specs())
    except ValidationError:
        reject()


@st.composite
def tenant_sets(draw: st.DrawFn, *, min_size: int, max_size: int) -> list[TenantSpec]:
    try:
        return draw(strategies.tenant_sets(min_size=min_size, max_size=max_size))
    except ValidationError:
        reject()


def spec_to_yaml(spec: TenantSpec) -> str:
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("id", spec.id)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def load_text(files: dict[str, str]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "_platform.yaml").write_text(PLATFORM)
        for name, text in files.items():
            Path(tmp, name).write_text(text, encoding="utf-8")
            # the strategies' one tenant sound (tenant:hold.wav) exists in git beside the spec
            make_wav(Path(tmp, name.removesuffix(".yaml"), "sounds", "hold.wav"))
        return load_specs([Path(tmp)]), tmp


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(tenant_specs())
def test_valid_specs_round_trip_through_yaml(spec: TenantSpec) -> None:
    result, _ = load_text({f"{spec.id}.yaml": spec_to_yaml(spec)})
    assert result.errors == ()
    loaded = result.tenants[spec.id].spec
    assert tenant_state_from_spec(loaded) == tenant_state_from_spec(spec)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(tenant_sets(min_size=2, max_size=3))
def test_valid_tenant_sets_validate_together(specs: list[TenantSpec]) -> None:
    result, _ = load_text({f"{s.id}.yaml": spec_to_yaml(s) for s in specs})
    assert result.errors == ()
    assert set(result.tenants) == {s.id for s in specs}


Mutation = Callable[[dict[str, Any]], tuple[str, str, str] | None]
"""Changes the data in place; returns (field path expected in the error, words of the message,
a marker whose LAST occurrence in the YAML text is on the offending line), or None when it
does not apply to this spec."""


def _first(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    items = data.get(key) or []
    return items[0] if items else None


def m_unknown_top_key(data: dict[str, Any]) -> tuple[str, str, str] | None:
    data["nmae"] = "typo"
    return "nmae", "unknown key", "nmae:"


def m_password(data: dict[str, Any]) -> tuple[str, str, str] | None:
    ext = _first(data, "extensions")
    if ext is None:
        return None
    ext["password"] = "hunter2-secret"
    return "extensions[0].password", "passwords are generated", "hunter2-secret"


def m_bad_domain(data: dict[str, Any]) -> tuple[str, str, str] | None:
    data["domain"] = "not a domain"
    return "domain", "fully qualified domain name", "not a domain"


def m_unquoted_number(data: dict[str, Any]) -> tuple[str, str, str] | None:
    ext = _first(data, "extensions")
    if ext is None:
        return None
    ext["number"] = 987654
    return "extensions[0].number", "must be a string", "987654"


def m_duplicate_extension(data: dict[str, Any]) -> tuple[str, str, str] | None:
    ext = _first(data, "extensions")
    if ext is None:
        return None
    # a fresh mapping (a shared one would be dumped as a YAML alias) without the caller id,
    # whose number would otherwise be the last line matching the marker
    data["extensions"].append({"number": ext["number"], "name": "Twin"})
    where = yaml.safe_dump({"number": ext["number"]}).strip()  # quoted or not, as dumped
    return f"extensions[{len(data['extensions']) - 1}].number", "duplicate extension number", where


def m_tier_unknown_agent(data: dict[str, Any]) -> tuple[str, str, str] | None:
    queue = _first(data, "queues")
    if queue is None:
        return None
    queue.setdefault("tiers", []).append({"agent": "zz_nobody"})
    return f"queues[0].tiers[{len(queue['tiers']) - 1}].agent", "unknown agent", "zz_nobody"


def m_user_unknown_extension(data: dict[str, Any]) -> tuple[str, str, str] | None:
    user = _first(data, "users")
    if user is None:
        return None
    user.setdefault("extensions", []).append("99999999")
    return "users[0].extensions", "extension", "99999999"


def m_contact_with_pipe(data: dict[str, Any]) -> tuple[str, str, str] | None:
    agent = _first(data, "agents")
    if agent is None:
        return None
    agent.pop("extension", None)
    agent["contact"] = "user/1@x.example|evil"
    return "agents[0].contact", "dial string", "evil"


def m_contact_runs_a_command(data: dict[str, Any]) -> tuple[str, str, str] | None:
    agent = _first(data, "agents")
    if agent is None:
        return None
    agent.pop("extension", None)
    agent["contact"] = "${system(touch /tmp/pwned)}"
    return "agents[0].contact", "sofia/gateway/<gateway>/<E.164 number>", "pwned"


def m_contact_other_tenant(data: dict[str, Any]) -> tuple[str, str, str] | None:
    agent = _first(data, "agents")
    if agent is None:
        return None
    agent.pop("extension", None)
    agent["contact"] = "user/1001@victim.example.net"
    return "agents[0].contact", "sofia/gateway/<gateway>/<E.164 number>", "victim.example.net"


def m_contact_undeclared_gateway(data: dict[str, Any]) -> tuple[str, str, str] | None:
    agent = _first(data, "agents")
    if agent is None:
        return None
    agent.pop("extension", None)
    agent["contact"] = "sofia/gateway/zzgw/+14155550123"
    return "agents[0].contact", "is not declared in _platform.yaml gateways: [out]", "zzgw"


def m_sound_preprocessor_variable(data: dict[str, Any]) -> tuple[str, str, str] | None:
    queue = _first(data, "queues")
    if queue is None:
        return None
    queue["moh_sound"] = "$${zz_hold_music}"
    return "queues[0].moh_sound", "must be local_stream://", "zz_hold_music"


def m_record_template_runs_a_command(data: dict[str, Any]) -> tuple[str, str, str] | None:
    queue = _first(data, "queues")
    if queue is None:
        return None
    queue["record_template"] = "${system(zzid)}.wav"
    return "queues[0].record_template", "recordings storage", "zzid"


def m_bidi_override_in_name(data: dict[str, Any]) -> tuple[str, str, str] | None:
    data["name"] = "zqxw\u202eevil"
    return "name", "U+202E RIGHT-TO-LEFT OVERRIDE is not allowed", "zqxw"


def m_variable_in_extension_name(data: dict[str, Any]) -> tuple[str, str, str] | None:
    ext = _first(data, "extensions")
    if ext is None:
        return None
    ext["name"] = "zqxw ${system(id)}"
    return "extensions[0].name", "FreeSWITCH receives", "zqxw"


def m_newline_in_name(data: dict[str, Any]) -> tuple[str, str, str] | None:
    data["name"] = "zqxw\nbreak"
    return "name", "control characters", "zqxw"


def m_bad_did(data: dict[str, Any]) -> tuple[str, str, str] | None:
    data.setdefault("inbound_numbers", []).append(
        {"number": "0800-CALL-NOW", "destination": {"queue": "x"}}
    )
    return f"inbound_numbers[{len(data['inbound_numbers']) - 1}].number", "E.164", "0800-CALL-NOW"


MUTATIONS: list[Mutation] = [
    m_unknown_top_key,
    m_password,
    m_bad_domain,
    m_unquoted_number,
    m_duplicate_extension,
    m_tier_unknown_agent,
    m_user_unknown_extension,
    m_contact_with_pipe,
    m_contact_runs_a_command,
    m_contact_other_tenant,
    m_contact_undeclared_gateway,
    m_sound_preprocessor_variable,
    m_record_template_runs_a_command,
    m_bidi_override_in_name,
    m_variable_in_extension_name,
    m_newline_in_name,
    m_bad_did,
]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(tenant_specs(), st.sampled_from(MUTATIONS))
def test_mutations_are_rejected_with_their_field_and_line(
    spec: TenantSpec, mutate: Mutation
) -> None:
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["id"] = spec.id
    expected = mutate(data)
    assume(expected is not None)
    assert expected is not None
    field_path, words, marker = expected
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    result, _ = load_text({f"{spec.id}.yaml": text})
    assert spec.id in result.invalid, "a broken file must freeze its tenant"
    assert spec.id not in result.tenants
    matching = [e for e in result.errors if e.field.startswith(field_path) and words in e.message]
    assert matching, [str(e) for e in result.errors]
    line = text[: text.rindex(marker)].count("\n") + 1
    assert any(e.line == line for e in matching), (line, [str(e) for e in matching])
    assert "hunter2-secret" not in "\n".join(str(e) for e in result.errors)

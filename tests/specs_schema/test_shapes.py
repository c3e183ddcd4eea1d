"""The allow-listed shapes (specs_schema.shapes): examples of each, and properties over
arbitrary strings: whatever validation accepts in a FreeSWITCH-bound field satisfies the
predicate the reconciler re-checks with, and renders without a variable we did not write."""

from __future__ import annotations

import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from specs_schema import shapes
from specs_schema.load import load_specs
from specs_schema.models import AgentSpec, CallerId, ExtensionSpec, QueueSpec, TenantSpec
from specs_schema.shapes import (
    RECORDINGS_ROOT,
    SOUNDS_ROOT,
    character_label,
    display_name_problem,
    is_agent_contact,
    is_display_name,
    is_record_template,
    is_safe_fs_value,
    is_sound,
    record_template_path,
    sound_path,
)

DOMAIN = "acme.example.com"
GATEWAYS = frozenset({"carrier1", "gw.2"})
QUEUE = f"support@{DOMAIN}"

# --- examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "ok"),
    [
        ("user/1001@acme.example.com", True),
        ("sofia/gateway/carrier1/+14155550199", True),
        ("sofia/gateway/gw.2/+442071838799", True),
        ("sofia/gateway/other/+14155550199", False),
        ("user/1001@other.example.com", False),
        ("user/1001@acme.example.com.evil.net", False),
        ("user/1001@ACME.example.com", False),
        ("user/10a1@acme.example.com", False),
        ("loopback/1001/acme.example.com", False),
        ("${system(id)}", False),
        ("{api_on_answer=x}user/1001@acme.example.com", False),
        ("user/1001@acme.example.com\n", False),
        ("sofia/gateway/carrier1/+14155550199\n", False),
        ("", False),
    ],
)
def test_is_agent_contact(contact: str, ok: bool) -> None:
    assert is_agent_contact(contact, DOMAIN, GATEWAYS) is ok


def test_is_agent_contact_does_not_trust_the_domain_argument() -> None:
    evil = "x${system(id)}"
    assert not is_agent_contact(f"user/1@{evil}", evil, GATEWAYS)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("local_stream://moh", "local_stream://moh"),
        ("silence_stream://1000", "silence_stream://1000"),
        ("ivr/ivr-please_hold.wav", "ivr/ivr-please_hold.wav"),
        ("tenant:moh/loop.wav", f"{SOUNDS_ROOT}/acme/moh/loop.wav"),
        ("tenant:hello.ogg", "/var/lib/pbx/sounds/acme/hello.ogg"),
    ],
)
def test_sound_path(value: str, rendered: str) -> None:
    assert is_sound(value)
    assert sound_path(value, "acme") == rendered


@pytest.mark.parametrize(
    ("value", "tenant"),
    [
        ("$${hold_music}", "acme"),
        ("tenant:../beta/x.wav", "acme"),
        ("/etc/passwd.wav", "acme"),
        ("tenant:x.wav", "../beta"),
        ("tenant:x.wav", "acme${x}"),
    ],
)
def test_sound_path_refuses_what_validation_refuses(value: str, tenant: str) -> None:
    with pytest.raises(ValueError, match=r"not an allowed sound|not a tenant id"):
        sound_path(value, tenant)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (
            "support/{date}/{uuid}.wav",
            "/var/lib/pbx/recordings/acme/support/${strftime(%Y-%m-%d)}/${uuid}.wav",
        ),
        (
            "{queue}/{date}_{time}.mp3",
            f"{RECORDINGS_ROOT}/acme/{QUEUE}/${{strftime(%Y-%m-%d)}}_${{strftime(%H%M%S)}}.mp3",
        ),
        ("Calls.2024/x.wav", f"{RECORDINGS_ROOT}/acme/Calls.2024/x.wav"),
    ],
)
def test_record_template_path(value: str, rendered: str) -> None:
    assert is_record_template(value)
    assert record_template_path(value, "acme", QUEUE) == rendered


@pytest.mark.parametrize(
    ("value", "tenant", "queue"),
    [
        ("${system(id)}.wav", "acme", QUEUE),
        ("../x.wav", "acme", QUEUE),
        ("./x.wav", "acme", QUEUE),
        ("{uuid}.wav", "Acme", QUEUE),
        ("{queue}.wav", "acme", "../../etc"),
        ("{queue}.wav", "acme", "q${system(id)}"),
        ("{queue}.wav", "acme", "support@a..b"),
    ],
)
def test_record_template_path_refuses_bad_input(value: str, tenant: str, queue: str) -> None:
    with pytest.raises(ValueError, match=r"not an allowed record template|not a"):
        record_template_path(value, tenant, queue)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("user/1001@acme.example.com", True),
        ("local_stream://moh", True),
        ("a$b", False),
        ("a{b", False),
        ("a}b", False),
        ("a b", False),
        ("a\tb", False),
        ("a\u00a0b", False),
        ("a|b", False),
        ("a'b", False),
        ('a"b', False),
        ("a`b", False),
        ("a\\b", False),
        ("a\x85b", False),
        ("a\u202eb", False),
        ("a\u200bb", False),
        ("", False),
    ],
)
def test_is_safe_fs_value(text: str, safe: bool) -> None:
    assert is_safe_fs_value(text) is safe


@pytest.mark.parametrize(
    ("text", "fs", "problem"),
    [
        ('Zoë & <Ops> "Q" 東京 O\'Brien', True, None),
        ("Acme ${x}", False, None),
        ("Acme ${x}", True, "'$' is not allowed in a name FreeSWITCH receives"),
        ("Acme {x}", True, "'{' is not allowed"),
        ("\u202eAcme", False, "U+202E RIGHT-TO-LEFT OVERRIDE is not allowed"),
        ("A\u2069", False, "U+2069 POP DIRECTIONAL ISOLATE is not allowed"),
        ("A\u200f", False, "U+200F RIGHT-TO-LEFT MARK is not allowed"),
        ("A\u200c", False, "U+200C ZERO WIDTH NON-JOINER is not allowed"),
        ("A\u00ad", False, "U+00AD SOFT HYPHEN is not allowed"),
        ("A\x7f", False, "U+007F DELETE is not allowed"),
        ("A\x9b", False, "U+009B CONTROL CHARACTER is not allowed"),
        ("A\u2029", False, "U+2029 PARAGRAPH SEPARATOR is not allowed"),
        ("A\ud800", False, "U+D800 UNNAMED CHARACTER is not allowed"),
        (" Acme", False, "must not start or end with blanks"),
    ],
)
def test_display_name_problem(text: str, fs: bool, problem: str | None) -> None:
    found = display_name_problem(text, reaches_freeswitch=fs)
    if problem is None:
        assert found is None
        assert is_display_name(text, reaches_freeswitch=fs)
    else:
        assert found is not None and found.startswith(problem)
        assert not is_display_name(text, reaches_freeswitch=fs)


def test_character_label() -> None:
    assert character_label("\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    assert character_label("\n") == "U+000A LINE FEED"
    assert character_label("\x01") == "U+0001 CONTROL CHARACTER"


def test_shapes_is_stdlib_only() -> None:
    source = Path(shapes.__file__).read_text()
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    assert imported <= {"__future__", "re", "unicodedata", "collections", "types"}, imported


# --- properties -------------------------------------------------------------------------------

DANGER = [
    "${system(id)}",
    "$${hostname}",
    "${",
    "$",
    "{",
    "}",
    "{x=1}",
    "[x=1]",
    "|",
    " ",
    "\t",
    "\n",
    "'",
    '"',
    "`",
    "\\",
    "\x00",
    "\x85",
    "\u2028",
    "\u202e",
    "\u2066",
    "\u200b",
    "\ufeff",
    "..",
    "../",
    "/",
    "@",
    "@other.example.com",
    "user/",
    "loopback/",
    "tenant:",
    ",",
    ";",
    ":",
    "%",
    "{uuid}",
    "{queue}",
    "+",
    ".wav",
    "É",
]


def near(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value with dangerous fragments spliced in anywhere."""

    @st.composite
    def spliced(draw: st.DrawFn) -> str:
        text = draw(valid)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(DANGER)) + text[at:]
        return text

    return spliced()


def candidates(*patterns: str) -> st.SearchStrategy[str]:
    valid = st.one_of(*(st.from_regex(p, fullmatch=True) for p in patterns))
    return st.one_of(
        valid, near(valid), st.text(max_size=40), st.lists(st.sampled_from(DANGER)).map("".join)
    )


def accepts(model: type[Any], **fields: Any) -> bool:
    try:
        model.model_validate(fields)
    except ValidationError:
        return False
    return True


CONTACTS = candidates(
    shapes.GATEWAY_CONTACT_PATTERN,
    r"sofia/gateway/carrier1/\+[1-9][0-9]{6,14}",
    r"user/[0-9]{1,4}@acme\.example\.com",
)
SOUNDS = candidates(shapes.SOUND_PATTERN)
RECORDS = candidates(shapes.RECORD_TEMPLATE_PATTERN)
_NICE_NAMES = st.sampled_from(["Alice Smith", "Zoë Ωmega 東京", "O'Brien & Söhne", 'A&B <x> "q"'])
NAMES = st.one_of(
    _NICE_NAMES,
    near(_NICE_NAMES),
    st.text(min_size=1, max_size=20),
    near(st.text(st.characters(codec="utf-8"), min_size=1, max_size=10)),
)
PROPERTY = settings(max_examples=400, deadline=None)


@PROPERTY
@given(CONTACTS)
def test_accepted_contact_is_a_declared_gateway_contact(text: str) -> None:
    accepted = accepts(AgentSpec, name="a", contact=text)
    assert accepted == (shapes.gateway_contact_parts(text) is not None)
    if accepted:
        assert is_safe_fs_value(text)
        gateway = text.split("/")[2]
        assert is_agent_contact(text, DOMAIN, {gateway})
        assert not is_agent_contact(text, DOMAIN, set())


@PROPERTY
@given(SOUNDS, st.sampled_from(["moh_sound", "announce_sound"]))
def test_accepted_sound_renders_safely(text: str, key: str) -> None:
    accepted = accepts(QueueSpec, name="q", number="7000", **{key: text})
    assert accepted == is_sound(text)
    if accepted:
        rendered = sound_path(text, "acme")
        assert is_safe_fs_value(rendered)
        assert ".." not in rendered.split("/")
        if text.startswith("tenant:"):
            assert rendered.startswith(f"{SOUNDS_ROOT}/acme/")


FIXED_EXPANSIONS = re.compile(
    r"\$\{uuid\}|\$\{strftime\(%Y-%m-%d\)\}|\$\{strftime\(%H%M%S\)\}|\$\{caller_id_number\}"
)


@PROPERTY
@given(RECORDS)
def test_accepted_record_template_expands_only_our_variables(text: str) -> None:
    accepted = accepts(QueueSpec, name="q", number="7000", record_template=text)
    assert accepted == is_record_template(text)
    if accepted:
        rendered = record_template_path(text, "acme", QUEUE)
        assert rendered.startswith(f"{RECORDINGS_ROOT}/acme/")
        literal = FIXED_EXPANSIONS.sub("X", rendered)
        assert is_safe_fs_value(literal), rendered
        assert not {".", ".."} & set(literal.split("/"))


@PROPERTY
@given(NAMES)
def test_accepted_display_names(text: str) -> None:
    fs_ok = accepts(ExtensionSpec, number="1001", name=text)
    caller_ok = accepts(CallerId, name=text)
    plain_ok = accepts(TenantSpec, id="acme", domain=DOMAIN, name=text)
    assert fs_ok == caller_ok == is_display_name(text, reaches_freeswitch=True)
    assert plain_ok == is_display_name(text)
    if fs_ok:
        assert not set("${}") & set(text)
    if plain_ok:  # nothing invisible, direction-changing or line-breaking
        assert not {unicodedata.category(c) for c in text} & {"Cc", "Cf", "Cs", "Zl", "Zp"}


# --- through YAML and the loader --------------------------------------------------------------

BASE: dict[str, Any] = {
    "id": "acme",
    "domain": DOMAIN,
    "name": "Acme",
    "settings": {"outbound_caller_id": {"name": "Acme", "number": "+14155550100"}},
    "extensions": [{"number": "1001", "name": "Alice", "caller_id": {"name": "Alice"}}],
    "agents": [
        {"name": "alice", "extension": "1001"},
        {"name": "night", "contact": "sofia/gateway/carrier1/+14155550199"},
    ],
    "queues": [{"name": "support", "number": "7000", "tiers": [{"agent": "night"}]}],
}

FIELDS: dict[str, tuple[tuple[str | int, ...], st.SearchStrategy[str]]] = {
    "agents[1].contact": (("agents", 1, "contact"), CONTACTS),
    "queues[0].moh_sound": (("queues", 0, "moh_sound"), SOUNDS),
    "queues[0].announce_sound": (("queues", 0, "announce_sound"), SOUNDS),
    "queues[0].record_template": (("queues", 0, "record_template"), RECORDS),
    "extensions[0].name": (("extensions", 0, "name"), NAMES),
    "extensions[0].caller_id.name": (("extensions", 0, "caller_id", "name"), NAMES),
    "settings.outbound_caller_id.name": (("settings", "outbound_caller_id", "name"), NAMES),
    "domain": (("domain",), candidates(shapes.DOMAIN_PATTERN)),
    "queues[0].name": (("queues", 0, "name"), candidates(shapes.SLUG_PATTERN)),
    "agents[1].name": (("agents", 1, "name"), candidates(shapes.SLUG_PATTERN)),
    "extensions[0].number": (("extensions", 0, "number"), candidates(shapes.DIGITS_PATTERN)),
}


def placed(loc: tuple[str | int, ...], value: str) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    target = data
    for part in loc[:-1]:
        target = target[part]
    target[loc[-1]] = value
    if loc == ("agents", 1, "name"):
        data["queues"][0]["tiers"][0]["agent"] = value
    if loc == ("extensions", 0, "number"):
        data["agents"][0]["extension"] = value
        data["settings"]["extension_length"] = {"min": 1, "max": 15}
    return data


@st.composite
def field_and_value(draw: st.DrawFn) -> tuple[str, str]:
    field = draw(st.sampled_from(sorted(FIELDS)))
    return field, draw(FIELDS[field][1])


def fs_check(field: str, value: str, spec: TenantSpec) -> bool:
    if field == "agents[1].contact":
        return is_agent_contact(value, spec.domain, {"carrier1"}) and is_safe_fs_value(value)
    if field.endswith("_sound"):
        return is_safe_fs_value(sound_path(value, spec.id))
    if field.endswith("record_template"):
        literal = FIXED_EXPANSIONS.sub("X", record_template_path(value, spec.id, QUEUE))
        return is_safe_fs_value(literal)
    if field.endswith("name") and field not in ("queues[0].name", "agents[1].name"):
        return is_display_name(value, reaches_freeswitch=True)
    return is_safe_fs_value(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_and_value())
def test_any_string_in_a_freeswitch_bound_field_is_rejected_or_safe(
    pair: tuple[str, str],
) -> None:
    field, value = pair
    data = placed(FIELDS[field][0], value)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "_platform.yaml").write_text("gateways: [{name: carrier1}]\n")
        Path(tmp, "acme.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
        result = load_specs([Path(tmp)])
    if "acme" in result.tenants:
        spec = result.tenants["acme"].spec
        # what the loader holds: YAML may have normalised the text (U+0085 NEL reads back as
        # a line break, folded into a blank), and that is what would reach FreeSWITCH
        held: Any = spec.model_dump()
        for part in FIELDS[field][0]:
            held = held[part]
        assert fs_check(field, held, spec), (value, held)
    else:
        assert "acme" in result.invalid
        assert any(e.line > 0 and e.col > 0 for e in result.errors)

"""A hostile corpus: tenant files written to run code on a switch, reach another tenant,
mislead a reader or take the loader down. Each must fail alone (its tenant frozen, every
other tenant loaded), fast, at the line and column of the offending node."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from specs_schema.load import SpecSet, load_specs

MARK = "<<!>>"

PLATFORM = """\
super_admins:
  - {email: ops@pbx.example.net, name: Platform Operator}
gateways:
  - {name: carrier1}
"""

BASE = """\
# yaml-language-server: $schema=../specs_schema/tenant.schema.json
id: acme
domain: acme.example.com
name: Acme
settings:
  outbound_caller_id: {name: Acme Corporation, number: "+14155550100"}
users:
  - {email: alice@acme.example.com, name: Alice Smith, extensions: ["1001"]}
extensions:
  - number: "1001"
    name: Alice
    caller_id: {name: Alice Smith, number: "1001"}
  - {number: "1002", name: Bob}
agents:
  - {name: alice, extension: "1001"}
  - name: night
    contact: sofia/gateway/carrier1/+14155550199
queues:
  - name: support
    number: "7000"
    moh_sound: local_stream://moh
    announce_sound: ivr/ivr-please_hold.wav
    record_template: support/{date}/{uuid}.wav
    tiers:
      - {agent: alice}
      - {agent: night, level: 2}
inbound_numbers:
  - {number: "+14155550100", destination: {queue: support}}
"""

BETA = """\
id: beta
domain: beta.example.com
name: Beta
extensions:
  - {number: "2001", name: Carol}
agents:
  - {name: carol, contact: sofia/gateway/carrier1/+14155550123}
"""


def q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML); BMP characters only."""
    return json.dumps(value)


@dataclass(frozen=True)
class Case:
    """``old`` (once in BASE) becomes ``new``; ``at`` is the text the error must point at
    (its first character, on the line that carries ``MARK``)."""

    id: str
    old: str
    new: str
    field: str
    message: str
    at: str


def contact(id: str, value: str, message: str = "sofia/gateway/<gateway>/<E.164 number>") -> Case:
    old = "    contact: sofia/gateway/carrier1/+14155550199\n"
    return Case(id, old, f"    contact: {q(value)}{MARK}\n", "agents[1].contact", message, q(value))


def sound(id: str, key: str, value: str) -> Case:
    old = {"moh_sound": "local_stream://moh", "announce_sound": "ivr/ivr-please_hold.wav"}[key]
    return Case(
        id,
        f"    {key}: {old}\n",
        f"    {key}: {q(value)}{MARK}\n",
        f"queues[0].{key}",
        "must be local_stream://<name>, silence_stream://<milliseconds>",
        q(value),
    )


def record(id: str, value: str) -> Case:
    return Case(
        id,
        "    record_template: support/{date}/{uuid}.wav\n",
        f"    record_template: {q(value)}{MARK}\n",
        "queues[0].record_template",
        "must be a path in this tenant's recordings storage",
        q(value),
    )


BIDI = "bidirectional formatting characters"
INVISIBLE = "invisible characters make names"
CONTROL = "must not contain control characters"
EXPANDS = "is not allowed in a name FreeSWITCH receives: it expands ${...} and $${...}"


def name(id: str, where: str, value: str, message: str) -> Case:
    """A display name in one of the places names are written (whole lines of BASE)."""
    places = {
        "tenant": ("name: Acme\n", "name: {v}\n", "name"),
        "user": (
            '  - {email: alice@acme.example.com, name: Alice Smith, extensions: ["1001"]}\n',
            '  - {{email: alice@acme.example.com, name: {v}, extensions: ["1001"]}}\n',
            "users[0].name",
        ),
        "extension": ("    name: Alice\n", "    name: {v}\n", "extensions[0].name"),
        "flow-extension": (
            '  - {number: "1002", name: Bob}\n',
            '  - {{number: "1002", name: {v}}}\n',
            "extensions[1].name",
        ),
        "caller-id": (
            '    caller_id: {name: Alice Smith, number: "1001"}\n',
            '    caller_id: {{name: {v}, number: "1001"}}\n',
            "extensions[0].caller_id.name",
        ),
        "outbound": (
            '  outbound_caller_id: {name: Acme Corporation, number: "+14155550100"}\n',
            '  outbound_caller_id: {{name: {v}, number: "+14155550100"}}\n',
            "settings.outbound_caller_id.name",
        ),
    }
    old, template, field = places[where]
    new = template.format(v=q(value)).removesuffix("\n") + f"{MARK}\n"
    return Case(id, old, new, field, message, q(value))


VALUE_CASES: tuple[Case, ...] = (
    # agent contacts: mod_callcenter expands variables in them on every offered call
    contact("contact-system-call", "${system(id)}"),
    contact("contact-system-call-suffix", "sofia/gateway/carrier1/+14155550199${system(id)}"),
    contact("contact-preprocessor-variable", "$${external_sip_ip}"),
    contact(
        "contact-api-on-answer-prefix",
        "{api_on_answer=system id}sofia/gateway/carrier1/+14155550199",
    ),
    contact("contact-channel-var-prefix", "[leg_timeout=1]sofia/gateway/carrier1/+14155550199"),
    contact("contact-other-tenant-user", "user/1001@other.example.com"),
    contact("contact-own-user-written-out", "user/1001@acme.example.com"),
    contact("contact-loopback", "loopback/1001/other"),
    contact("contact-other-profile", "sofia/internal/1001@other.example.com"),
    contact("contact-gateway-traversal", "sofia/gateway/../+14155550199"),
    contact("contact-not-e164", "sofia/gateway/carrier1/1001"),
    contact("contact-upper-case", "SOFIA/gateway/carrier1/+14155550199"),
    contact("contact-trailing-newline", "sofia/gateway/carrier1/+14155550199\n"),
    contact("contact-blank", "sofia/gateway/carrier1/+14155550199 x"),
    contact("contact-pipe", "sofia/gateway/carrier1/+14155550199|x"),
    contact("contact-quote", "sofia/gateway/carrier1/+14155550199'"),
    contact("contact-two-legs", "sofia/gateway/carrier1/+14155550199,user/1001@b.example.com"),
    contact(
        "contact-undeclared-gateway",
        "sofia/gateway/evilgw/+14155550199",
        "gateway 'evilgw' is not declared in _platform.yaml gateways: [carrier1]",
    ),
    # sounds: $${...} is expanded by the XML preprocessor, ${...} at playback
    sound("moh-preprocessor-variable", "moh_sound", "$${hold_music}"),
    sound("moh-system-call", "moh_sound", "${system(id)}"),
    sound("moh-variable-in-stream", "moh_sound", "local_stream://${x}"),
    sound("moh-var-prefix", "moh_sound", "{loops=1}local_stream://moh"),
    sound("moh-pipe", "moh_sound", "local_stream://moh|x"),
    sound("moh-tone-stream", "moh_sound", "tone_stream://%(250,0,440)"),
    sound("moh-shout-url", "moh_sound", "shout://evil.example.com/x.mp3"),
    sound("moh-silence-negative", "moh_sound", "silence_stream://-1"),
    sound("announce-traversal", "announce_sound", "../../../etc/passwd.wav"),
    sound("announce-absolute", "announce_sound", "/etc/shadow.wav"),
    sound("announce-tenant-traversal", "announce_sound", "tenant:../beta/hello.wav"),
    sound("announce-tenant-absolute", "announce_sound", "tenant:/var/lib/pbx/sounds/beta/x.wav"),
    sound("announce-upper-case", "announce_sound", "ivr/IVR-hold.wav"),
    sound("announce-no-extension", "announce_sound", "ivr/ivr-please_hold"),
    sound("announce-blank", "announce_sound", "ivr/please hold.wav"),
    # record templates: mod_callcenter expands them when the call is answered
    record("record-system-call", "${system(id)}.wav"),
    record("record-variable", "{date}/${uuid}.wav"),
    record("record-preprocessor", "$${recordings_dir}/x.wav"),
    record("record-unknown-placeholder", "{evil}/{uuid}.wav"),
    record("record-traversal", "../beta/{uuid}.wav"),
    record("record-inner-traversal", "{date}/../../{uuid}.wav"),
    record("record-absolute", "/tmp/{uuid}.wav"),
    record("record-script", "{uuid}.sh"),
    record("record-blank-in-placeholder", "support/{uuid }.wav"),
    record("record-pipe", "x|y.wav"),
    record("record-nested-braces", "{{uuid}}.wav"),
    # display names: what a reader sees must be what it is
    name(
        "tenant-rlo",
        "tenant",
        "Acme \u202eproC",
        "U+202E RIGHT-TO-LEFT OVERRIDE is not allowed: " + BIDI,
    ),
    name(
        "user-isolate", "user", "Alice \u2066Smith", "U+2066 LEFT-TO-RIGHT ISOLATE is not allowed"
    ),
    name("extension-lrm", "extension", "Alice\u200e", "U+200E LEFT-TO-RIGHT MARK is not allowed"),
    name(
        "extension-alm", "flow-extension", "Bob\u061c", "U+061C ARABIC LETTER MARK is not allowed"
    ),
    name(
        "extension-zwsp",
        "extension",
        "Ali\u200bce",
        "U+200B ZERO WIDTH SPACE is not allowed: " + INVISIBLE,
    ),
    name("extension-zwj", "flow-extension", "B\u200dob", "U+200D ZERO WIDTH JOINER is not allowed"),
    name(
        "caller-id-bom",
        "caller-id",
        "\ufeffAlice",
        "U+FEFF ZERO WIDTH NO-BREAK SPACE is not allowed",
    ),
    name("caller-id-word-joiner", "caller-id", "Ali\u2060ce", "U+2060 WORD JOINER is not allowed"),
    name(
        "tenant-c1-control",
        "tenant",
        "Acme\u0085",
        "U+0085 CONTROL CHARACTER is not allowed: display names " + CONTROL,
    ),
    name("user-escape", "user", "Alice\u001b[31m", "U+001B ESCAPE is not allowed"),
    name(
        "extension-line-separator",
        "extension",
        "Ali\u2028ce",
        "U+2028 LINE SEPARATOR is not allowed",
    ),
    name("extension-system-call", "extension", "Alice ${system(id)}", "'$' " + EXPANDS),
    name("extension-preprocessor", "flow-extension", "Bob $${hostname}", "'$' " + EXPANDS),
    name("caller-id-brace", "caller-id", "Alice {x}", "'{' " + EXPANDS),
    name("outbound-system-call", "outbound", "Acme ${system(id)}", "'$' " + EXPANDS),
    # YAML values that are not the text they look like
    Case(
        "bare-yes-name",
        "    name: Alice\n",
        f"    name: yes{MARK}\n",
        "extensions[0].name",
        "quote it",
        "yes",
    ),
    Case(
        "bare-on-sound",
        "    moh_sound: local_stream://moh\n",
        f"    moh_sound: on{MARK}\n",
        "queues[0].moh_sound",
        'quote it (e.g. "yes")',
        "on",
    ),
    Case(
        "bare-true-contact",
        "    contact: sofia/gateway/carrier1/+14155550199\n",
        f"    contact: true{MARK}\n",
        "agents[1].contact",
        "as a boolean",
        "true",
    ),
    Case(
        "date-for-name",
        "    name: Alice\n",
        f"    name: 2024-01-01{MARK}\n",
        "extensions[0].name",
        "as a date: quote it",
        "2024",
    ),
    Case(
        "binary-name",
        "    name: Alice\n",
        f"    name: !!binary QWxpY2U={MARK}\n",
        "",
        "YAML tag !!binary is not allowed",
        "!!binary",
    ),
    Case(
        "binary-contact",
        "    contact: sofia/gateway/carrier1/+14155550199\n",
        f"    contact: !!binary c29maWE={MARK}\n",
        "",
        "YAML tag !!binary is not allowed",
        "!!binary",
    ),
    Case(
        "python-tag",
        "name: Acme\n",
        f"name: !!python/object/apply:os.system [id]{MARK}\n",
        "",
        "YAML tag !!python/object/apply:os.system is not allowed",
        "!!python",
    ),
    Case(
        "local-tag",
        "name: Acme\n",
        f"name: !shell id{MARK}\n",
        "",
        "YAML tag !shell is not allowed",
        "!shell",
    ),
    Case(
        "boolean-key",
        "    name: Alice\n",
        f"    name: Alice\n    on: 1{MARK}\n",
        "extensions[0]",
        "mapping keys must be text: YAML reads the unquoted key 'on' as a boolean",
        "on",
    ),
    Case(
        "merge-key",
        '  - {number: "1002", name: Bob}\n',
        f'  - {{number: "1002", name: Bob}}\n  - {{<<: {{name: Eve}}, number: "1003"}}{MARK}\n',
        "",
        "YAML merge keys (<<) are not supported in tenant files; write the keys out",
        "<<",
    ),
    Case(
        "anchor",
        "    name: Alice\n",
        f"    name: &who Alice{MARK}\n",
        "",
        "YAML anchors and aliases are not supported in tenant files (found &who)",
        "&who",
    ),
    Case(
        "undefined-alias",
        "    name: Alice\n",
        f"    name: *who{MARK}\n",
        "",
        "found undefined alias 'who'",
        "*who",
    ),
    Case(
        "second-document",
        "inbound_numbers:\n",
        f"---{MARK}\ninbound_numbers:\n",
        "",
        "holds one YAML document",
        "---",
    ),
)


def load(tmp_path: Path, acme: str | bytes | None, **files: str) -> SpecSet:
    (tmp_path / "_platform.yaml").write_text(PLATFORM)
    (tmp_path / "beta.yaml").write_text(BETA)
    if isinstance(acme, bytes):
        (tmp_path / "acme.yaml").write_bytes(acme)
    elif acme is not None:
        (tmp_path / "acme.yaml").write_text(acme, encoding="utf-8")
    for file_name, text in files.items():
        (tmp_path / file_name).write_text(text)
    return load_specs([tmp_path])


def assert_fails_alone(result: SpecSet, tenant: str = "acme") -> None:
    """The hostile file freezes its own tenant only; every error has a real position."""
    assert tenant in result.invalid, [str(e) for e in result.errors]
    assert tenant not in result.tenants
    assert "beta" in result.tenants, [str(e) for e in result.errors]
    assert result.platform is not None
    for error in result.errors:
        assert error.line > 0 and error.col > 0, error


def test_the_base_files_are_valid(tmp_path: Path) -> None:
    result = load(tmp_path, BASE)
    assert result.errors == ()
    assert set(result.tenants) == {"acme", "beta"}


@pytest.mark.parametrize("case", VALUE_CASES, ids=lambda c: c.id)
def test_hostile_value_is_rejected_at_its_node(tmp_path: Path, case: Case) -> None:
    assert BASE.count(case.old) == 1, case.old
    marked = BASE.replace(case.old, case.new)
    line = marked.count("\n", 0, marked.index(MARK)) + 1
    marked_line = marked.splitlines()[line - 1]
    col = marked_line.index(case.at) + 1
    result = load(tmp_path, marked.replace(MARK, ""))
    assert_fails_alone(result)
    acme = [e for e in result.errors if e.file.endswith("acme.yaml")]
    assert acme == list(result.errors), "only the hostile file has errors"
    assert any(
        (e.line, e.col) == (line, col) and e.field == case.field and case.message in e.message
        for e in acme
    ), (line, col, [str(e) for e in acme])
    assert {e.line for e in acme} == {line}, [str(e) for e in acme]


def test_str_tag_is_still_a_way_to_write_text(tmp_path: Path) -> None:
    result = load(tmp_path, BASE.replace('  - {number: "1002"', "  - {number: !!str 1002"))
    assert result.errors == ()


def test_platform_admin_names_are_display_names(tmp_path: Path) -> None:
    """(and a mistake outside `gateways:` leaves the gateway list usable by tenants)"""
    platform = PLATFORM.replace("name: Platform Operator", 'name: "Platform \\u202eOperator"')
    result = load(tmp_path, BASE, **{"_platform.yaml": platform})
    assert [str(e).removeprefix(f"{tmp_path}/") for e in result.errors] == [
        "_platform.yaml:2:40: super_admins[0].name: U+202E RIGHT-TO-LEFT OVERRIDE is not "
        "allowed: bidirectional formatting characters make a name display differently "
        "from what it is"
    ]


# --- files that attack the parser ------------------------------------------------------------

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_billion_laughs_is_rejected_in_milliseconds(tmp_path: Path) -> None:
    assert len(BILLION_LAUGHS) < 500
    result = load(tmp_path, BILLION_LAUGHS)  # anchors are refused before any expansion
    assert_fails_alone(result)
    (error,) = [e for e in result.errors if e.file.endswith("acme.yaml")]
    assert (error.line, error.col) == (1, 4)
    assert "anchors and aliases are not supported in tenant files (found &a)" in error.message
    assert "(80 more anchor(s)/alias(es) in this file)" in error.message


def test_merge_keys_are_reported_one_by_one_with_the_anchor(tmp_path: Path) -> None:
    text = BASE.replace(
        "extensions:\n",
        'x-base: &base {name: Template}\nextensions:\n  - <<: *base\n    number: "1003"\n',
    )
    result = load(tmp_path, text)
    assert_fails_alone(result)
    rows = [(e.line, e.col, e.message) for e in result.errors]
    assert rows[0][:2] == (9, 9) and "found &base" in rows[0][2]
    assert rows[1] == (
        11,
        5,
        "YAML merge keys (<<) are not supported in tenant files; write the keys out",
    )


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("id: acme\nname: " + "[" * 500 + "]" * 500 + "\n", 2, 70),
        ("id: acme\nname: " + "{a: " * 100 + "x" + "}" * 100 + "\n", 2, 259),
        ("id: acme\n" + "".join("  " * i + "k:\n" for i in range(300)), 66, 129),
        ("id: acme\nx:\n" + "".join("  " * i + "-\n" for i in range(1, 80)), 66, 129),
    ],
    ids=["flow-sequences", "flow-mappings", "block-mappings", "block-sequences"],
)
def test_deep_nesting_is_rejected_where_it_passes_the_limit(
    tmp_path: Path, text: str, line: int, col: int
) -> None:
    result = load(tmp_path, text)
    assert_fails_alone(result)
    (error,) = result.errors
    assert (error.line, error.col) == (line, col)
    assert "nested more than 64 levels deep" in error.message


def test_libyaml_nesting_limit_is_an_error_too(tmp_path: Path) -> None:
    result = load(tmp_path, "id: acme\nname: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_fails_alone(result)
    assert "nested more than 64 levels deep" in result.errors[0].message


def test_too_many_nodes(tmp_path: Path) -> None:
    text = "id: acme\nx: [" + "0," * 210_000 + "0]\n"
    assert len(text) < 1024 * 1024
    result = load(tmp_path, text)
    assert_fails_alone(result)
    (error,) = result.errors
    assert error.line == 2 and "more than 200000 YAML nodes" in error.message


def test_file_over_one_mib_is_not_parsed(tmp_path: Path) -> None:
    text = BASE + "# " + "x" * (1024 * 1024) + "\n"
    result = load(tmp_path, text)
    assert_fails_alone(result)
    (error,) = result.errors
    assert (error.line, error.col) == (1, 1)
    assert error.message == (
        f"file is {len(text)} bytes; a spec file is limited to 1048576 bytes (1 MiB)"
    )


@pytest.mark.parametrize(
    ("content", "line", "col", "message"),
    [
        (
            BASE.encode().replace(b"name: Bob", b"name: B\xffob"),
            13,
            29,
            "not UTF-8 text: byte 0xff",
        ),
        (
            BASE.encode().replace(b"name: Bob", b"name: B\x00ob"),
            13,
            29,
            "control characters are not allowed (U+0000 NULL)",
        ),
        (b"- id: acme\n- domain: acme.example.com\n", 1, 1, "must be a YAML mapping"),
        (b"\n\n# only\n'acme'\n", 4, 1, "must be a YAML mapping"),
    ],
    ids=["not-utf8", "nul-byte", "a-list", "a-string"],
)
def test_unreadable_content_is_an_error_of_its_file(
    tmp_path: Path, content: bytes, line: int, col: int, message: str
) -> None:
    result = load(tmp_path, content)
    assert_fails_alone(result)
    (error,) = result.errors
    assert (error.line, error.col) == (line, col), error
    assert message in error.message


# --- names that are not files --------------------------------------------------------------


def test_fifo_is_an_error_and_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "acme.yaml")  # opening it for reading would block forever
    result = load(tmp_path, None)
    assert_fails_alone(result)
    (error,) = result.errors
    assert error.message.startswith("not a regular file but a FIFO")


def test_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").mkdir()
    result = load(tmp_path, None)
    assert_fails_alone(result)
    assert result.errors[0].message.startswith("not a regular file but a directory")


def test_dangling_symlink_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").symlink_to(tmp_path / "gone.yaml")
    result = load(tmp_path, None)
    assert_fails_alone(result)
    assert result.errors[0].message.startswith(f"dangling symbolic link to '{tmp_path}/gone.yaml'")


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").symlink_to(tmp_path / "acme.yml")
    (tmp_path / "acme.yml").symlink_to(tmp_path / "acme.yaml")
    result = load(tmp_path, None)
    assert_fails_alone(result)
    assert {e.message for e in result.errors} == {
        "cannot read file: Too many levels of symbolic links"
    }


def test_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    (elsewhere / "acme-v2").write_text(BASE)
    tenants = tmp_path / "tenants.d"
    tenants.mkdir()
    (tenants / "acme.yaml").symlink_to(elsewhere / "acme-v2")
    result = load(tenants, None)
    assert result.errors == ()
    assert set(result.tenants) == {"acme", "beta"}


def test_symlink_to_a_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "acme.yaml").symlink_to(tmp_path / "pipe")
    result = load(tmp_path, None)
    assert_fails_alone(result)
    assert result.errors[0].message.startswith("not a regular file but a FIFO")

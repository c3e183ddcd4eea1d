"""Carrier gateways in ``_platform.yaml``: fully declared, allow-listed shapes only, every
error at its file:line:col; and the platform's JSON Schema kept with the models."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.core.desired import platform_state_from_spec
from specs_schema.load import load_specs
from specs_schema.schema import committed_platform_schema, render_platform_schema
from tests.conftest import EXAMPLE_TENANTS

FULL = """\
gateways:
  - name: carrier1
    proxy: sip.carrier1.example.net:5061
    registrar: reg.carrier1.example.net
    realm: carrier1.example.net
    username: "4415550100"
    register: true
    transport: tls
    expire_seconds: 600
    retry_seconds: 45
    ping_seconds: 20
    caller_id_in_from: false
    codecs: [PCMA, PCMU]
    nodes: ["10.0.0.5:8021", fs2.example.net]
"""


def platform_errors(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "_platform.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return [str(e).removeprefix(f"{tmp_path}/") for e in load_specs([tmp_path]).errors]


def test_a_fully_declared_gateway_validates_and_keeps_every_field(tmp_path: Path) -> None:
    (tmp_path / "_platform.yaml").write_text(FULL)
    specs = load_specs([tmp_path])
    assert specs.errors == ()
    assert specs.platform is not None
    gateway = platform_state_from_spec(specs.platform).gateways["carrier1"]
    assert gateway.managed
    assert (gateway.proxy, gateway.registrar, gateway.realm) == (
        "sip.carrier1.example.net:5061",
        "reg.carrier1.example.net",
        "carrier1.example.net",
    )
    assert (gateway.username, gateway.register, gateway.transport) == ("4415550100", True, "tls")
    assert (gateway.expire_seconds, gateway.retry_seconds, gateway.ping_seconds) == (600, 45, 20)
    assert gateway.caller_id_in_from is False
    assert gateway.codecs == "PCMA,PCMU"
    assert gateway.node_names == ("10.0.0.5:8021", "fs2.example.net")
    assert gateway.credentials == "missing"  # a username and no password given


def test_defaults_come_from_the_proxy(tmp_path: Path) -> None:
    (tmp_path / "_platform.yaml").write_text("gateways:\n  - {name: c2, proxy: '192.0.2.1:5070'}\n")
    specs = load_specs([tmp_path])
    assert specs.platform is not None
    gateway = platform_state_from_spec(specs.platform).gateways["c2"]
    assert (gateway.registrar, gateway.realm) == ("192.0.2.1:5070", "192.0.2.1")
    assert (gateway.register, gateway.transport, gateway.credentials) == (False, "udp", "none")
    assert gateway.carried_by("anything:8021", "anything")


def test_a_name_only_gateway_is_managed_outside(tmp_path: Path) -> None:
    (tmp_path / "_platform.yaml").write_text("gateways:\n  - {name: legacy}\n")
    specs = load_specs([tmp_path])
    assert specs.platform is not None
    assert not platform_state_from_spec(specs.platform).gateways["legacy"].managed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("proxy", "'sip.${system(id)}.net'", "must be host or host:port"),
        ("proxy", "'{x=1}sip.example.net'", "must be host or host:port"),
        ("proxy", "'sip.example.net|x'", "must be host or host:port"),
        ("proxy", "'sip example.net'", "must be host or host:port"),
        ("proxy", "'sip:carrier.example.net'", "must be host or host:port"),
        ("proxy", "'carrier.example.net:99999'", "port 99999 is not in 1..65535"),
        ("realm", "'a.example.net:5060'", "must be a host name or an IP address"),
        ("username", "'user${x}'", "must be a SIP user name"),
        ("username", "'us er'", "must be a SIP user name"),
        ("codecs", "['PCMU', 'G729{x}']", "must be a codec name"),
        ("transport", "sctp", "udp"),
        ("expire_seconds", "10", "greater than or equal to 60"),
        ("register", "'yes'", "must be true or false"),
    ],
)
def test_hostile_or_wrong_values_are_errors_at_their_line(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    base = {"proxy": "sip.example.net", "username": "u1"}
    base.pop(field, None)
    lines = [f"    {k}: {v}" for k, v in base.items()] + [f"    {field}: {value}"]
    text = "gateways:\n  - name: c1\n" + "\n".join(lines) + "\n"
    errors = platform_errors(tmp_path, text)
    assert len(errors) == 1, errors
    line = 2 + len(lines)
    assert errors[0].startswith(f"_platform.yaml:{line}:"), errors
    assert message in errors[0]


def test_settings_without_a_proxy_are_an_error(tmp_path: Path) -> None:
    errors = platform_errors(tmp_path, "gateways:\n  - {name: c1, username: u1}\n")
    assert len(errors) == 1
    assert "'username' needs 'proxy'" in errors[0]


def test_register_needs_a_username(tmp_path: Path) -> None:
    errors = platform_errors(
        tmp_path, "gateways:\n  - {name: c1, proxy: sip.example.net, register: true}\n"
    )
    assert len(errors) == 1
    assert "'register: true' needs 'username'" in errors[0]


def test_a_password_in_git_is_an_unknown_key(tmp_path: Path) -> None:
    errors = platform_errors(
        tmp_path, "gateways:\n  - {name: c1, proxy: sip.example.net, password: hunter22}\n"
    )
    assert len(errors) == 1
    assert "unknown key 'password'" in errors[0]
    assert "hunter22" not in errors[0]


def test_the_example_platform_file_declares_a_carried_gateway() -> None:
    specs = load_specs([EXAMPLE_TENANTS])
    assert specs.errors == ()
    assert specs.platform is not None
    gateways = platform_state_from_spec(specs.platform).gateways
    assert gateways["carrier2"].managed
    assert not gateways["carrier1"].managed


def test_committed_platform_schema_matches_models() -> None:
    assert committed_platform_schema() == render_platform_schema()

"""A tenant's ``outbound:``: hostile or wrong declarations are errors naming file:line:col
and the field, and the tenant stays frozen; the caller id is only ever the tenant's own."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from specs_schema.load import load_specs

PLATFORM = """\
gateways:
  - {name: carrier1}
  - {name: carrier2}
outbound_caller_ids:
  acme: ["+14155550199"]
"""

ACME = """\
id: acme
domain: acme.example.com
name: Acme
extensions:
  - {number: "1001", name: Alice, calling_right: national}
  - {number: "1002", name: Bob}
inbound_numbers:
  - {number: "+14155550100", destination: {extension: "1001"}}
outbound:
  country: US
  caller_id: {number: "+14155550100"}
  routes:
    - {match: national, gateways: [carrier1, carrier2]}
"""

BETA = """\
id: beta
domain: beta.example.com
name: Beta
extensions:
  - {number: "1001", name: Alice}
inbound_numbers:
  - {number: "+12125550100", destination: {extension: "1001"}}
"""


def _errors(tmp_path: Path, acme: str, platform: str = PLATFORM) -> list[str]:
    (tmp_path / "_platform.yaml").write_text(platform)
    (tmp_path / "acme.yaml").write_text(textwrap.dedent(acme))
    (tmp_path / "beta.yaml").write_text(BETA)
    result = load_specs([tmp_path])
    assert "beta" in result.tenants  # another tenant's mistake never freezes beta
    if result.errors:
        assert "acme" in result.invalid and "acme" not in result.tenants
    return [str(e).removeprefix(f"{tmp_path}/") for e in result.errors]


def test_the_valid_declaration_loads(tmp_path: Path) -> None:
    assert _errors(tmp_path, ACME) == []


def test_a_caller_id_of_another_tenant_is_an_error_at_its_line(tmp_path: Path) -> None:
    spec = ACME.replace(
        'caller_id: {number: "+14155550100"}', 'caller_id: {number: "+12125550100"}'
    )
    assert _errors(tmp_path, spec) == [
        "acme.yaml:11:23: outbound.caller_id.number: caller id '+12125550100' is neither one of "
        "this tenant's inbound_numbers nor allowed to it in _platform.yaml outbound_caller_ids: "
        "a tenant presents only its own numbers"
    ]


def test_a_number_the_platform_allows_is_a_valid_caller_id(tmp_path: Path) -> None:
    spec = ACME.replace('+14155550100"}\n  routes', '+14155550199"}\n  routes')
    assert _errors(tmp_path, spec) == []
    assert any("outbound_caller_ids" in e for e in _errors(tmp_path, spec, "gateways: []\n"))


def test_the_emergency_caller_id_is_checked_too(tmp_path: Path) -> None:
    spec = ACME + '  emergency: {caller_id: "+12125550100"}\n'
    [error] = _errors(tmp_path, spec)
    assert error.startswith(
        "acme.yaml:14:26: outbound.emergency.caller_id: caller id '+12125550100'"
    )


def test_a_route_to_an_undeclared_gateway_is_an_error(tmp_path: Path) -> None:
    spec = ACME.replace("[carrier1, carrier2]", "[carrier1, carrier9]")
    assert _errors(tmp_path, spec) == [
        "acme.yaml:13:46: outbound.routes[0].gateways[1]: gateway 'carrier9' is not declared in "
        "_platform.yaml gateways: [carrier1, carrier2]"
    ]


@pytest.mark.parametrize(
    "match",
    ["'${system(id)}'", "'{x=1}national'", "'national|+1'", "'+1 212'", "'+1{'", "'local '"],
)
def test_a_hostile_route_match_is_an_error_never_sent(tmp_path: Path, match: str) -> None:
    spec = ACME.replace("match: national", f"match: {match}")
    errors = _errors(tmp_path, spec)
    assert errors and all("outbound.routes[0].match" in e or "emergency" in e for e in errors)
    assert errors[0].startswith("acme.yaml:13:")


@pytest.mark.parametrize("gateway", ["'${x}'", "'a|b'", "'a b'", "'{a}'"])
def test_a_hostile_gateway_name_is_an_error(tmp_path: Path, gateway: str) -> None:
    spec = ACME.replace("[carrier1, carrier2]", f"[{gateway}]")
    errors = _errors(tmp_path, spec)
    assert errors and all(
        e.startswith("acme.yaml:13:") and "outbound.routes[0].gateways[0]" in e for e in errors
    )


def test_an_unsupported_country_is_an_error(tmp_path: Path) -> None:
    [error] = _errors(tmp_path, ACME.replace("country: US", "country: ZZ"))
    assert error.startswith("acme.yaml:10:12: outbound.country: unsupported country 'ZZ'")


def test_international_rights_need_international_declared(tmp_path: Path) -> None:
    spec = ACME.replace("calling_right: national", "calling_right: international")
    assert _errors(tmp_path, spec) == [
        "acme.yaml:5:50: extensions[0].calling_right: international calls are off for this "
        "tenant: declare outbound.limits.international: true to grant this right"
    ]
    assert _errors(tmp_path, spec + "  limits: {international: true}\n") == []


def test_a_calling_right_needs_outbound(tmp_path: Path) -> None:
    spec = ACME.split("outbound:")[0]
    assert _errors(tmp_path, spec) == [
        "acme.yaml:5:50: extensions[0].calling_right: a calling right beyond internal needs the "
        "tenant's `outbound:` (country, routes, caller id)"
    ]


def test_only_the_countrys_emergency_numbers_may_be_declared(tmp_path: Path) -> None:
    [error] = _errors(tmp_path, ACME + '  emergency: {numbers: ["911", "9005551234"]}\n')
    assert error.startswith("acme.yaml:14:32: outbound.emergency.numbers[1]: '9005551234' is not")


def test_emergency_calls_need_a_route(tmp_path: Path) -> None:
    [error] = _errors(tmp_path, ACME.replace("match: national", "match: international"))
    assert "outbound.routes: emergency calls need a route" in error


def test_a_route_twice_is_an_error(tmp_path: Path) -> None:
    spec = ACME + "    - {match: national, gateways: [carrier2]}\n"
    [error] = _errors(tmp_path, spec)
    assert error.startswith("acme.yaml:14:15: outbound.routes[1].match: 'national' is routed twice")


def test_the_limits_have_safe_defaults(tmp_path: Path) -> None:
    (tmp_path / "_platform.yaml").write_text(PLATFORM)
    (tmp_path / "acme.yaml").write_text(ACME)
    spec = load_specs([tmp_path]).tenants["acme"].spec
    assert spec.outbound is not None
    limits = spec.outbound.limits
    assert (limits.max_concurrent, limits.calls_per_minute, limits.international) == (2, 5, False)
    assert spec.outbound.default_calling_right == "internal"


def test_an_extension_may_not_take_an_emergency_number(tmp_path: Path) -> None:
    spec = ACME.replace('number: "1002", name: Bob', 'number: "911", name: Bob')
    spec = spec.replace(
        "inbound_numbers:", "settings: {extension_length: {min: 3}}\ninbound_numbers:"
    )
    errors = _errors(tmp_path, spec)
    assert any(
        e.startswith("acme.yaml:6:") and "extensions[1].number: '911' is an emergency number" in e
        for e in errors
    ), errors

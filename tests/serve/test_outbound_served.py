"""Outside calls as FreeSWITCH is served them: normalised, classified, checked against the
calling extension's right, limited, bridged through the tenant's own gateways in order with
its own caller id; refused with a cause otherwise; and never through another tenant."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.identity import DatabaseIdentity
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.snapshot import Lookups, Snapshot, build_snapshot
from reconciler.serve.templating import Templates, load_templates
from reconciler.serve.xmlcurl import Result, answer
from specs_schema.models import TenantSpec

ACME = "acme.example.com"
BETA = "beta.example.com"


def _spec(tenant: str, domain: str, did: str, **outbound: Any) -> TenantSpec:
    data: dict[str, Any] = {
        "id": tenant,
        "domain": domain,
        "name": tenant.title(),
        "extensions": [
            {"number": "101", "name": "Boss", "calling_right": "international"},
            {"number": "102", "name": "Desk", "calling_right": "national"},
            {"number": "103", "name": "Lobby"},
            {"number": "104", "name": "Local", "calling_right": "local"},
        ],
        "inbound_numbers": [{"number": did, "destination": {"extension": "101"}}],
    }
    if outbound is not None:
        data["outbound"] = {
            "country": "US",
            "area_code": "415",
            "caller_id": {"name": f"{tenant.title()} Inc", "number": did},
            "routes": [
                {"match": "national", "gateways": [f"{tenant}_a", f"{tenant}_b"]},
                {"match": "emergency", "gateways": [f"{tenant}_e"]},
                {"match": "international", "gateways": [f"{tenant}_a"]},
                {"match": "+4420", "gateways": [f"{tenant}_london"]},
            ],
            "limits": {"max_concurrent": 3, "calls_per_minute": 7, "international": True},
            **outbound,
        }
    return TenantSpec.model_validate(data)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return load_templates()


def _snapshot(**outbound: Any) -> Snapshot:
    acme = _spec("acme", ACME, "+14155550100", **outbound)
    beta = _spec("beta", BETA, "+12125550100", emergency={"caller_id": "+12125550100"})
    state = {"acme": tenant_state_from_spec(acme), "beta": tenant_state_from_spec(beta)}
    sip = {(t, n): "a" * 32 for t in ("acme", "beta") for n in ("101", "102", "103", "104")}
    return build_snapshot(state, sip)


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return _snapshot()


def _dial(
    lookups: Lookups, templates: Templates, number: str, caller: str | None, domain: str = ACME
) -> tuple[Result, list[tuple[str | None, str | None]]]:
    form = {
        "section": "dialplan",
        "Hunt-Context": domain,
        "Hunt-Destination-Number": number,
    }
    if caller is not None:
        form |= {"variable_user_name": caller, "variable_domain_name": domain}
    result = answer(lookups, form, templates)
    root = ET.fromstring(result.body)
    return result.result, [(a.get("application"), a.get("data")) for a in root.iter("action")]


def test_a_national_number_is_normalised_limited_and_bridged_through_the_route_in_order(
    snapshot: Snapshot, templates: Templates
) -> None:
    result, actions = _dial(snapshot, templates, "2125550123", "102")
    assert result is Result.FOUND
    assert ("set", "pbx_outbound_class=national") in actions
    assert ("set", "effective_caller_id_number=+14155550100") in actions
    assert ("set", "effective_caller_id_name=Acme Inc") in actions
    limits = [data for app, data in actions if app == "limit"]
    assert limits == [
        "hash pbx_outbound acme 3 set:pbx_outbound_refused=concurrent_limit,"
        "hangup:CALL_REJECTED inline",
        "hash pbx_outbound_rate acme 7/60 set:pbx_outbound_refused=rate_limit,"
        "hangup:CALL_REJECTED inline",
    ]
    bridges = [data for app, data in actions if app == "bridge"]
    assert bridges == ["sofia/gateway/acme_a/+12125550123", "sofia/gateway/acme_b/+12125550123"]
    fail_on = dict(a for a in actions if a[0] == "set" and "continue_on_fail" in (a[1] or ""))
    causes = fail_on["set"].split("=", 1)[1].split(",")  # type: ignore[union-attr]
    assert "NORMAL_CIRCUIT_CONGESTION" in causes and "GATEWAY_DOWN" in causes
    assert not {"USER_BUSY", "NO_ANSWER", "CALL_REJECTED"} & set(causes)
    # the limits come before any bridge
    apps = [app for app, _ in actions]
    assert apps.index("limit") < apps.index("bridge")


@pytest.mark.parametrize(
    ("dialled", "e164"),
    [
        ("4155550123", "+14155550123"),
        ("14155550123", "+14155550123"),
        ("5550123", "+14155550123"),
        ("+14155550123", "+14155550123"),
    ],
)
def test_national_formats_reach_the_carrier_in_e164(
    snapshot: Snapshot, templates: Templates, dialled: str, e164: str
) -> None:
    _, actions = _dial(snapshot, templates, dialled, "104")
    assert ("bridge", f"sofia/gateway/acme_a/{e164}") in actions


def test_the_longest_e164_prefix_route_wins(snapshot: Snapshot, templates: Templates) -> None:
    _, actions = _dial(snapshot, templates, "011442079460000", "101")
    assert [d for a, d in actions if a == "bridge"] == ["sofia/gateway/acme_london/+442079460000"]
    _, actions = _dial(snapshot, templates, "011331234567890", "101")
    assert [d for a, d in actions if a == "bridge"] == ["sofia/gateway/acme_a/+331234567890"]


@pytest.mark.parametrize(
    ("caller", "dialled", "reason"),
    [
        ("102", "011442079460000", "no_right"),
        ("103", "2125550123", "no_right"),
        ("104", "2125550123", "no_right"),
        (None, "2125550123", "no_right"),  # a caller who is no extension (a transferred DID)
    ],
)
def test_a_call_beyond_the_callers_right_is_refused_with_a_cause(
    snapshot: Snapshot, templates: Templates, caller: str | None, dialled: str, reason: str
) -> None:
    result, actions = _dial(snapshot, templates, dialled, caller)
    assert result is Result.REJECTED
    assert ("set", f"pbx_outbound_refused={reason}") in actions
    assert ("hangup", "OUTGOING_CALL_BARRED") in actions
    assert not any(app in ("bridge", "limit") for app, _ in actions)


def test_international_is_refused_unless_the_tenant_declares_it(templates: Templates) -> None:
    closed = _snapshot(limits={"international": False})
    result, actions = _dial(closed, templates, "011442079460000", "102")
    assert result is Result.REJECTED
    assert ("set", "pbx_outbound_refused=international_off") in actions


def test_emergency_passes_from_an_internal_extension_unlimited_with_its_caller_id(
    snapshot: Snapshot, templates: Templates
) -> None:
    result, actions = _dial(snapshot, templates, "911", "103")
    assert result is Result.FOUND
    assert [d for a, d in actions if a == "bridge"] == ["sofia/gateway/acme_e/911"]
    assert not any(app == "limit" for app, _ in actions)
    assert ("set", "effective_caller_id_number=+14155550100") in actions
    _, actions = _dial(snapshot, templates, "911", "103", domain=BETA)
    assert ("bridge", "sofia/gateway/beta_e/911") in actions


def test_each_tenant_uses_only_its_own_routes_and_caller_id(
    snapshot: Snapshot, templates: Templates
) -> None:
    _, actions = _dial(snapshot, templates, "2125550123", "102", domain=BETA)
    bridges = [d for a, d in actions if a == "bridge"]
    assert bridges == ["sofia/gateway/beta_a/+12125550123", "sofia/gateway/beta_b/+12125550123"]
    assert ("set", "effective_caller_id_number=+12125550100") in actions
    assert not any("acme" in (d or "") for _, d in actions)
    # an extension of acme claiming beta's context is no caller there: no right
    form = {
        "section": "dialplan",
        "Hunt-Context": BETA,
        "Hunt-Destination-Number": "2125550123",
        "variable_user_name": "101",
        "variable_domain_name": ACME,
    }
    assert answer(snapshot, form, templates).result is Result.REJECTED


def test_a_tenant_without_outbound_rejects_outside_numbers_as_before(templates: Templates) -> None:
    spec = TenantSpec.model_validate(
        {"id": "plain", "domain": "plain.example.com", "name": "Plain",
         "extensions": [{"number": "101", "name": "A"}]}
    )  # fmt: skip
    snap = build_snapshot({"plain": tenant_state_from_spec(spec)}, {("plain", "101"): "a" * 32})
    result, actions = _dial(snap, templates, "2125550123", "101", domain="plain.example.com")
    assert result is Result.REJECTED
    assert actions == [("hangup", "UNALLOCATED_NUMBER")]


def test_no_outside_number_is_unallocated(snapshot: Snapshot, templates: Templates) -> None:
    for dialled in ("12", "0", "555", "+", "2125550123$", "1800${x}"):
        result, actions = _dial(snapshot, templates, dialled, "101")
        assert result is Result.REJECTED and actions == [("hangup", "UNALLOCATED_NUMBER")]


def test_the_outbound_policy_survives_the_generation_file(
    snapshot: Snapshot, templates: Templates, tmp_path: Path
) -> None:
    identity = DatabaseIdentity("sys", "oid", "db")
    path = tmp_path / "gen"
    write_generation(snapshot, path, identity=identity, dsn_fingerprint="f")
    mapped = open_generation(path, expected_identity=identity, dsn_fingerprint="f")
    try:
        for number, caller, domain in [
            ("2125550123", "102", ACME),
            ("011442079460000", "101", ACME),
            ("011442079460000", "102", ACME),
            ("911", "103", BETA),
        ]:
            assert _dial(mapped, templates, number, caller, domain) == _dial(
                snapshot, templates, number, caller, domain
            )
    finally:
        mapped.close()

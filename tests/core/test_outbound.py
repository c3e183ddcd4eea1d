"""Normalisation, classification and the outbound decision, as properties: whatever is
dialled, what reaches a carrier is '+' and digits (or the country's emergency number), and a
number of class C is placed for right R exactly when R reaches C."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import Outbound, OutboundRoute
from reconciler.core.outbound import OutboundCall, OutboundPolicy, Refusal, Refused, decide
from reconciler.core.plan import plan
from reconciler.core.plan_text import render_text
from specs_schema.load import load_specs
from specs_schema.numbering import (
    CLASS_RANK,
    COUNTRIES,
    RIGHT_RANK,
    CallingRight,
    NumberClass,
    allows,
    classify,
)

ROUTES = (
    OutboundRoute("emergency", ("e1",)),
    OutboundRoute("national", ("n1", "n2")),
    OutboundRoute("international", ("i1",)),
)
countries = st.sampled_from(sorted(COUNTRIES))
rights = st.sampled_from(list(CallingRight))
dialled_text = st.one_of(
    st.text(alphabet="0123456789+*#", max_size=18),
    st.text(max_size=18),
    st.from_regex(r"\A(\+|00|011|0011|0|1)?[0-9]{3,14}\Z"),
)


def _policy(country: str, *, international: bool = True, area: str | None = None) -> OutboundPolicy:
    settings = Outbound(country, "+14155550100", area_code=area, international=international)
    return OutboundPolicy(settings, ROUTES)


@given(countries, dialled_text)
def test_what_reaches_the_carrier_is_e164_or_the_countrys_emergency_number(
    code: str, dialled: str
) -> None:
    country = COUNTRIES[code]
    classified = classify(dialled, country)
    if classified is None:
        return
    number, number_class = classified
    if number_class is NumberClass.EMERGENCY:
        assert number in country.emergency
    else:
        assert number.startswith("+") and number[1:].isascii() and number[1:].isdigit()
        assert number[1] != "0" and 8 <= len(number) <= 16


@given(countries, rights, dialled_text)
def test_a_number_of_class_c_is_placed_for_right_r_iff_r_reaches_c(
    code: str, right: CallingRight, dialled: str
) -> None:
    decision = decide(_policy(code), right, dialled)
    classified = classify(dialled, COUNTRIES[code])
    if classified is None:
        assert decision is None
        return
    permitted = CLASS_RANK[classified.number_class] <= RIGHT_RANK[right]
    assert permitted == allows(right, classified.number_class)
    assert isinstance(decision, OutboundCall) == permitted
    if isinstance(decision, Refused):
        assert decision.reason is Refusal.NO_RIGHT


@given(countries, rights, dialled_text)
def test_international_stays_refused_until_declared(
    code: str, right: CallingRight, dialled: str
) -> None:
    decision = decide(_policy(code, international=False), right, dialled)
    if decision is not None and decision.number_class is NumberClass.INTERNATIONAL:
        assert isinstance(decision, Refused) and decision.reason is Refusal.INTERNATIONAL_OFF


@given(countries, rights)
def test_emergency_numbers_always_pass_without_limits(code: str, right: CallingRight) -> None:
    for number in COUNTRIES[code].emergency:
        decision = decide(_policy(code), right, number)
        assert isinstance(decision, OutboundCall)
        assert decision.number == number and not decision.limited
        assert decision.gateways == ("e1",)


def test_known_numbers_classify_as_their_country_bills_them() -> None:
    us, gb = COUNTRIES["US"], COUNTRIES["GB"]
    assert classify("4155550123", us, "415") == ("+14155550123", NumberClass.LOCAL)
    assert classify("5550123", us, "415") == ("+14155550123", NumberClass.LOCAL)
    assert classify("12125550123", us, "415") == ("+12125550123", NumberClass.NATIONAL)
    assert classify("6135550123", us) == ("+16135550123", NumberClass.NATIONAL)  # Canada
    # the NANP's other countries and premium numbers cost like international calls
    assert classify("8765550123", us) == ("+18765550123", NumberClass.INTERNATIONAL)
    assert classify("9005550123", us) == ("+19005550123", NumberClass.INTERNATIONAL)
    assert classify("011442079460000", us) == ("+442079460000", NumberClass.INTERNATIONAL)
    assert classify("02079460000", gb) == ("+442079460000", NumberClass.NATIONAL)
    assert classify("0012125550123", gb) == ("+12125550123", NumberClass.INTERNATIONAL)
    assert classify("09098790000", gb) == ("+449098790000", NumberClass.INTERNATIONAL)
    assert classify("999", gb) == ("999", NumberClass.EMERGENCY)
    assert classify("0011442079460000", COUNTRIES["AU"]) == (
        "+442079460000",
        NumberClass.INTERNATIONAL,
    )
    for not_a_number in ("", "+", "123", "1234567", "0123456789", "+0123456789", "21255501x3"):
        assert classify(not_a_number, us) is None


def test_a_national_route_carries_local_and_emergency_calls_when_they_have_none() -> None:
    policy = OutboundPolicy(
        Outbound("US", "+14155550100", area_code="415"),
        (OutboundRoute("national", ("n1",)),),
    )
    for dialled in ("4155550123", "911", "2125550123"):
        decision = decide(policy, "national", dialled)
        assert isinstance(decision, OutboundCall) and decision.gateways == ("n1",)
    refused = decide(policy, "international", "011442079460000")
    assert isinstance(refused, Refused) and refused.reason is Refusal.INTERNATIONAL_OFF


def test_a_plan_shows_the_outbound_settings_and_routes() -> None:
    loaded = load_specs([Path(__file__).resolve().parents[2] / "tenants.d"]).tenants["acme"]
    text = render_text(plan({"acme": tenant_state_from_spec(loaded.spec)}, {}))
    assert '+ outbound_route national (gateways=["carrier1", "answering_service"])' in text
    assert '+ outbound outbound (country="US" caller_id_number="+14155550100"' in text

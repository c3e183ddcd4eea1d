"""Dialled numbers -> E.164 and a number class, per the tenant's country. Pure, stdlib only.

A tenant file names its country (``outbound.country``); the table below says how people
there dial: the international prefix (``011``, ``00``, ``0011``), the trunk prefix before a
national number (``0``, or ``1`` in the NANP), how long a national significant number is,
the emergency numbers, and which national prefixes cost like international calls (premium
rate services, and the NANP's other countries behind ``+1``: calls to Jamaica are the classic
toll fraud). Only the countries listed are supported: an unknown country is a validation
error, never a guess.

The class decides which calling right a call needs (``RIGHT_RANK``): ``emergency`` is
always allowed; ``local`` (the tenant's own area code, when it declares one), ``national``
and ``international`` need at least that right. Premium and foreign-NANP numbers are
classed ``international``.

The same functions run when a tenant file is validated and on the xml_curl hot path (one
lookup per dialled outside number): a few string operations, no regular expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple


class NumberClass(StrEnum):
    """What a dialled outside number is, from the cheapest to the most expensive."""

    EMERGENCY = "emergency"
    LOCAL = "local"
    NATIONAL = "national"
    INTERNATIONAL = "international"


class CallingRight(StrEnum):
    """How far an extension may call: each right includes the ones before it."""

    INTERNAL = "internal"
    LOCAL = "local"
    NATIONAL = "national"
    INTERNATIONAL = "international"


RIGHT_RANK = MappingProxyType({r: i for i, r in enumerate(CallingRight)})
"""Rank of each right: a right allows every class whose ``CLASS_RANK`` is not higher."""

CLASS_RANK = MappingProxyType(
    {
        NumberClass.EMERGENCY: 0,  # = internal: emergency numbers are always allowed
        NumberClass.LOCAL: RIGHT_RANK[CallingRight.LOCAL],
        NumberClass.NATIONAL: RIGHT_RANK[CallingRight.NATIONAL],
        NumberClass.INTERNATIONAL: RIGHT_RANK[CallingRight.INTERNATIONAL],
    }
)


def allows(right: str, number_class: NumberClass) -> bool:
    """True when an extension with ``right`` may call a number of ``number_class``."""
    rank = RIGHT_RANK.get(right)  # type: ignore[call-overload]
    return rank is not None and CLASS_RANK[number_class] <= rank


@dataclass(frozen=True, slots=True)
class Country:
    """How a country dials. ``national_lengths``: digits of a national significant number
    (after the trunk prefix); ``costly_prefixes``: national prefixes classed international."""

    code: str
    name: str
    calling_code: str
    international_prefix: str
    trunk_prefix: str
    national_lengths: frozenset[int]
    emergency: tuple[str, ...]
    costly_prefixes: tuple[str, ...] = ()
    local_length: int = 0
    """Digits of a number dialled without its area code (NANP 7-digit dialling); 0: none."""

    @property
    def nanp(self) -> bool:
        return self.calling_code == "1"


# Area codes behind +1 that are other countries than the US (with its territories) and
# Canada: Caribbean nations and Bermuda, billed as international calls.
_NANP_FOREIGN = (
    "242", "246", "264", "268", "284", "345", "441", "473", "649", "658", "664", "721",
    "758", "767", "784", "809", "829", "849", "868", "869", "876",
)  # fmt: skip
_NANP_PREMIUM = ("900", "976")
_NANP_LENGTHS = frozenset({10})

COUNTRIES: MappingProxyType[str, Country] = MappingProxyType(
    {
        c.code: c
        for c in (
            Country("US", "United States", "1", "011", "1", _NANP_LENGTHS, ("911",),
                    _NANP_FOREIGN + _NANP_PREMIUM, 7),
            Country("CA", "Canada", "1", "011", "1", _NANP_LENGTHS, ("911",),
                    _NANP_FOREIGN + _NANP_PREMIUM, 7),
            Country("GB", "United Kingdom", "44", "00", "0", frozenset({9, 10}),
                    ("999", "112"), ("9",)),
            Country("DE", "Germany", "49", "00", "0", frozenset(range(6, 12)),
                    ("112", "110"), ("900", "137")),
            Country("FR", "France", "33", "00", "0", frozenset({9}),
                    ("112", "15", "17", "18"), ("89",)),
            Country("AU", "Australia", "61", "0011", "0", frozenset({9}),
                    ("000", "112"), ("19",)),
        )
    }
)  # fmt: skip
"""The supported countries by ISO 3166-1 alpha-2 code."""

_E164_MIN_DIGITS = 7
_E164_MAX_DIGITS = 15


class Classified(NamedTuple):
    """A dialled number as it is sent to the carrier and its class: E.164 (``+`` and
    digits), or the emergency number itself (carriers route ``911``, not an E.164)."""

    number: str
    number_class: NumberClass


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def to_e164(dialled: str, country: Country, area_code: str = "") -> str | None:
    """``dialled`` as E.164, or None when it is not an outside number of a known shape.

    ``+...`` and the international prefix are taken as E.164; a national number needs the
    trunk prefix (NANP: 10 digits, or 11 starting with 1, or 7 with the tenant's area code).
    """
    if dialled.startswith("+"):
        digits = dialled[1:]
    elif dialled.startswith(country.international_prefix):
        digits = dialled[len(country.international_prefix) :]
    elif country.nanp and len(dialled) == 10:
        digits = "1" + dialled
    elif country.nanp and len(dialled) == 11 and dialled.startswith("1"):
        digits = dialled
    elif country.local_length and area_code and len(dialled) == country.local_length:
        digits = country.calling_code + area_code + dialled
    elif not country.nanp and dialled.startswith(country.trunk_prefix):
        digits = country.calling_code + dialled[len(country.trunk_prefix) :]
    else:
        return None
    if not _digits(digits) or not _E164_MIN_DIGITS <= len(digits) <= _E164_MAX_DIGITS:
        return None
    if digits[0] == "0":
        return None
    if digits.startswith(country.calling_code) and not _national_ok(
        digits[len(country.calling_code) :], country
    ):
        return None
    return "+" + digits


def _national_ok(nsn: str, country: Country) -> bool:
    """A national significant number of this country has a valid length and start."""
    if len(nsn) not in country.national_lengths or nsn[0] == "0":
        return False
    # NANP: NPA and exchange both start 2-9
    return not country.nanp or (nsn[0] != "1" and nsn[3] not in "01")


def classify(dialled: str, country: Country, area_code: str = "") -> Classified | None:
    """The number to send and its class, or None when ``dialled`` is no outside number."""
    if dialled in country.emergency:
        return Classified(dialled, NumberClass.EMERGENCY)
    e164 = to_e164(dialled, country, area_code)
    if e164 is None:
        return None
    return Classified(e164, class_of(e164, country, area_code))


def class_of(e164: str, country: Country, area_code: str = "") -> NumberClass:
    """The class of an E.164 number dialled by someone in ``country``."""
    digits = e164[1:]
    if not digits.startswith(country.calling_code):
        return NumberClass.INTERNATIONAL
    nsn = digits[len(country.calling_code) :]
    if not _national_ok(nsn, country) or nsn.startswith(country.costly_prefixes):
        return NumberClass.INTERNATIONAL
    if area_code and nsn.startswith(area_code):
        return NumberClass.LOCAL
    return NumberClass.NATIONAL

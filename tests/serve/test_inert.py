"""The second wall: which tenant strings may reach FreeSWITCH, and record templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.serve.inert import shown, text_clean, text_problem, token_clean, token_problem


@pytest.mark.parametrize(
    "value", ["Alice Smith", 'A&B <x> "q"', "Zoë 東京 🎧", "O'Brien", "a]]>b", "50% off"]
)
def test_display_text_with_markup_or_unicode_is_fine(value: str) -> None:
    assert text_problem(value) is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("${system(id)}", "expands"),
        ("$${domain}", "expands"),
        ("cost $5", "expands"),
        ("{x}", "expands"),
        ("tab\there", "control"),
        ("nul\x00", "control"),
        ("c1\x85", "control"),
        ("del\x7f", "control"),
        ("bad\ufffe", "non-XML"),
        ("lone\ud800", "non-XML"),
    ],
)
def test_text_freeswitch_would_interpret_is_refused(value: str, says: str) -> None:
    problem = text_problem(value)
    assert problem is not None and says in problem


@pytest.mark.parametrize("value", ["1001", "*22", "+14155550100", "support@acme.example.com"])
def test_names_and_numbers_are_tokens(value: str) -> None:
    assert token_problem(value) is None


@pytest.mark.parametrize("value", ["", "a b", "a\u00a0b", "it's", 'a"b', "a\\b", "a|b", "a`b"])
def test_tokens_cannot_split_or_quote_arguments(value: str) -> None:
    assert token_problem(value) is not None


def test_shown_escapes_and_cuts() -> None:
    assert shown("a\nb") == "'a\\nb'"
    assert len(shown("x" * 100)) == 40


@given(st.text(max_size=30))
def test_the_fast_checks_agree_with_the_explained_ones(value: str) -> None:
    assert text_clean(value) == (text_problem(value) is None)
    assert token_clean(value) == (token_problem(value) is None)

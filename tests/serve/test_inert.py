"""The second wall: which tenant strings may reach FreeSWITCH, and record templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.serve.inert import render_record_template, shown, text_problem, token_problem


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


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("calls.wav", "calls.wav"),
        ("rec/{uuid}.wav", "rec/${uuid}.wav"),
        ("{date}/{time}-{queue}.mp3", "${strftime(%Y-%m-%d)}/${strftime(%H%M%S)}-q@t.example.mp3"),
    ],
)
def test_record_template_placeholders_become_fixed_channel_variables(
    template: str, rendered: str
) -> None:
    assert render_record_template(template, "q@t.example") == rendered


@pytest.mark.parametrize(
    "template",
    ["${uuid}.wav", "{caller}.wav", "{UUID}.wav", "{uuid.wav", "a}.wav", "rec dir/x.wav", ""],
)
def test_anything_else_in_a_record_template_is_refused(template: str) -> None:
    with pytest.raises(ValueError):
        render_record_template(template, "q@t.example")


@given(st.text(max_size=60))
def test_a_rendered_record_template_expands_only_what_the_reconciler_wrote(text: str) -> None:
    try:
        rendered = render_record_template(text, "q@t.example")
    except ValueError:
        return
    fixed = ("${uuid}", "${strftime(%Y-%m-%d)}", "${strftime(%H%M%S)}")
    for expansion in fixed:
        rendered = rendered.replace(expansion, "")
    assert not any(char in rendered for char in "${}")


def test_shown_escapes_and_cuts() -> None:
    assert shown("a\nb") == "'a\\nb'"
    assert len(shown("x" * 100)) == 40

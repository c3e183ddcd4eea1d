"""What FreeSWITCH gets of a queue: one rule for the served callcenter.conf and for the
live comparison with a switch's listing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.model import Queue
from reconciler.core.served import served_queue_params

ROOT = "/var/lib/pbx/recordings/acme"


def params(**fields: object) -> dict[str, str]:
    return served_queue_params(
        Queue(name="support", number="7000", **fields), "acme", "acme.example.com"
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("calls.wav", f"{ROOT}/calls.wav"),
        ("rec/{uuid}.wav", f"{ROOT}/rec/${{uuid}}.wav"),
        (
            "{date}/{time}-{queue}.mp3",
            f"{ROOT}/${{strftime(%Y-%m-%d)}}/${{strftime(%H%M%S)}}-support@acme.example.com.mp3",
        ),
    ],
)
def test_record_template_placeholders_become_fixed_channel_variables(
    template: str, rendered: str
) -> None:
    assert params(record_template=template)["record-template"] == rendered


@pytest.mark.parametrize(
    "template",
    [
        "${uuid}.wav",
        "{caller}.wav",
        "{UUID}.wav",
        "{uuid.wav",
        "a}.wav",
        "rec dir/x.wav",
        "../x.wav",
        "",
    ],
)
def test_anything_else_in_a_record_template_is_refused(template: str) -> None:
    with pytest.raises(ValueError):
        params(record_template=template)


def test_sounds_resolve_into_the_tenants_own_storage_or_stay_shipped() -> None:
    served = params(moh_sound="tenant:hold/music.wav", announce_sound="ivr/ivr-please_hold.wav")
    assert served["moh-sound"] == "/var/lib/pbx/sounds/acme/hold/music.wav"
    assert served["announce-sound"] == "ivr/ivr-please_hold.wav"
    with pytest.raises(ValueError):
        params(moh_sound="$${sounds_dir}/x.wav")


@given(st.text(max_size=60))
def test_a_rendered_record_template_expands_only_what_the_reconciler_wrote(text: str) -> None:
    try:
        rendered = params(record_template=text)["record-template"]
    except ValueError:
        return
    for expansion in ("${uuid}", "${strftime(%Y-%m-%d)}", "${strftime(%H%M%S)}"):
        rendered = rendered.replace(expansion, "")
    assert not any(char in rendered for char in "${}")

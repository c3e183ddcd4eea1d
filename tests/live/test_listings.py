"""mod_callcenter listings parsed exactly as captured from a real switch."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from reconciler.core.model import Queue
from reconciler.switch import (
    CallcenterError,
    DesiredQueue,
    LiveAgent,
    LiveQueue,
    LiveTier,
    parse_agent_list,
    parse_queue_list,
    parse_tier_list,
)
from reconciler.switch.callcenter.listings import live_state
from tests.live.states import (
    ALICE_1001,
    FRESH_1002,
    QUEUE_HEADER,
    SUPPORT_ACME,
    SUPPORT_DEFAULT,
    TIER_HEADER,
)


def body(transcripts: Path, name: str) -> str:
    """The api/response body of one captured exchange, byte for byte."""
    recv = json.loads((transcripts / "esl" / f"{name}.json").read_text())["recv"]
    head, _, rest = recv.partition("\n\n")
    length = int(dict(line.split(": ", 1) for line in head.splitlines())["Content-Length"])
    return rest[:length]


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("agent_list_empty", []),
        ("agent_list_name", [ALICE_1001]),
        ("agent_list_after_del", [ALICE_1001]),
        ("agent_list_two", [ALICE_1001, FRESH_1002]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_agent_list_transcripts_parse_exactly(
    transcripts: Path, transcript: str, expected: list[LiveAgent]
) -> None:
    assert parse_agent_list(body(transcripts, transcript)) == expected


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("tier_list_empty", []),
        (
            "tier_list_rows",
            [
                LiveTier("support@default", "1002@acme.example.com", 1, 1, "Ready"),
                LiveTier("support@default", "1001@acme.example.com", 1, 2, "Standby"),
            ],
        ),
        (
            "xmlcurl_tier_list",
            [LiveTier("support@acme.example.com", "1001@acme.example.com", 1, 1, "Ready")],
        ),
        (
            "xmlcurl_tier_list_queue_gone",
            [LiveTier("support@acme.example.com", "1001@acme.example.com", 1, 1, "Ready")],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_tier_list_transcripts_parse_exactly(
    transcripts: Path, transcript: str, expected: list[LiveTier]
) -> None:
    assert parse_tier_list(body(transcripts, transcript)) == expected


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("queue_list_empty", []),
        ("queue_list", [SUPPORT_DEFAULT]),
        ("xmlcurl_queue_list", [SUPPORT_ACME, SUPPORT_DEFAULT]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_queue_list_transcripts_parse_exactly(
    transcripts: Path, transcript: str, expected: list[LiveQueue]
) -> None:
    assert parse_queue_list(body(transcripts, transcript)) == expected


def test_served_queue_listing_matches_what_we_would_serve(transcripts: Path) -> None:
    """The captured served queue (strategy, moh-sound, max-wait-time 120, the rest defaults)
    lists exactly what ``DesiredQueue.listed`` predicts: no reload loop on a real switch."""
    queue = Queue(name="support", number="7000", moh_sound="local_stream://moh", max_wait_time=120)
    want = DesiredQueue("support@acme.example.com", queue.callcenter_params())
    (have,) = [
        q for q in parse_queue_list(body(transcripts, "xmlcurl_queue_list")) if q.name == want.name
    ]
    assert dict(have.params) == want.listed()


@pytest.mark.parametrize(
    "transcript",
    ["agent_list_two", "tier_list_rows", "xmlcurl_queue_list"],
)
def test_columns_are_read_by_header_not_position(transcripts: Path, transcript: str) -> None:
    text = body(transcripts, transcript)
    lines = text.split("\n")
    rows = [line.split("|") for line in lines[:-2]]
    order = list(range(len(rows[0])))
    random.Random(7).shuffle(order)
    shuffled = "\n".join("|".join(row[i] for i in order) for row in rows) + "\n+OK\n"
    parse = {"a": parse_agent_list, "t": parse_tier_list, "x": parse_queue_list}[transcript[0]]
    assert shuffled != text
    assert parse(shuffled) == parse(text)


def test_first_column_moved_still_parses(transcripts: Path) -> None:
    """An upgraded schema may not start with ``name``: the header is still recognized."""
    text = body(transcripts, "agent_list_two")
    rows = [line.split("|") for line in text.split("\n")[:-2]]
    moved = "\n".join("|".join(row[1:] + row[:1]) for row in rows) + "\n+OK\n"
    assert parse_agent_list(moved) == parse_agent_list(text)


@pytest.mark.parametrize(
    "transcript",
    ["cc_single_token", "cc_unknown_target", "api_unknown_command", "cc_no_args"],
)
def test_error_replies_raise_with_the_text(transcripts: Path, transcript: str) -> None:
    text = body(transcripts, transcript)
    with pytest.raises(CallcenterError) as info:
        parse_agent_list(text)
    assert text.strip().splitlines()[0] in str(info.value)
    assert info.value.reply == text


@pytest.mark.parametrize("text", ["", "+OK\n", "+OK", "\n+OK\n", "+OK\r\n"], ids=repr)
def test_empty_output_is_an_empty_list(text: str) -> None:
    assert parse_agent_list(text) == []
    assert parse_tier_list(text) == []
    assert parse_queue_list(text) == []


def test_row_with_a_pipe_in_a_value_is_reported_not_guessed() -> None:
    text = f"{TIER_HEADER}\nq@a|x|y@a|Ready|1|1\nq@a|b@a|Ready|1|2\n+OK\n"
    state = live_state("+OK\n", text, f"{QUEUE_HEADER}\n+OK\n")
    assert list(state.tiers) == [("q@a", "b@a")]
    assert state.unparsed == ("q@a|x|y@a|Ready|1|1",)


def test_unreadable_output_raises() -> None:
    with pytest.raises(CallcenterError, match="header"):
        parse_tier_list("queue|agent|level\nq|a|1\n+OK\n")
    with pytest.raises(CallcenterError, match="no header"):
        parse_tier_list("1\n")
    with pytest.raises(CallcenterError, match="not a number"):
        parse_tier_list(f"{TIER_HEADER}\nq|a|Ready|one|1\n+OK\n")

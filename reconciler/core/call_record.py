"""One call leg as the call history keeps it: what a switch's CDR says, in the tenant's terms.

A record is a value decided from one mod_xml_cdr post (``core.cdr``); the store files it in
the tenant's own schema keyed by ``uuid`` (the switch's leg uuid), so a repeated post, from
a retry or a collected error file, changes nothing. Caller-controlled strings (names,
numbers) are kept as data, cut to a bound and stripped of control characters; they are
escaped wherever they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Direction(StrEnum):
    """How the call met the tenant."""

    INTERNAL = "internal"  # extension to extension (or to a queue) of one tenant
    INBOUND = "inbound"  # a carrier's call to one of the tenant's numbers (DIDs)
    OUTBOUND = "outbound"  # to a carrier gateway
    FEATURE = "feature"  # a feature code (*22...)


class Outcome(StrEnum):
    """What became of the call, from the caller's side."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"  # the caller left a queue before an agent answered
    VOICEMAIL = "voicemail"


class Leg(StrEnum):
    """``a``: the caller's leg, one per call (what the history lists); ``b``: a leg the switch
    originated for it (the callee's phone, a queue agent's phone), linked by ``call_uuid``."""

    A = "a"
    B = "b"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One leg; times are UTC, durations whole seconds."""

    uuid: str
    call_uuid: str  # the a leg's uuid (its own for an a leg)
    leg: Leg
    domain: str  # the tenant's domain, as the switch routed the leg
    direction: Direction
    outcome: Outcome
    hangup_cause: str
    from_number: str
    from_name: str
    to_number: str
    did: str | None  # the number dialled from outside, for inbound calls
    from_extension: str | None  # the tenant's extension that called
    to_extension: str | None  # the tenant's extension that was called (or answered)
    queue: str | None
    agent: str | None  # the queue agent who answered
    bridge_uuid: str | None  # the leg it was bridged to
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    ring_seconds: int
    talk_seconds: int
    node: str
    gateway: str | None = None  # outbound: the carrier gateway it left through (last tried)

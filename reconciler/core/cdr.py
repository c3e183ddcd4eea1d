"""Read one mod_xml_cdr post (FreeSWITCH 1.10's ``<cdr>`` document) into a ``CallRecord``.

Pure: text in, record out (or ``CdrError``). The post is the form field ``cdr`` (url-encoded,
``encode=true``) or a raw document (an error-directory file); channel variables inside it are
url-encoded by the switch. Which tenant a leg belongs to is read from what the switch
decided, never from what the caller sent: the dialplan context (the served context is the
tenant's domain) and the directory's ``domain_name`` / ``dialed_domain``, not SIP headers.
A document with a DOCTYPE is refused (no entity expansion reaches the parser).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import unquote

from reconciler.core.call_record import CallRecord, Direction, Leg, Outcome
from reconciler.core.model import PUBLIC_CONTEXT

MAX_CDR_BYTES = 1_000_000
MAX_TEXT = 120  # caller-controlled names and numbers are cut to this
_UUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BUSY = {"USER_BUSY", "CALL_REJECTED"}
_NO_ANSWER = {"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT"}
_NOT_TENANT = {"", PUBLIC_CONTEXT, "default"}


class CdrError(ValueError):
    """A post that is not a call record this reader can file."""


class _Cdr:
    """One document, its variables read into a dict once: a leg has a couple of hundred,
    and the reader asks for some forty (a path search for each was most of its time)."""

    __slots__ = ("_profiles", "_vars", "root")

    def __init__(self, root: ET.Element) -> None:
        self.root = root
        self._vars: dict[str, str] = {}
        for node in root.iterfind("variables/*"):
            self._vars.setdefault(node.tag, node.text or "")
        # the leg's caller profiles, newest first (a transfer adds one at the top)
        self._profiles = root.findall("callflow/caller_profile")

    def var(self, name: str) -> str:
        return unquote(self._vars.get(name, ""))

    def epoch_us(self, name: str) -> int:
        value = self.var(name)
        return int(value) if value.isdigit() else 0

    def first(self, field: str) -> str:
        """``field`` of the oldest profile: how the call came in."""
        return (self._profiles[-1].findtext(field) or "") if self._profiles else ""

    def last(self, field: str) -> str:
        """``field`` of the newest profile: where the call ended up."""
        return (self._profiles[0].findtext(field) or "") if self._profiles else ""


def _clean(value: str) -> str:
    """Caller-controlled text as data: no control characters, bounded."""
    return _CONTROL.sub("", value)[:MAX_TEXT]


def _stamp(epoch_us: int) -> datetime:
    return datetime.fromtimestamp(epoch_us / 1_000_000, tz=UTC)


def parse_document(text: str) -> ET.Element:
    """The ``<cdr>`` element of ``text``; ``CdrError`` for anything else."""
    if len(text) > MAX_CDR_BYTES:
        raise CdrError("the record is larger than the reader accepts")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise CdrError("a record with a DOCTYPE is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 -- no DOCTYPE (above): no entity to expand
    except ET.ParseError as exc:
        raise CdrError(f"not XML: {exc}") from exc
    if root.tag != "cdr":
        raise CdrError(f"the document is <{root.tag}>, not <cdr>")
    return root


def cdr_domain(cdr: _Cdr) -> str:
    """The tenant domain the switch routed this leg in (lowercase), or ''."""
    for candidate in (cdr.last("context"), cdr.var("domain_name"), cdr.var("dialed_domain")):
        if candidate.lower() not in _NOT_TENANT:
            return candidate.lower()
    return ""


def _leg(cdr: _Cdr) -> tuple[Leg, str]:
    """Which leg, and the a leg's uuid: a bridged callee names its originator; an agent's
    leg, which mod_callcenter originates on its own, names the member's session."""
    uuid = cdr.var("uuid")
    member = cdr.var("cc_member_session_uuid")
    if cdr.var("cc_side") == "agent" and member:
        return Leg.B, member
    originator = cdr.root.find("callflow/caller_profile/originator/originator_caller_profile")
    if originator is not None:
        return Leg.B, originator.findtext("uuid") or cdr.var("originator") or uuid
    return Leg.A, uuid


def _direction(cdr: _Cdr) -> Direction:
    if cdr.first("context") == PUBLIC_CONTEXT or cdr.var("pbx_did"):
        return Direction.INBOUND
    if cdr.first("destination_number").startswith("*"):
        return Direction.FEATURE
    if _gateway(cdr) or cdr.var("pbx_outbound_class"):
        return Direction.OUTBOUND
    return Direction.INTERNAL


def _gateway(cdr: _Cdr) -> str:
    """The carrier gateway of an outbound leg: the b leg's own, else the a leg's last
    bridge (``sofia/gateway/<name>/<number>``: the one that answered, or the last tried)."""
    named = cdr.var("sip_gateway_name")
    if named:
        return named
    arg = cdr.var("last_arg")
    if not arg.startswith("sofia/gateway/"):
        return ""
    return arg.removeprefix("sofia/gateway/").partition("/")[0]


def _queue_member(cdr: _Cdr, leg: Leg) -> bool:
    """The caller's leg of a queue call (mod_callcenter's "member")."""
    return leg is Leg.A and cdr.var("cc_side") == "member"


def _timing(cdr: _Cdr, leg: Leg) -> tuple[int, int, int, int]:
    """(start, answer, end) in epoch microseconds and the talk seconds. A queue answers its
    caller at once: the call counts as answered when an agent took it, and it rang (waited)
    from joining the queue until then."""
    start, answer, end = (cdr.epoch_us(f"{n}_uepoch") for n in ("start", "answer", "end"))
    billsec = cdr.var("billsec")
    talk = int(billsec) if billsec.isdigit() else 0
    if _queue_member(cdr, leg):
        joined = cdr.epoch_us("cc_queue_joined_epoch") * 1_000_000
        taken = cdr.epoch_us("cc_queue_answered_epoch") * 1_000_000
        start = joined or start
        answer = taken if cdr.var("cc_cause") == "answered" else 0
        talk = max(0, (end - answer) // 1_000_000) if answer else 0
    return start, answer, end, talk


def _outcome(cdr: _Cdr, leg: Leg, answered: bool) -> Outcome:
    cause = cdr.var("hangup_cause")
    if _queue_member(cdr, leg):
        return Outcome.ANSWERED if cdr.var("cc_cause") == "answered" else Outcome.ABANDONED
    if cdr.var("last_app") == "voicemail" or cdr.var("voicemail_message_len"):
        return Outcome.VOICEMAIL
    bridged = bool(cdr.var("bridge_uuid") or cdr.var("last_bridge_to") or cdr.var("bridge_epoch"))
    if answered and (bridged or cdr.var("last_app") != "bridge"):
        return Outcome.ANSWERED
    disposition = cdr.var("originate_disposition") or cdr.var("DIALSTATUS") or cause
    if disposition in _BUSY or disposition == "BUSY":
        return Outcome.BUSY
    if disposition in _NO_ANSWER or cause in _NO_ANSWER or disposition == "NOANSWER":
        return Outcome.NO_ANSWER
    return Outcome.FAILED


def read_cdr(text: str) -> CallRecord:
    """The record of one leg; ``CdrError`` when it has no uuid, no times or no domain."""
    cdr = _Cdr(parse_document(text))
    uuid = cdr.var("uuid")
    if not _UUID.match(uuid):
        raise CdrError("the record has no valid uuid")
    leg, call_uuid = _leg(cdr)
    start, answer, end, talk = _timing(cdr, leg)
    if not start or not end:
        raise CdrError("the record has no start or end time")
    ring_until = answer or end
    did = cdr.first("destination_number") if cdr.first("context") == PUBLIC_CONTEXT else ""
    queue = cdr.var("cc_queue").split("@", 1)[0] or None
    agent = cdr.var("cc_agent").split("@", 1)[0] or None
    return CallRecord(
        uuid=uuid,
        call_uuid=call_uuid if _UUID.match(call_uuid) else uuid,
        leg=leg,
        domain=cdr_domain(cdr),
        direction=_direction(cdr),
        outcome=_outcome(cdr, leg, bool(answer)),
        hangup_cause=_clean(cdr.var("hangup_cause")) or "UNKNOWN",
        from_number=_clean(cdr.first("caller_id_number")),
        from_name=_clean(cdr.first("caller_id_name")),
        to_number=_clean(cdr.last("destination_number")),
        did=_clean(cdr.var("pbx_did") or did) or None,
        from_extension=_clean(cdr.var("user_name")) or None,
        to_extension=_clean(cdr.var("dialed_user")) or None,
        queue=_clean(queue) if queue else None,
        agent=_clean(agent) if agent else None,
        bridge_uuid=_clean(cdr.var("bridge_uuid") or cdr.var("last_bridge_to")) or None,
        started_at=_stamp(start),
        answered_at=_stamp(answer) if answer else None,
        ended_at=_stamp(end),
        ring_seconds=max(0, (ring_until - start) // 1_000_000),
        talk_seconds=talk,
        node=_clean(cdr.root.get("switchname") or cdr.var("switchname")),
        gateway=_clean(_gateway(cdr)) or None,
    )

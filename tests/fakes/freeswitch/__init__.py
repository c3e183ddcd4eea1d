"""A fake FreeSWITCH 1.10 for tests and benches: an Event Socket peer that answers the bytes
captured from a real 1.10.12 (shared/freeswitch/transcripts are the ground truth), with one
module per subsystem it models, as the product has one engine per subsystem:

* ``wire`` — the ESL side: banner, replies, api responses, notices, event frames, a socket;
* ``text`` — the tokenizer of ``switch_separate_string``, ``atoi``, ``|`` tables;
* ``switch`` — :class:`FakeFreeSwitch`: lifecycle, faults, the ESL server, event headers and
  the api dispatch to the modules below;
* ``callcenter`` — mod_callcenter (agents, tiers, queues, xml_curl fetches of callcenter.conf);
* ``sofia`` — registrations (``fs.sofia``); ``members`` — callers in queues (``fs.members``);
* ``raw`` — :class:`RawEsl`, a byte-level client for tests of the wire.

Import from here; the modules are the fake's own business.
"""

from tests.fakes.freeswitch.callcenter import (
    AGENT_COLUMNS,
    CC_USAGE,
    QUEUE_COLUMNS,
    TIER_COLUMNS,
    VANILLA_CALLCENTER_QUEUES,
    FakeAgent,
    FakeCallcenter,
    FakeQueue,
    FakeTier,
    XmlCurlRequest,
)
from tests.fakes.freeswitch.members import MEMBER_COLUMNS, FakeMember, FakeMembers
from tests.fakes.freeswitch.raw import RawEsl
from tests.fakes.freeswitch.sofia import FakeRegistration, FakeSofia
from tests.fakes.freeswitch.switch import FakeFreeSwitch
from tests.fakes.freeswitch.text import separate_blank
from tests.fakes.freeswitch.wire import (
    BANNER,
    DISCONNECT_BODY,
    RUDE_REJECTION_BODY,
    VERSION_LINE,
    ApiHandler,
    fs_url_encode,
    serialize_event,
)

__all__ = [
    "AGENT_COLUMNS",
    "BANNER",
    "CC_USAGE",
    "DISCONNECT_BODY",
    "MEMBER_COLUMNS",
    "QUEUE_COLUMNS",
    "RUDE_REJECTION_BODY",
    "TIER_COLUMNS",
    "VANILLA_CALLCENTER_QUEUES",
    "VERSION_LINE",
    "ApiHandler",
    "FakeAgent",
    "FakeCallcenter",
    "FakeFreeSwitch",
    "FakeMember",
    "FakeMembers",
    "FakeQueue",
    "FakeRegistration",
    "FakeSofia",
    "FakeTier",
    "RawEsl",
    "XmlCurlRequest",
    "fs_url_encode",
    "separate_blank",
    "serialize_event",
]

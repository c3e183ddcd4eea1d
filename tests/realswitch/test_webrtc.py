"""Browser phones on the real switch: the shipped node config's WSS listener, the served
directory and DTLS-SRTP media. A test phone speaks SIP over WSS as SIP.js does (``sipws``)
and lets Chromium do the WebRTC media (``browser_media``); desk phones are sipp, echoing
the audio they get (``-rtp_echo``), so audio from the browser that comes back proves both
directions through the switch.

On-the-wire facts, seen with FreeSWITCH 1.10.12 and the shipped node config:
- A REGISTER over WSS is challenged (401) and accepted (200) like a UDP phone's; the
  binding shows as ``Registered(WSS-NAT)`` in ``sofia status profile tenants reg``, and
  ``sofia_contact`` returns it with ``transport=ws`` and an ``fs_path`` to the WebSocket.
- The served ``dial-string`` (``sofia_contact(*/<ext>@<domain>)``) is enough for
  ``user/<ext>@<domain>`` (calls, queue agents) to reach a WSS registration. FreeSWITCH
  offers it ``RTP/SAVPF`` with ICE candidates and a DTLS fingerprint (no direction
  attribute, no ``a=mid``), with the caller's codec first.
- Without ``inbound-late-negotiation`` a browser (Opus) calling a G.711-only desk phone got
  488 INCOMPATIBLE_DESTINATION: the callee was offered only Opus. The shipped profile sets it.
- FreeSWITCH's DTLS certificate (``dtls-srtp.pem``, made on first start in ``-certs``) is
  RSA 4096 with serial number 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser

from tests.realswitch.browser_media import BrowserMedia, chromium
from tests.realswitch.conftest import ACME, GLOBEX, Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import Sipp
from tests.realswitch.sipws import WssPhone
from tests.realswitch.switch import missing_reason

if (_reason := missing_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(180)]

DTLS_SRTP = "srtp:dtls:AES_CM_128_HMAC_SHA1_80"
# Each way: 25 packets of 20 ms is half a second of audio.
PACKETS = 25


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


def phone(
    node: Node,
    browser: Browser,
    tenant: str,
    extension: str,
    *,
    domain: str = "",
    password: str = "",
) -> WssPhone:
    assert node.cert is not None
    domain = domain or {"acme": ACME, "globex": GLOBEX}[tenant]
    secret = password or node.credentials(tenant, extension)["password"]
    # The session's own certificate is the only trusted one: the listener serves the
    # certificate the renderer installed, not one FreeSWITCH generated.
    return WssPhone(
        node.wss_url, extension, domain, secret, cafile=str(node.cert.cert),
        media=lambda: BrowserMedia.open(browser),
    )  # fmt: skip


@contextlib.asynccontextmanager
async def connected(browser_phone: WssPhone) -> AsyncIterator[WssPhone]:
    await browser_phone.connect()
    try:
        yield browser_phone
    finally:
        await browser_phone.close()


@contextlib.asynccontextmanager
async def registered(
    node: Node, browser: Browser, tenant: str, extension: str
) -> AsyncIterator[WssPhone]:
    """A browser phone registered over WSS; unregistered afterwards, so no later test's call
    forks to a phone that is gone."""
    async with connected(phone(node, browser, tenant, extension)) as registering:
        status = await registering.register()
        assert status == 200, registering.describe() + node.logs()
        try:
            yield registering
        finally:
            with contextlib.suppress(Exception):
                await registering.register(expires=0)


def registrations(node: Node) -> str:
    return node.esl.api("sofia status profile tenants reg")


def channel_var(node: Node, name_part: str, variable: str) -> str:
    """A variable of the live channel whose name contains ``name_part``."""
    listing = json.loads(node.esl.api("show channels as json") or "{}")
    for row in listing.get("rows") or []:
        if name_part in row.get("name", ""):
            return node.esl.api(f"uuid_getvar {row['uuid']} {variable}").strip()
    return f"(no channel named *{name_part}*)"


# --- registration ------------------------------------------------------------------------


async def test_browser_registers_over_wss_and_is_listed_as_wss_nat(
    node: Node, browser: Browser
) -> None:
    async with registered(node, browser, "acme", "1011"):
        listing = registrations(node)
        entry = listing[listing.find(f"1011@{ACME}") :]
        assert f"1011@{ACME}" in listing, listing
        assert "Registered(WSS-NAT)" in entry.split("Auth-Realm")[0], listing
        contact = node.esl.api(f"sofia_contact */1011@{ACME}")
        assert "transport=ws" in contact and "fs_path=" in contact, contact
    assert f"1011@{ACME}" not in registrations(node), "unregistered on the way out"


async def test_browser_with_a_wrong_password_is_forbidden(node: Node, browser: Browser) -> None:
    wrong = phone(node, browser, "acme", "1011", password="not-the-password")
    async with connected(wrong):
        assert await wrong.register() == 403, wrong.describe()
    assert f"1011@{ACME}" not in registrations(node)


async def test_browser_cannot_register_in_another_tenants_domain(
    node: Node, browser: Browser
) -> None:
    cross = phone(node, browser, "acme", "1011", domain=GLOBEX)
    async with connected(cross):
        assert await cross.register() == 403, cross.describe()
    assert node.esl.api(f"sofia_contact */1011@{GLOBEX}").strip() == "error/user_not_registered"


# --- calls -------------------------------------------------------------------------------


@contextlib.contextmanager
def desk_phone(node: Node, extension: str, *, talk_ms: int) -> Iterator[Sipp]:
    """A UDP desk phone (sipp) registered as ``extension`` that answers one call with PCMU,
    echoes the audio it gets (``-rtp_echo``) and hangs up after ``talk_ms``."""
    uas = node.sipp(f"desk-{extension}", "uas.xml", target=None,
                    extra=["-d", str(talk_ms), "-rtp_echo"])  # fmt: skip
    uas.start().wait_listening()
    secret = node.credentials("acme", extension)["password"]
    variables = {"user": extension, "domain": ACME, "contact_port": str(uas.port)}
    try:
        reg = node.sipp(f"reg-desk-{extension}", "register.xml", target=node.tenant_target,
                        variables={**variables, "expires": "600"},
                        extra=["-au", extension, "-ap", secret])  # fmt: skip
        reg.run()
        assert reg.final_status("REGISTER") == 200, reg.describe() + node.logs()
        yield uas
    finally:
        uas.close()
        node.sipp(f"unreg-desk-{extension}", "register.xml", target=node.tenant_target,
                  variables={**variables, "expires": "0"},
                  extra=["-au", extension, "-ap", secret]).run()  # fmt: skip


def desk_call(node: Node, caller: str, number: str) -> Sipp:
    """A desk phone's authenticated call that echoes the audio it gets back."""
    secret = node.credentials("acme", caller)["password"]
    return node.sipp(
        f"desk-call-{caller}-{number}", "call_auth.xml", target=node.tenant_target,
        variables={"user": caller, "domain": ACME, "to_domain": ACME},
        extra=["-s", number, "-au", caller, "-ap", secret, "-rtp_echo"],
    ).start()  # fmt: skip


async def test_browser_calls_a_desk_phone_with_dtls_srtp_and_audio_both_ways(
    node: Node, browser: Browser
) -> None:
    with desk_phone(node, "1015", talk_ms=10000) as desk:
        async with registered(node, browser, "acme", "1012") as web:
            status, dialog = await web.call("1015")
            assert status == 200 and dialog is not None, web.describe() + node.logs()
            sent, received, samples = await dialog.media.flowing_both_ways(PACKETS)
            crypto = channel_var(node, "1012@", "rtp_has_crypto")
            codec = channel_var(node, "1012@", "read_codec")
            # the desk phone hangs up; the switch passes its BYE on to the browser
            await asyncio.wait_for(dialog.ended.wait(), 60)
        invite = desk.wait_for_invite()
    assert min(sent, received) >= PACKETS and samples > 0, (sent, received, samples)
    assert crypto == DTLS_SRTP, crypto
    assert codec == "opus", codec
    assert "RTP/AVP" in invite.text and "SAVPF" not in invite.text, "the desk leg is plain RTP"


async def test_desk_phone_calls_the_browser_which_gets_webrtc_media(
    node: Node, browser: Browser
) -> None:
    async with registered(node, browser, "acme", "1013") as web:
        caller = desk_call(node, "1016", "1013")
        invite, dialog = await web.answer_next_call()
        sent, received, samples = await dialog.media.flowing_both_ways(PACKETS)
        crypto = channel_var(node, web.contact_user, "rtp_has_crypto")
        assert await web.hang_up(dialog) == 200, web.describe()
        await asyncio.to_thread(caller.wait)
    assert invite.first_line.startswith("INVITE sip:"), invite.first_line
    # FreeSWITCH offers a WebRTC contact "RTP/SAVPF" with a DTLS fingerprint
    assert " RTP/SAVPF " in invite.body and "a=fingerprint:sha-256" in invite.body
    # the desk phone's only codec, offered first; browsers speak G.711 too (no transcoding)
    assert "PCMU/8000" in invite.body
    assert min(sent, received) >= PACKETS and samples > 0, (sent, received, samples)
    assert crypto == DTLS_SRTP, crypto
    assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()
    assert caller.received("BYE"), "the browser's hang-up reached the desk phone"


async def test_two_browsers_of_one_tenant_talk_to_each_other(node: Node, browser: Browser) -> None:
    async with (
        registered(node, browser, "acme", "1012") as alice,
        registered(node, browser, "acme", "1013") as bob,
    ):
        (status, dialog), (_, answered) = await asyncio.gather(
            alice.call("1013"), bob.answer_next_call()
        )
        assert status == 200 and dialog is not None, alice.describe() + bob.describe()
        both = await asyncio.gather(
            dialog.media.flowing_both_ways(PACKETS), answered.media.flowing_both_ways(PACKETS)
        )
        assert await alice.hang_up(dialog) == 200, alice.describe()
        await asyncio.wait_for(answered.ended.wait(), 30)
    for sent, received, samples in both:
        assert min(sent, received) >= PACKETS and samples > 0, both


async def test_browser_of_another_tenant_cannot_reach_them(node: Node, browser: Browser) -> None:
    async with (
        registered(node, browser, "acme", "1013") as target,
        registered(node, browser, "globex", "2011") as other,
    ):
        # authenticated as globex, the call runs in globex's context: acme's 1013 is unknown
        for domain in (ACME, GLOBEX):
            status, dialog = await other.call("1013", domain)
            assert status == 404 and dialog is None, other.describe()
        assert target.invites.empty(), target.describe()


# --- queues ------------------------------------------------------------------------------


async def test_queue_call_rings_an_agent_registered_only_over_wss(
    node: Node, browser: Browser
) -> None:
    def agent_loaded() -> bool:
        listing = node.esl.try_api("callcenter_config agent list")
        return any(line.startswith(f"wendy@{ACME}|") for line in listing.splitlines())

    await asyncio.to_thread(wait_for, agent_loaded, "agent wendy loaded", detail=node.logs)
    async with registered(node, browser, "acme", "1014") as agent:
        caller = desk_call(node, "1016", "7002")
        invite, dialog = await agent.answer_next_call()
        sent, received, samples = await dialog.media.flowing_both_ways(PACKETS)
        assert await agent.hang_up(dialog) == 200, agent.describe()
        await asyncio.to_thread(caller.wait)
    assert " RTP/SAVPF " in invite.body and "a=fingerprint:" in invite.body, invite.body
    assert min(sent, received) >= PACKETS and samples > 0, (sent, received, samples)
    assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()

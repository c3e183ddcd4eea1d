"""The portal's browser phone against the real switch: Debian's Chromium (fake microphone
and permission prompt, the node's self-signed WSS certificate accepted) logs in to the
portal of ``pbx run``, opens the Phone, registers over WSS to FreeSWITCH with the HA1 the
portal handed out, calls a desk phone (sipp, echoing the audio it gets) and receives a
call from one, answering it: each time the call is established, its timer runs, RTP
reaches the page (``RTCPeerConnection.getStats()``: inbound audio packets) and the desk
phone sees the browser's hang-up; then a blind transfer (REFER) of a call it answered, and,
as a queue's agent, a queue call it answers, all in the same phone window after the
earlier calls. Last, the message-waiting lamp: a desk phone's call the browser declines is
answered by the browser's voicemail box, the caller leaves audio, the switch's
message-summary NOTIFY over WSS lights the lamp with the count, the lamp opens the portal's
voicemail page where Chromium plays the message (206 answers) and deletes it, and the lamp
goes out. The NOTIFY frames the browser received are saved beside the log for the test
peer's fixtures (``tests/fakes/wss/captures``).

Media stays on loopback as ../shared/freeswitch/transcripts/webrtc/NOTES.md found
necessary: the profile preference ``webrtc.ip_handling_policy`` plus the page's host
candidates rewritten to 127.0.0.1 (an init script; the phone itself is untouched)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from reconciler.web.phone_bundle import BUILD_COMMAND, BundleFinder
from tests.realswitch.conftest import Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import Sipp
from tests.realswitch.switch import missing_reason
from tests.realswitch.test_realswitch import register, registered_phone
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, PLAY_TO_THE_END
from tests.web.webrtc_probe import INBOUND_PACKETS, LOOPBACK_CANDIDATES, TRACK_CONNECTIONS

if (_reason := missing_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(240)]

PASSWORD = "Browser-phone-Passw0rd"
BROWSER_EXT, DESK_EXT, TRANSFER_EXT, QUEUE = "1021", "1022", "1023", "7020"
# A tenant of its own, added to the running node (the daemon applies it on its next pass),
# so the tier's other tenants and their tests stay as they are.
TENANT, DOMAIN, PHONE_PERSON = "webphone", "webphone.example.com", "pat@webphone.example.com"
TENANT_FILE = f"""\
id: {TENANT}
domain: {DOMAIN}
name: Web phone
users:
  - {{email: {PHONE_PERSON}, name: Pat Browser, extensions: ["{BROWSER_EXT}"]}}
extensions:
  - number: "{BROWSER_EXT}"
    name: Portal phone
    voicemail: {{enabled: true, max_message_seconds: 60}}
  - {{number: "{DESK_EXT}", name: Desk phone}}
  - {{number: "{TRANSFER_EXT}", name: Transfer target}}
agents:
  - {{name: pat, extension: "{BROWSER_EXT}", initial_status: Available}}
queues:
  - name: webqueue
    number: "{QUEUE}"
    tiers:
      - {{agent: pat, level: 1, position: 1}}
"""
PCAP = Path("/usr/share/sip-tester/g711a.pcap")  # the message a desk phone leaves
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def invite(node: Node, portal: str) -> str:
    """``pbx users invite``: the activation link, once the daemon applied the tenant."""
    command = [sys.executable, "-m", "reconciler", "users", "invite", PHONE_PERSON,
               "--portal-listen", portal.removeprefix("http://")]  # fmt: skip
    links: list[str] = []

    def invited() -> bool:
        done = subprocess.run(command, env=node.env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        links.extend(done.stdout.split() if done.returncode == 0 else ())
        return bool(links)

    wait_for(invited, "the web phone tenant applied", timeout=90, detail=node.logs)
    return links[-1]


def activate(node: Node, page: Page, portal: str) -> None:
    """The person's account, as a newcomer gets one: ``pbx users invite``, then the link."""
    (node.tenants_dir / f"{TENANT}.yaml").write_text(TENANT_FILE)
    link = invite(node, portal)
    page.goto(link)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    page.get_by_role("button", name="Activate").click()
    page.goto(portal + "/login")
    page.get_by_label("Email").fill(PHONE_PERSON)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(rf"/t/{TENANT}$"))


@pytest.fixture(scope="module")
def phone_context(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if BundleFinder().find() is None:
        pytest.fail(f"the phone's bundle is not built: run `{BUILD_COMMAND}` (.ci/run does)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    (profile / "Default").mkdir()
    prefs = {"webrtc": {"ip_handling_policy": "default_public_and_private_interfaces"}}
    (profile / "Default" / "Preferences").write_text(json.dumps(prefs))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS + MEDIA_ARGS,
            ignore_https_errors=True,  # the node's self-signed WSS certificate
            viewport={"width": 420, "height": 760},
        )
        context.set_default_timeout(15_000)
        context.add_init_script(LOOPBACK_CANDIDATES)
        context.add_init_script(TRACK_CONNECTIONS)
        portal = f"http://127.0.0.1:{node.ports.portal}"
        activate(node, context.pages[0] if context.pages else context.new_page(), portal)
        yield context
        context.close()


# Every SIP frame the phone's page received over WSS, in order (the lamp's NOTIFYs are read
# from here and saved for the test peer).
FRAMES: list[str] = []


@pytest.fixture(scope="module")
def phone(phone_context: BrowserContext, node: Node) -> Page:
    page = phone_context.pages[0]
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: FRAMES.append(str(f))))
    page.goto(f"http://127.0.0.1:{node.ports.portal}/phone")
    expect(page.locator("#reg-state")).to_have_text(re.compile(f"Registered as {BROWSER_EXT}"))
    return page


@contextlib.contextmanager
def desk_phone(node: Node) -> Iterator[Sipp]:
    """sipp registered as the desk extension, answering one call and echoing its audio."""
    extra = ["-rtp_echo"]
    uas = node.sipp("desk-for-browser", "uas_until_bye.xml", target=None, extra=extra)
    uas.start().wait_listening()
    secret = node.credentials(TENANT, DESK_EXT)["password"]
    try:
        reg = register(node, "reg-desk-for-browser", DESK_EXT, DOMAIN, secret, uas.port)
        assert reg.final_status("REGISTER") == 200, reg.describe() + node.logs()
        yield uas
    finally:
        uas.close()
        register(node, "unreg-desk-for-browser", DESK_EXT, DOMAIN, secret, uas.port, expires=0)


def desk_call(
    node: Node, name: str, number: str, *, scenario: str = "call_auth.xml", echo: bool = False
) -> Sipp:
    """The desk extension calling ``number`` (``echo``: sending back the audio it gets)."""
    secret = node.credentials(TENANT, DESK_EXT)["password"]
    return node.sipp(
        name,
        scenario,
        target=node.tenant_target,
        variables={"user": DESK_EXT, "domain": DOMAIN, "to_domain": DOMAIN},
        extra=["-s", number, "-au", DESK_EXT, "-ap", secret, *(["-rtp_echo"] if echo else [])],
    )


def assert_call_with_audio(page: Page, node: Node) -> None:
    expect(page.locator("#call-state")).to_have_text("Connected")
    expect(page.locator("#timer")).not_to_have_text("0:00", timeout=5_000)  # it runs
    for _ in range(100):
        if page.evaluate(INBOUND_PACKETS) > 0:
            break
        page.wait_for_timeout(100)
    assert page.evaluate(INBOUND_PACKETS) > 0, "no RTP reached the browser\n" + node.logs()


def callstates(node: Node) -> list[str]:
    """The switch's call state of every channel (``ACTIVE``, ``HELD``, ...): the tier runs
    one test at a time, so these are the browser's call's two legs."""
    listing = json.loads(node.esl.api("show channels as json") or "{}")
    return [row.get("callstate", "") for row in listing.get("rows") or []]


def wait_switch(condition: Callable[[], bool], page: Page, what: str, node: Node) -> None:
    for _ in range(100):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the switch never saw: {what}\n" + node.logs())


def test_the_browser_phone_registers_on_the_switch(phone: Page, node: Node) -> None:
    contact = node.esl.api(f"sofia_contact */{BROWSER_EXT}@{DOMAIN}")
    assert "transport=ws" in contact, contact


def test_the_browser_phone_calls_a_desk_phone_with_audio(phone: Page, node: Node) -> None:
    with desk_phone(node) as desk:
        phone.get_by_label("Number").fill(DESK_EXT)
        phone.get_by_role("button", name="Call", exact=True).click()
        assert_call_with_audio(phone, node)
        phone.get_by_role("button", name="Hang up").click()
        assert desk.wait() == 0, desk.describe() + node.logs()
        assert desk.received("BYE"), desk.describe()
    expect(phone.locator("#call")).to_be_hidden()


def test_the_browser_phone_answers_a_call_from_a_desk_phone(phone: Page, node: Node) -> None:
    caller = desk_call(node, "desk-calls-browser", BROWSER_EXT, echo=True).start()
    try:
        expect(phone.locator("#incoming")).to_be_visible(timeout=20_000)
        expect(phone.locator("#incoming-from")).to_contain_text(DESK_EXT)
        phone.get_by_role("button", name="Answer").click()
        assert_call_with_audio(phone, node)
        phone.get_by_role("button", name="Key 5").click()  # RFC 2833 on the media path
        wait_switch(lambda: "RECV DTMF 5" in node.fs_log.read_text(errors="replace"),
                    phone, "the DTMF 5", node)  # fmt: skip
        phone.get_by_role("button", name="Hold").click()
        expect(phone.locator("#call-state")).to_have_text("On hold")
        wait_switch(lambda: "HELD" in callstates(node), phone, "the hold", node)
        phone.get_by_role("button", name="Resume").click()
        expect(phone.locator("#call-state")).to_have_text("Connected")
        wait_switch(lambda: "HELD" not in callstates(node), phone, "the resume", node)
        phone.get_by_role("button", name="Hang up").click()
        assert caller.wait() == 0, caller.describe() + node.logs()
        assert caller.final_status("INVITE") == 200
        assert caller.received("BYE"), caller.describe()
    finally:
        caller.close()


def test_the_browser_phone_transfers_a_call_blind(phone: Page, node: Node) -> None:
    """REFER: the desk phone that called the browser ends up talking to the transfer target."""
    with registered_phone(node, TENANT, DOMAIN, TRANSFER_EXT) as target:
        caller = desk_call(node, "desk-calls-browser-to-transfer", BROWSER_EXT).start()
        try:
            expect(phone.locator("#incoming")).to_be_visible(timeout=20_000)
            phone.get_by_role("button", name="Answer").click()
            expect(phone.locator("#call-state")).to_have_text("Connected")
            phone.get_by_label("Transfer to").fill(TRANSFER_EXT)
            phone.get_by_role("button", name="Transfer", exact=True).click()
            assert target.wait() == 0, target.describe() + node.logs()
            invite = target.received("INVITE")
            assert invite and DESK_EXT in (invite[0].header("From") or ""), target.describe()
            assert caller.wait() == 0, caller.describe() + node.logs()
        finally:
            caller.close()
    expect(phone.locator("#call")).to_be_hidden()  # the browser left the call


def test_the_browser_phone_of_an_agent_answers_a_queue_call(phone: Page, node: Node) -> None:
    """The agent's contact ``user/<ext>@<domain>`` rings the browser's registration: the
    portal's phone takes the queue call with audio, and the caller hears the hang-up."""

    def agent_loaded() -> bool:
        listing = node.esl.try_api("callcenter_config agent list")
        return any(line.startswith(f"pat@{DOMAIN}|") for line in listing.splitlines())

    wait_for(agent_loaded, "agent pat loaded", timeout=60, detail=node.logs)
    caller = desk_call(node, "desk-calls-the-queue", QUEUE, echo=True).start()
    try:
        expect(phone.locator("#incoming")).to_be_visible(timeout=30_000)
        phone.get_by_role("button", name="Answer").click()
        assert_call_with_audio(phone, node)
        phone.get_by_role("button", name="Hang up").click()
        assert caller.wait() == 0, caller.describe() + node.logs()
        assert caller.received("BYE"), caller.describe()
    finally:
        caller.close()
    expect(phone.locator("#call")).to_be_hidden()


def mwi_notifies(waiting: str) -> list[str]:
    """The message-summary NOTIFYs the browser got saying ``Messages-Waiting: <waiting>``."""
    return [f for f in FRAMES if f.startswith("NOTIFY ") and "\r\nEvent: message-summary" in f
            and f"Messages-Waiting: {waiting}" in f]  # fmt: skip


def test_the_lamp_lights_for_a_message_left_which_plays_in_the_portal_and_goes_out_deleted(
    phone: Page, phone_context: BrowserContext, node: Node
) -> None:
    """Every frame the page got is saved beside the log (``wss_frames.txt``), pass or fail:
    the source of ``tests/fakes/wss/captures``."""
    if not PCAP.is_file():
        pytest.skip(f"{PCAP} missing (Debian's sip-tester ships it)")
    try:
        lamp_round(phone, phone_context, node)
    finally:
        (node.workdir / "wss_frames.txt").write_text("\n\n=====\n\n".join(FRAMES))


def lamp_round(phone: Page, phone_context: BrowserContext, node: Node) -> None:
    lamp = phone.locator("#mwi")
    # the SUBSCRIBE at registration: the switch says the (empty) box's state
    expect(lamp).to_have_text("Voicemail: no new message", timeout=15_000)
    caller = desk_call(
        node, "desk-leaves-browser-a-message", BROWSER_EXT, scenario="call_leave_message.xml"
    ).start()
    try:
        expect(phone.locator("#incoming")).to_be_visible(timeout=20_000)
        phone.get_by_role("button", name="Decline").click()  # busy: the box answers
        assert caller.wait(timeout=120) == 0, caller.describe() + node.logs()
        assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()
    finally:
        caller.close()
    expect(lamp).to_have_attribute("data-state", "on", timeout=30_000)
    expect(lamp).to_have_text("Voicemail: 1 new message")
    assert "Voice-Message: 1/0" in mwi_notifies("yes")[0]
    # a phone started while the message waits lights up at once: from its SUBSCRIBE's
    # answer when the switch says the state, else (seen right after a reload: 202 and no
    # NOTIFY while the page's previous registration is still listed) from the portal's
    # listing of the box a few seconds later
    phone.reload()
    expect(phone.locator("#reg-state")).to_have_text(re.compile(f"Registered as {BROWSER_EXT}"))
    expect(lamp).to_have_text("Voicemail: 1 new message", timeout=15_000)

    with phone_context.expect_page() as opened:
        phone.get_by_role("link", name="Voicemail: 1 new message").click()
    page = opened.value
    expect(page).to_have_url(re.compile(rf"/t/{TENANT}/voicemail[?]box={BROWSER_EXT}$"))
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/audio") else None)
    row = page.locator("#voicemail tbody tr", has_text=DESK_EXT)
    expect(row).to_be_visible()
    played = row.locator("audio").evaluate(PLAY_TO_THE_END)
    assert played > 3, played  # the caller's 6 s of audio, decoded to its end
    assert 206 in statuses, statuses
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#voicemail tbody tr", has_text=DESK_EXT)).to_have_count(0)
    expect(lamp).to_have_attribute("data-state", "off", timeout=30_000)
    expect(lamp).to_have_text("Voicemail: no new message")
    page.close()

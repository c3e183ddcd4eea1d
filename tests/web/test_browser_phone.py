"""The browser phone in Debian's Chromium (fake microphone, the portal's own CSP enforced)
against a SIP-over-WSS test peer (``sip_peer``) that accepts only the right digest: the
phone registers with the HA1 the portal hands out, dials a feature code with a real WebRTC
offer, shows and declines an incoming call with the caller's name, a number clicked in the
portal (people, extensions, call history) dials in the phone's own window (opened once,
then reached over BroadcastChannel without reloading it), a refused microphone is said in
words, the page passes axe and fits a 390 px screen, a call after another starts clean
(transfer only once connected), a ringing call in a background tab shows a notification,
the chosen speaker plays the call, a phone unlinked in git while running stops at its
next call, and the message-waiting lamp says (in words) what the switch's message-summary
NOTIFY (captured from the real switch over WSS) counts and opens the voicemail page. Calls with audio run against FreeSWITCH in tests/realswitch."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from reconciler.core.cdr import read_cdr
from reconciler.store import connect
from reconciler.store.calls import insert_calls
from reconciler.store.migrations import create_tenant_schema
from reconciler.web.phone_bundle import BUILD_COMMAND, BundleFinder
from tests.web.axe_check import blocking_violations
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, log_in
from tests.web.live_server import LivePortal, live_portal, scratch_database
from tests.web.sip_peer import SipPeer, md5
from tests.web.webrtc_probe import INBOUND_PACKETS, TRACK_CONNECTIONS

ALICE, BOB = "alice@acme.example.com", "bob@acme.example.com"
REALM = "acme.example.com"
BOXES = ("1001", "1002")  # the extensions with a voicemail box (1003 has none)
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def wait_for(condition: Callable[[], object], page: Page, what: str, seconds: float = 10) -> None:
    """Polls ``condition`` (the peer's records) while the page keeps running."""
    for _ in range(int(seconds * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture(scope="module")
def built() -> None:
    if BundleFinder().find() is None:
        pytest.fail(f"the phone's bundle is not built: run `{BUILD_COMMAND}` (.ci/run does)")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipPeer]:
    running = SipPeer(realm=REALM, ha1={})
    running.url = running.start(tmp_path_factory.mktemp("peer"))  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.fixture(scope="module")
def portal(pg_server_dsn: str, peer: SipPeer, built: None) -> Iterator[LivePortal]:
    url = peer.url  # type: ignore[attr-defined]
    with scratch_database(pg_server_dsn) as dsn, live_portal(dsn, phone_wss=(url,)) as running:
        running.secrets = {e: running.account(e) for e in (ALICE, BOB)}  # type: ignore[attr-defined]
        for (tenant, number), password in running.deps.passwords.items():
            if tenant == "acme":
                peer.ha1[number] = md5(f"{number}:{REALM}:{password}")
        acme = running.deps.state["acme"]
        boxes = {n: replace(e, voicemail_enabled=n in BOXES) for n, e in acme.extensions.items()}
        running.deps.replace_state({**running.deps.state, "acme": replace(acme, extensions=boxes)})
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + MEDIA_ARGS
        )
        yield chromium
        chromium.close()


def context_of(
    browser: Browser, portal: LivePortal, email: str, **options: object
) -> BrowserContext:
    context = browser.new_context(ignore_https_errors=True, **options)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    log_in(context.new_page(), portal, email, portal.secrets[email])  # type: ignore[attr-defined]
    return context


@pytest.fixture
def bob(browser: Browser, portal: LivePortal) -> Iterator[Page]:
    context = context_of(browser, portal, BOB)
    yield context.pages[0]
    context.close()


def connect_line(page: Page, portal: LivePortal, number: str) -> None:
    """Open the phone, pick ``acme/<number>`` and wait for its registration."""
    page.goto(portal.url + "/phone")
    page.get_by_label("Extension").select_option(f"acme/{number}")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#reg-state")).to_have_text(re.compile(f"Registered as {number}"))


def test_the_phone_registers_with_the_ha1_dials_and_declines_a_call(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    page = bob
    page.goto(portal.url + "/phone")
    expect(page.locator("#reg-state")).to_have_text("Not connected")  # two lines: no auto-start
    page.get_by_label("Extension").select_option("acme/1003")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#reg-state")).to_have_text(re.compile("Registered as 1003"))
    assert "1003" in peer.registered and "1003" not in peer.refused
    page.get_by_label("Number").fill("*22")
    page.get_by_role("button", name="Call", exact=True).click()
    wait_for(lambda: peer.invites, page, "an INVITE reached the peer")
    invite = peer.invites[-1]
    assert invite.first.startswith(f"INVITE sip:*22@{REALM} ")
    assert '"Desk 1003"' in invite.header("From")
    assert "opus" in invite.body and "a=fingerprint:" in invite.body  # WebRTC: DTLS-SRTP
    expect(page.locator("#call")).to_be_hidden()  # 486: back to the dial pad
    peer.call("1003", "1001", "Alice Smith")
    expect(page.locator("#incoming")).to_be_visible()
    expect(page.locator("#incoming-from")).to_have_text("Alice Smith (1001)")
    page.get_by_role("button", name="Decline").click()
    wait_for(lambda: any(a.status == 486 for a in peer.answers), page, "the decline reached it")
    expect(page.locator("#incoming")).to_be_hidden()


def test_a_number_clicked_in_the_portal_dials_in_the_phone_window(
    browser: Browser, portal: LivePortal, peer: SipPeer
) -> None:
    context = context_of(browser, portal, ALICE)
    page = context.pages[0]
    page.goto(portal.url + "/t/acme")
    before = len(peer.invites)
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Call 1002").click()
    phone = opened.value
    expect(phone).to_have_url(portal.url + "/phone")
    expect(phone.locator("#reg-state")).to_have_text(re.compile("Registered as 1001"))
    wait_for(lambda: len(peer.invites) > before, phone, "the clicked number was dialled")
    assert peer.invites[-1].first.startswith(f"INVITE sip:1002@{REALM} ")
    expect(page).to_have_url(portal.url + "/t/acme")  # the portal page stayed where it was
    phone.evaluate("window.keptAlive = true")
    page.get_by_role("link", name="Call 1003").click()
    wait_for(lambda: len(peer.invites) > before + 1, phone, "the second number was dialled")
    assert peer.invites[-1].first.startswith(f"INVITE sip:1003@{REALM} ")
    assert phone.evaluate("window.keptAlive") is True  # the same window, not reloaded
    assert len(context.pages) == 2
    context.close()


def test_a_refused_microphone_is_said_in_words(
    browser: Browser, portal: LivePortal, peer: SipPeer
) -> None:
    context = context_of(browser, portal, ALICE)
    context.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('denied', 'NotAllowedError'));"
    )
    page = context.pages[0]
    page.goto(portal.url + "/phone")
    expect(page.locator("#reg-state")).to_have_text(re.compile("Registered"))
    before = len(peer.invites)
    page.get_by_label("Number").fill("1002")
    page.get_by_label("Number").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("The microphone was refused")
    assert len(peer.invites) == before  # nothing was sent
    context.close()


def test_the_phone_page_passes_axe_and_fits_a_phone(
    browser: Browser, portal: LivePortal, peer: SipPeer
) -> None:
    """Idle and in a call, light and dark, on a 390 px screen."""
    found = []
    peer.answering = True
    try:
        for scheme in ("light", "dark"):
            context = context_of(
                browser,
                portal,
                BOB,
                bypass_csp=True,  # only so axe-core can be injected
                viewport={"width": 390, "height": 844},
                color_scheme=scheme,
            )
            page = context.pages[0]
            page.goto(portal.url + "/phone")
            expect(page.locator("#phone")).to_have_attribute("data-ready", "1")
            found += [f"{scheme}, idle: {line}" for line in blocking_violations(page)]
            page.get_by_role("button", name="Connect", exact=True).click()
            expect(page.locator("#reg-state")).to_have_text(re.compile("Registered"))
            peer.notify_mwi("1002", 2, 1)
            expect(page.locator("#mwi")).to_have_attribute("data-state", "on")
            found += [f"{scheme}, lamp lit: {line}" for line in blocking_violations(page)]
            page.get_by_label("Number").fill("1010")
            page.get_by_role("button", name="Call", exact=True).click()
            expect(page.locator("#call-state")).to_have_text("Connected")
            found += [f"{scheme}, in a call: {line}" for line in blocking_violations(page)]
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{scheme}: the phone page is {width} px wide"
            page.get_by_role("button", name="Hang up").click()
            context.close()
    finally:
        peer.answering = False
    assert not found, "\n".join(found)


def test_the_screenshots_of_the_phone_are_current(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    """Idle (the voicemail lamp lit), ringing and in a call, for docs/ (written only when
    PBX_SCREENSHOTS is set)."""
    import os

    if not os.environ.get("PBX_SCREENSHOTS"):
        pytest.skip("set PBX_SCREENSHOTS=1 to rewrite docs/screenshots/phone-*.png")
    out = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    page = bob
    page.set_viewport_size({"width": 420, "height": 760})
    peer.boxes["1002"] = (2, 1)  # the lamp lit
    connect_line(page, portal, "1002")
    expect(page.locator("#mwi")).to_have_attribute("data-state", "on")
    page.screenshot(path=str(out / "phone-idle.png"), full_page=True)
    peer.call("1002", "1001", "Alice Smith", media=True)
    expect(page.locator("#incoming")).to_be_visible()
    page.screenshot(path=str(out / "phone-ringing.png"), full_page=True)
    page.get_by_role("button", name="Answer").click()
    expect(page.locator("#timer")).to_have_text("0:03", timeout=10_000)
    page.screenshot(path=str(out / "phone-in-call.png"), full_page=True)
    page.get_by_role("button", name="Hang up").click()


def test_a_call_carries_audio_both_ways_holds_transfers_and_hangs_up(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    """The peer answers with a real WebRTC end (aiortc): Opus packets reach the page
    (getStats) and the page's audio reaches the peer (decoded frames); hold and resume are
    re-INVITEs the peer sees, a blind transfer is a REFER, the hang-up a BYE."""
    page = bob
    page.add_init_script(TRACK_CONNECTIONS)
    connect_line(page, portal, "1002")
    peer.answering = True
    try:
        page.get_by_label("Number").fill("7000")
        page.get_by_role("button", name="Call", exact=True).click()
        expect(page.locator("#call-state")).to_have_text("Connected")
        call = next(iter(c for c in peer.calls.values() if not c.ended))
        wait_for(lambda: page.evaluate(INBOUND_PACKETS) > 0, page, "audio reached the page")
        wait_for(lambda: call.frames > 0, page, "the page's audio reached the peer")
        expect(page.locator("#timer")).not_to_have_text("0:00")
        page.get_by_role("button", name="Key 5").click()  # aiortc has no telephone-event
        expect(page.get_by_role("alert")).to_contain_text("did not accept keypad tones")
        page.get_by_role("button", name="Mute").click()
        expect(page.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "true")
        page.get_by_role("button", name="Hold").click()
        expect(page.locator("#call-state")).to_have_text("On hold")
        assert call.directions == ["sendonly"]
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("#call-state")).to_have_text("Connected")
        assert call.directions == ["sendonly", "sendrecv"]
        page.get_by_label("Transfer to").fill("*22")
        page.get_by_role("button", name="Transfer", exact=True).click()
        wait_for(lambda: call.refer_to, page, "the REFER")
        assert call.refer_to.startswith(f"<sip:*22@{REALM}") or "sip:*22@" in call.refer_to
        page.get_by_role("button", name="Hang up").click()
        wait_for(lambda: call.ended, page, "the BYE")
        expect(page.locator("#call")).to_be_hidden()
    finally:
        peer.answering = False


def test_an_answered_incoming_call_carries_audio_both_ways(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    page = bob
    page.add_init_script(TRACK_CONNECTIONS)
    connect_line(page, portal, "1003")
    call_id = peer.call("1003", "1010", "Carol Díaz", media=True)
    expect(page.locator("#incoming-from")).to_have_text("Carol Díaz (1010)")
    page.get_by_role("button", name="Answer").click()
    expect(page.locator("#call-state")).to_have_text("Connected")
    expect(page.locator("#peer-name")).to_have_text("Carol Díaz")
    call = peer.calls[call_id]
    wait_for(lambda: page.evaluate(INBOUND_PACKETS) > 0, page, "audio reached the page")
    wait_for(lambda: call.frames > 0, page, "the page's audio reached the peer")
    page.get_by_role("button", name="Hang up").click()
    wait_for(lambda: call.ended, page, "the BYE")


# The answer's SDP waits for the test (``window.openAnswerGate()``): the call stays in its
# set-up as long as the test looks at it.
GATE_THE_ANSWER = """() => {
  const native = RTCPeerConnection.prototype.createAnswer;
  const gate = new Promise((open) => { window.openAnswerGate = open; });
  RTCPeerConnection.prototype.createAnswer = async function (...args) {
    await gate;
    return native.apply(this, args);
  };
}"""


def test_after_a_call_the_next_one_starts_clean_and_transfers_once_connected(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    """The real-switch blind transfer's defect: after an earlier call the page still said
    "Connected", so the next call looked established while it was being answered, and a
    Transfer pressed then was dropped without a word (SIP.js refers established calls only).
    Now an ended call leaves nothing behind and Hold, Mute and Transfer wait for the call."""
    page = bob
    connect_line(page, portal, "1002")
    peer.answering = True
    try:
        page.get_by_label("Number").fill("7000")
        page.get_by_role("button", name="Call", exact=True).click()
        expect(page.locator("#call-state")).to_have_text("Connected")
        page.get_by_role("button", name="Key 5").click()
        page.get_by_role("button", name="Hang up").click()
        expect(page.locator("#call")).to_be_hidden()
    finally:
        peer.answering = False
    expect(page.locator("#call-state")).to_have_text("")
    expect(page.locator("#timer")).to_have_text("0:00")
    page.evaluate(GATE_THE_ANSWER)
    call_id = peer.call("1002", "1001", "Alice Smith", media=True)
    page.get_by_role("button", name="Answer").click()
    expect(page.locator("#call")).to_be_visible()
    expect(page.locator("#call-state")).to_have_text("Answering…")
    expect(page.locator("#dtmf-sent")).to_have_text("")
    for control in ("Transfer", "Hold", "Mute"):
        expect(page.get_by_role("button", name=control, exact=True)).to_be_disabled()
    page.get_by_label("Transfer to").fill("1003")
    page.evaluate("window.openAnswerGate()")
    expect(page.locator("#call-state")).to_have_text("Connected")
    page.get_by_role("button", name="Transfer", exact=True).click()
    call = peer.calls[call_id]
    wait_for(lambda: call.refer_to, page, "the REFER")
    assert "sip:1003@" in call.refer_to, call.refer_to
    page.get_by_role("button", name="Hang up").click()
    wait_for(lambda: call.ended, page, "the BYE")


# The tab is put in the background by the test (``window.setPageHidden(true)``: headless
# Chromium's pages are always visible) and every Notification the page creates is recorded
# (the browser's own, with the permission the context grants).
RECORD_NOTIFICATIONS = """(() => {
  let hidden = false;
  window.setPageHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get: () => (hidden ? "hidden" : "visible"),
  });
  const Native = window.Notification;
  window.notifications = [];
  window.Notification = class extends Native {
    constructor(title, options = {}) {
      super(title, options);
      this.record = { title, body: options.body, tag: options.tag, closed: false };
      window.notifications.push(this.record);
    }
    close() {
      this.record.closed = true;
      super.close();
    }
  };
})();"""


def test_an_incoming_call_in_a_background_tab_shows_a_notification(
    browser: Browser, portal: LivePortal, peer: SipPeer
) -> None:
    context = context_of(browser, portal, ALICE, permissions=["notifications"])
    context.add_init_script(RECORD_NOTIFICATIONS)
    page = context.pages[0]
    page.goto(portal.url + "/phone")  # one line: it connects at once
    expect(page.locator("#reg-state")).to_have_text(re.compile("Registered as 1001"))
    peer.call("1001", "1002", "Bob Jones")
    expect(page.locator("#incoming-from")).to_have_text("Bob Jones (1002)")
    page.get_by_role("button", name="Decline").click()
    expect(page.locator("#incoming")).to_be_hidden()
    assert page.evaluate("window.notifications") == []  # in front: the page itself says it
    page.evaluate("window.setPageHidden(true)")
    peer.call("1001", "1010", "Carol Díaz")
    expect(page.locator("#incoming")).to_be_visible()
    wait_for(lambda: page.evaluate("window.notifications.length"), page, "a notification")
    [shown] = page.evaluate("window.notifications")
    assert shown == {
        "title": "Incoming call",
        "body": "Carol Díaz (1010)",
        "tag": "pbx-phone",
        "closed": False,
    }
    page.get_by_role("button", name="Decline").click()
    expect(page.locator("#incoming")).to_be_hidden()
    assert page.evaluate("window.notifications[0].closed") is True  # gone with the ringing
    context.close()


def test_the_chosen_speaker_plays_the_call(bob: Page, portal: LivePortal, peer: SipPeer) -> None:
    """Chromium's fake audio outputs: the choice is applied at once (``setSinkId`` on the
    call's audio element), kept, and applied to the next call's audio when it connects."""
    page = bob
    connect_line(page, portal, "1002")
    page.get_by_text("Microphone and speaker").click()
    speaker = page.get_by_label("Speaker")
    expect(speaker.locator("option", has_text="Fake Audio Output 1")).to_have_count(1)
    chosen = speaker.locator("option", has_text="Fake Audio Output 1").get_attribute("value")
    assert chosen
    speaker.select_option(chosen)
    sink = "document.getElementById('remote-audio').sinkId"
    wait_for(lambda: page.evaluate(sink) == chosen, page, "the speaker applied")
    connect_line(page, portal, "1002")  # a new page: a new audio element
    assert page.evaluate(sink) == ""
    expect(page.get_by_label("Speaker")).to_have_value(chosen)  # kept
    peer.answering = True
    try:
        page.get_by_label("Number").fill("7000")
        page.get_by_role("button", name="Call", exact=True).click()
        expect(page.locator("#call-state")).to_have_text("Connected")
        wait_for(lambda: page.evaluate(sink) == chosen, page, "the speaker applied to the call")
        page.get_by_role("button", name="Hang up").click()
    finally:
        peer.answering = False


def test_a_number_in_the_call_history_dials_in_the_phone_window(
    browser: Browser, portal: LivePortal, peer: SipPeer
) -> None:
    captured = Path(__file__).resolve().parents[1] / "fakes" / "cdr" / "ext_answered_a.cdr.xml"
    uuid = "00000000-0000-0000-0000-000000000918"
    record = replace(read_cdr(captured.read_text()), uuid=uuid, call_uuid=uuid,
                     from_number="+15557654321", from_extension=None, to_extension=None)  # fmt: skip
    assert portal.deps.dsn is not None
    with connect(portal.deps.dsn) as conn:
        with conn.transaction():
            create_tenant_schema(conn, "acme")
        insert_calls(conn, "acme", [record])
    context = context_of(browser, portal, ALICE)  # a tenant admin: every call of acme
    page = context.pages[0]
    before = len(peer.invites)
    page.goto(portal.url + f"/t/acme/calls/{uuid}")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Call +15557654321").click()
    phone = opened.value
    expect(phone.locator("#reg-state")).to_have_text(re.compile("Registered as 1001"))
    wait_for(lambda: len(peer.invites) > before, phone, "the number was dialled")
    assert peer.invites[-1].first.startswith(f"INVITE sip:+15557654321@{REALM} ")
    page.goto(portal.url + "/t/acme/calls")  # the list's numbers too, in the same window
    page.get_by_role("link", name="Call +15557654321").first.click()
    wait_for(lambda: len(peer.invites) > before + 1, phone, "the list's number was dialled")
    assert len(context.pages) == 2
    context.close()


def test_a_running_phone_stops_at_the_next_call_once_the_extension_is_not_theirs(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    """Unlinked from 1003 in git while the phone window is open and registered: the call
    answered next is refused and the phone stops; linked again, it starts; unlinked again,
    the call dialled next never leaves the page."""
    page = bob
    before = portal.deps.state
    acme = before["acme"]
    users = dict(acme.users)
    users[BOB] = replace(users[BOB], extensions=("1002",))
    unlinked = {**before, "acme": replace(acme, users=users)}
    try:
        connect_line(page, portal, "1003")
        portal.deps.replace_state(unlinked)
        call_id = peer.call("1003", "1001", "Alice Smith")
        page.get_by_role("button", name="Answer").click()
        expect(page.get_by_role("alert")).to_contain_text("no longer yours")
        expect(page.locator("#reg-state")).to_have_text("Not connected")
        wait_for(
            lambda: any(a.header("Call-ID") == call_id and a.status >= 400 for a in peer.answers),
            page,
            "the call refused",
        )
        portal.deps.replace_state(before)
        connect_line(page, portal, "1003")
        portal.deps.replace_state(unlinked)
        invites = len(peer.invites)
        page.get_by_label("Number").fill("1001")
        page.get_by_role("button", name="Call", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("no longer yours")
        expect(page.locator("#reg-state")).to_have_text("Not connected")
        assert len(peer.invites) == invites
    finally:
        portal.deps.replace_state(before)


def answered(peer: SipPeer, call_id: str) -> int:
    return next((a.status for a in peer.answers if a.header("Call-ID") == call_id), 0)


def test_the_lamp_says_the_count_of_new_and_saved_messages_the_switch_notifies(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    """Started while two new messages and a saved one wait (the SUBSCRIBE's answer), then
    as the box changes (the unsolicited NOTIFYs)."""
    page = bob
    peer.boxes["1002"] = (2, 1)
    before = len(peer.subscribes)
    connect_line(page, portal, "1002")
    lamp = page.locator("#mwi")
    expect(lamp).to_have_attribute("data-state", "on")
    link = page.get_by_role("link", name="Voicemail: 2 new messages, 1 saved")
    expect(link).to_have_attribute("href", "/t/acme/voicemail?box=1002")
    [subscribe] = peer.subscribes[before:]
    assert subscribe.first.startswith(f"SUBSCRIBE sip:1002@{REALM} ")
    assert subscribe.header("Event") == "message-summary"
    call_id = peer.notify_mwi("1002", 1, 0)
    wait_for(lambda: answered(peer, call_id) == 200, page, "the NOTIFY accepted")
    expect(page.get_by_role("link", name="Voicemail: 1 new message")).to_be_visible()
    peer.notify_mwi("1002", 0, 3)  # all heard: the lamp goes out, the words say so too
    expect(lamp).to_have_attribute("data-state", "off")
    expect(lamp).to_have_text("Voicemail: no new message, 3 saved")
    assert "Message-Account" not in page.content()  # only the counts reach the page
    page.get_by_role("button", name="Disconnect").click()
    expect(lamp).to_be_hidden()  # the lamp belonged to that line


def test_clicking_the_lamp_opens_the_voicemail_page_in_the_portal_window(
    browser: Browser, portal: LivePortal, peer: SipPeer
) -> None:
    """The phone opened from the portal sends the portal window there (the phone window
    keeps its call); a phone opened on its own opens a new tab."""
    context = context_of(browser, portal, ALICE)
    page = context.pages[0]
    page.goto(portal.url + "/t/acme")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Phone", exact=True).click()
    phone = opened.value
    expect(phone.locator("#reg-state")).to_have_text(re.compile("Registered as 1001"))
    peer.notify_mwi("1001", 1, 0)
    phone.get_by_role("link", name="Voicemail: 1 new message").click()
    expect(page).to_have_url(portal.url + "/t/acme/voicemail?box=1001")
    expect(page.get_by_role("heading", name=re.compile("^Voicemail"))).to_be_visible()
    expect(phone).to_have_url(portal.url + "/phone")
    assert phone.evaluate("document.getElementById('phone').dataset.registration") == "registered"
    alone = context.new_page()
    alone.goto(portal.url + "/phone")
    expect(alone.locator("#reg-state")).to_have_text(re.compile("Registered as 1001"))
    peer.notify_mwi("1001", 1, 0)
    with context.expect_page() as tab:
        alone.get_by_role("link", name="Voicemail: 1 new message").click()
    expect(tab.value).to_have_url(portal.url + "/t/acme/voicemail?box=1001")
    context.close()


def test_a_line_without_a_box_shows_no_lamp_and_other_notifies_are_refused(
    bob: Page, portal: LivePortal, peer: SipPeer
) -> None:
    """The switch may notify any registered extension, box or not: the phone takes the
    NOTIFY but shows no lamp for a line without voicemail (and does not subscribe). Another event package
    than message-summary is refused (489 Bad Event)."""
    page = bob
    before = len(peer.subscribes)
    connect_line(page, portal, "1003")
    call_id = peer.notify_mwi("1003", 0, 0)
    wait_for(lambda: answered(peer, call_id) == 200, page, "the NOTIFY accepted")
    call_id = peer.notify_mwi("1003", 1, 0, event="presence")
    wait_for(lambda: answered(peer, call_id) == 489, page, "489 Bad Event")
    expect(page.locator("#mwi")).to_be_hidden()
    assert len(peer.subscribes) == before  # no box: nothing to subscribe to

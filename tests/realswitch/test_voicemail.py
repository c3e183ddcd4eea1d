"""Voicemail on the real switch: an unanswered call reaches the box, the caller's audio is
kept by mod_voicemail under the tenant's directory, ``vm_list`` shows it, the registered
phone's lamp lights (a ``message-summary`` NOTIFY saying yes); the tenant admin sees it in
the portal's API, plays it with Range, marks it heard (the lamp goes out) and deletes it (gone
from ``vm_list``). What the switch says (``vm_*`` replies, errors included, and the events)
is saved beside the log for the fake switch (``tests/fakes/freeswitch/captures``)."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from reconciler.store import connect
from reconciler.web.invitations import activate
from tests.fakes.portal import PASSWORD
from tests.realswitch.conftest import ACME, ADMIN, Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import SipMessage, Sipp
from tests.realswitch.switch import _read_frame, missing_reason

PCAP = Path("/usr/share/sip-tester/g711a.pcap")

if (_reason := missing_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)
if not PCAP.is_file():
    pytest.skip(f"{PCAP} missing (Debian's sip-tester ships it)", allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(240)]

BOX = "1007"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


class Portal:
    """The admin logged in to the node's portal (a cookie session, its CSRF token)."""

    def __init__(self, node: Node) -> None:
        self.base = f"http://127.0.0.1:{node.ports.portal}"
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.csrf = ""
        dsn = node.env["PBX_DATABASE_URL"]
        with connect(dsn) as conn:  # another module of the tier may have activated it
            known = conn.execute(
                "SELECT 1 FROM pbx.portal_accounts WHERE email = %s", (ADMIN,)
            ).fetchone()
        if known is None:
            done = subprocess.run(
                [sys.executable, "-m", "reconciler", "users", "invite", ADMIN,
                 "--portal-listen", self.base.removeprefix("http://")],
                env=node.env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"pbx users invite failed: {done.stderr}"
            token = done.stdout.split()[-1].rsplit("/", 1)[1]
            with connect(dsn) as conn:
                activate(conn, token, password=PASSWORD, confirmation=PASSWORD)
        login = self.request("GET", "/login").read().decode()
        form = {"csrf": _csrf(login), "email": ADMIN, "password": PASSWORD, "code": ""}
        self.request("POST", "/login", form=form)
        self.csrf = _csrf(self.request("GET", "/account").read().decode())

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        csrf = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        for name, value in {**(headers or {}), **csrf}.items():
            request.add_header(name, value)
        return self.opener.open(request, timeout=30)  # type: ignore[no-any-return]

    def json(self, method: str, path: str) -> dict[str, object]:
        return dict(json.loads(self.request(method, path).read()))


class Events:
    """mod_voicemail's events as the switch sends them to an ESL subscriber (plain)."""

    def __init__(self, node: Node) -> None:
        self.bodies: list[str] = []
        self.sock = socket.create_connection(("127.0.0.1", node.esl.port), timeout=60)
        reader = self.sock.makefile("rb")
        _read_frame(reader)  # auth/request
        self.sock.sendall(f"auth {node.esl.password}\n\n".encode())
        _read_frame(reader)
        self.sock.sendall(b"event plain MESSAGE_WAITING CUSTOM vm::maintenance\n\n")
        _read_frame(reader)
        self.thread = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self.thread.start()

    def _read(self, reader: object) -> None:
        try:
            while True:
                headers, body = _read_frame(reader)
                if headers.get("Content-Type") == "text/event-plain":
                    self.bodies.append(body)
        except (OSError, ConnectionError, ValueError):
            return

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]*)"', html)
    assert match, html[:500]
    return match.group(1)


def _messages(node: Node) -> list[list[str]]:
    """``vm_list <box>@<domain>``: one ``:``-separated line per message."""
    text = node.esl.api(f"vm_list {BOX}@{ACME}")
    return [line.split(":") for line in text.splitlines() if line.strip() and ":" in line]


def _register(node: Node, name: str, contact_port: int) -> None:
    """A REGISTER of the box's extension, its contact at ``contact_port``."""
    secret = node.credentials("acme", BOX)["password"]
    variables = {"user": BOX, "domain": ACME, "contact_port": str(contact_port), "expires": "600"}
    phone = node.sipp(
        name, "register.xml", target=node.tenant_target, variables=variables,
        extra=["-au", BOX, "-ap", secret],
    )  # fmt: skip
    phone.run()
    assert phone.final_status("REGISTER") == 200, phone.describe() + node.logs()


def _lit(lamp: Sipp) -> list[SipMessage]:
    return [m for m in lamp.received("NOTIFY") if "Messages-Waiting: yes" in m.text]


def test_an_unanswered_call_leaves_a_message_lights_the_lamp_and_is_deleted(node: Node) -> None:
    # the box's phones: one rings and is never picked up (the box rings 5 s), one is a
    # lamp (it takes the switch's NOTIFYs; an INVITE forked to it goes unanswered)
    ringing = node.sipp("vm-ringing", "uas_ring.xml", target=None).start().wait_listening()
    lamp = node.sipp("vm-lamp", "mwi_lamp.xml", target=None, extra=["-m", "20"])
    lamp.start().wait_listening()
    _register(node, "vm-phone", ringing.port)
    _register(node, "vm-lamp-phone", lamp.port)

    secret = node.credentials("acme", "1008")["password"]
    caller = node.sipp(
        "vm-caller",
        "call_leave_message.xml",
        target=node.tenant_target,
        variables={"user": "1008", "domain": ACME, "to_domain": ACME},
        extra=["-s", BOX, "-au", "1008", "-ap", secret],
    ).start()
    caller.wait(timeout=120)
    assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()
    assert ringing.received("INVITE"), ringing.describe()  # it rang, then voicemail
    ringing.close()
    # the box's greeting from git, copied under the sounds root, handed to mod_voicemail
    greeting = node.workdir / "sounds" / "acme" / "greetings" / "1007.wav"
    assert greeting.is_file()
    log = node.fs_log.read_text(errors="replace")
    assert f"voicemail_greeting_path={greeting}" in log, node.logs()
    assert f"done playing file {greeting}" in log, node.logs()  # played to the caller

    found = wait_for(
        lambda: _messages(node), "the message in vm_list", timeout=30, detail=node.logs
    )
    (node.workdir / "vm_list.txt").write_text(node.esl.api(f"vm_list {BOX}@{ACME}"))
    [message] = found  # type: ignore[misc]
    path = next(Path(field) for field in message if field.endswith(".wav"))
    box_dir = node.workdir / "voicemail" / "acme" / BOX
    assert path.parent.resolve() == box_dir.resolve(), message
    assert path.is_file() and path.stat().st_size > 1000, message

    # the lamp lights: an unsolicited message-summary NOTIFY saying yes
    [notify, *_] = wait_for(lambda: _lit(lamp), "the lamp lit", timeout=30, detail=lamp.describe)  # type: ignore[misc]
    assert notify.header("Event") == "message-summary", notify.text
    (node.workdir / "mwi_notify.txt").write_text(notify.text)
    uuid = next(field for field in message if len(field) == 36 and field.count("-") == 4)
    _capture_replies(node)

    # the portal: the admin sees it, plays it with Range, marks it heard, deletes it
    portal = Portal(node)
    api = "/api/v1/tenants/acme/voicemail"
    listed = wait_for(
        lambda: portal.json("GET", api)["messages"], "the message in the portal API", timeout=30
    )
    [shown] = listed  # type: ignore[misc]
    assert (shown["uuid"], shown["box"], shown["new"]) == (uuid, BOX, True), shown
    assert shown["caller_number"] == "1008", shown
    played = portal.request("GET", f"{api}/{BOX}/{uuid}/audio", headers={"Range": "bytes=0-99"})
    assert played.status == 206 and played.headers["Content-Type"] == "audio/wav"
    assert played.read(4) == b"RIFF"
    assert played.headers["Content-Range"].endswith(f"/{path.stat().st_size}")

    lamp.close()  # (a sipp lamp lives 60 s: the lamp going out is read from the switch)
    events = Events(node)
    assert portal.json("POST", f"{api}/{BOX}/{uuid}/heard")["new"] is False
    assert _messages(node)[0][1] != "0"  # read_epoch set on the switch
    # the lamp goes out: mod_voicemail's message-waiting event (sofia's NOTIFY source)
    wait_for(
        lambda: [b for b in events.bodies if "MWI-Messages-Waiting: no" in b],
        "the lamp out (MESSAGE_WAITING no)",
        timeout=30,
        detail=lambda: "\n\n".join(events.bodies),
    )

    assert portal.json("DELETE", f"{api}/{BOX}/{uuid}")["deleted"] is True
    wait_for(lambda: not _messages(node), "the message gone from vm_list", timeout=30)
    wait_for(lambda: len(events.bodies) >= 4, "mwi events of heard and delete", timeout=30)
    events.close()
    (node.workdir / "vm_events.txt").write_text("\n\n".join(events.bodies))
    assert not path.exists()
    assert portal.json("GET", api)["messages"] == []


def _capture_replies(node: Node) -> None:
    """What mod_voicemail answers besides a listing, saved for the fake switch: unknown ids,
    boxes and profiles, a missing argument."""
    commands = [
        f"vm_list 1001@{ACME}",
        f"vm_list {BOX}",
        f"vm_list {BOX}@{ACME}/nosuchprofile",
        "vm_list",
        f"vm_read {BOX}@{ACME} read {UNKNOWN}",
        f"vm_read {BOX}@{ACME} sideways {UNKNOWN}",
        f"vm_delete {BOX}@{ACME} {UNKNOWN}",
        f"vm_delete {BOX}",
        "vm_delete",
    ]
    replies = {command: node.esl.api(command) for command in commands}
    (node.workdir / "vm_replies.json").write_text(json.dumps(replies, indent=1))

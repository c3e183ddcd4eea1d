"""Voicemail on the real switch: an unanswered call reaches the box, the caller's audio is
kept by mod_voicemail under the tenant's directory, ``vm_list`` shows it, the registered
phone's lamp lights (a ``message-summary`` NOTIFY saying yes), and ``vm_delete`` removes it.
What the switch says is saved beside the log (``vm_list`` lines) for the fake switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.realswitch.conftest import ACME, Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import SipMessage, Sipp
from tests.realswitch.switch import missing_reason

PCAP = Path("/usr/share/sip-tester/g711a.pcap")

if (_reason := missing_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)
if not PCAP.is_file():
    pytest.skip(f"{PCAP} missing (Debian's sip-tester ships it)", allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(240)]

BOX = "1007"


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
    lamp.close()

    uuid = next(field for field in message if len(field) == 36 and field.count("-") == 4)
    node.esl.api(f"vm_delete {BOX}@{ACME} {uuid}")
    wait_for(lambda: not _messages(node), "the message gone from vm_list", timeout=30)

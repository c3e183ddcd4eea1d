"""mod_voicemail's API as the real switch answers it (the capture of tests/realswitch)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.switch.voicemail.listing import (
    UnsafeVoicemailArgument,
    delete_command,
    list_command,
    parse_list,
    read_command,
)

CAPTURE = Path(__file__).resolve().parents[1] / "fakes/freeswitch/captures/vm_list.txt"


def test_the_captured_vm_list_reads_as_one_new_message() -> None:
    [message] = parse_list(CAPTURE.read_text())
    assert message.box == "1007" and message.domain == "acme.example.com"
    assert message.folder == "inbox" and message.new
    assert message.caller_name == "Voicemail caller" and message.caller_number == "1008"
    assert message.seconds == 6
    # the file is named by its own id, not by the message's (the call's) uuid
    assert Path(message.path).parent.parts[-3:] == ("voicemail", "acme", "1007")
    assert Path(message.path).name.startswith("msg_") and message.path.endswith(".wav")
    assert message.created == datetime.fromtimestamp(int(CAPTURE.read_text()[:10]), UTC)


def test_a_caller_name_with_colons_and_a_heard_message() -> None:
    line = (
        "1700000000:1700000100:1001:acme.example.com:inbox:/v/acme/1001/msg_x.wav:"
        "0b6c3f7e-1111-4222-8333-444455556666:Dr: Who:555:42\n+OK\n"
    )
    [message] = parse_list(line)
    assert message.caller_name == "Dr: Who" and message.caller_number == "555"
    assert not message.new and message.seconds == 42


def test_commands_take_only_allow_listed_shapes() -> None:
    uuid = "0b6c3f7e-1111-4222-8333-444455556666"
    assert list_command("1001", "Acme.example.com") == "vm_list 1001@acme.example.com"
    assert read_command("1001", "acme.example.com", uuid, heard=True) == (
        f"vm_read 1001@acme.example.com read {uuid}"
    )
    assert delete_command("1001", "acme.example.com", uuid) == (
        f"vm_delete 1001@acme.example.com {uuid}"
    )
    for box, domain, message in [
        ("1001 x", "acme.example.com", uuid),
        ("1001", "acme.example.com/../x", uuid),
        ("1001", "acme.example.com", "../../etc/passwd"),
        ("1001", "acme.example.com", uuid + " all"),
    ]:
        with pytest.raises(UnsafeVoicemailArgument):
            delete_command(box, domain, message)

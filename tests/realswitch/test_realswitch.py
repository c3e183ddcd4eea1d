"""What the real switch does with the project's node config and daemon: registrations,
calls, queues, DIDs, drift repair. Every assertion is on what FreeSWITCH did (SIP on the
wire, mod_callcenter's own lists); waits poll with generous limits, nothing is timed."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from types import SimpleNamespace

import pytest

from reconciler.core.desired import tenant_state_from_spec
from reconciler.store import connect
from specs_schema.load import load_specs
from tests.fakes.portal import PASSWORD
from tests.realswitch.conftest import ACME, ADMIN, GLOBEX, Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import Sipp
from tests.realswitch.switch import missing_reason
from tests.web.support import csrf_of, make_account

CARRIER = "carrier.example.net"

if (_reason := missing_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(180)]


def register(
    node: Node,
    name: str,
    user: str,
    domain: str,
    password: str,
    contact_port: int,
    *,
    expires: int = 600,
) -> Sipp:
    """A phone's REGISTER with digest auth; the switch's final answer is in ``final_status``."""
    variables = {"user": user, "domain": domain, "contact_port": str(contact_port)}
    phone = node.sipp(
        name,
        "register.xml",
        target=node.tenant_target,
        variables={**variables, "expires": str(expires)},
        extra=["-au", user, "-ap", password],
    )
    phone.run()
    return phone


@contextlib.contextmanager
def registered_phone(node: Node, tenant: str, domain: str, extension: str) -> Iterator[Sipp]:
    """A sipp UAS that answers one call, registered as ``extension`` with its real password;
    unregistered afterwards, so no later test's call forks to a phone that is gone."""
    # One call (-m 1): an extension without a voicemail box gets no message-waiting NOTIFY
    # at registration (the directory's send-message-query-on-register), which sipp would
    # otherwise take for a call of its own
    uas = node.sipp(f"uas-{tenant}-{extension}", "uas.xml", target=None, extra=["-d", "500"])
    uas.start().wait_listening()
    secret = node.credentials(tenant, extension)["password"]
    name = f"{tenant}-{extension}"
    try:
        reg = register(node, f"reg-{name}", extension, domain, secret, uas.port)
        assert reg.final_status("REGISTER") == 200, reg.describe() + node.logs()
        yield uas
    finally:
        uas.close()
        register(node, f"unreg-{name}", extension, domain, secret, uas.port, expires=0)


def call(
    node: Node,
    name: str,
    caller: str,
    number: str,
    *,
    to_domain: str = ACME,
    tenant: str = "acme",
    domain: str = ACME,
) -> Sipp:
    """A phone's call from ``caller`` of ``tenant`` (digest auth) to ``number``@``to_domain``;
    returns the started sipp (it ends when the far end hangs up, or on a refusal)."""
    secret = node.credentials(tenant, caller)["password"]
    return node.sipp(
        name,
        "call_auth.xml",
        target=node.tenant_target,
        variables={"user": caller, "domain": domain, "to_domain": to_domain},
        extra=["-s", number, "-au", caller, "-ap", secret],
    ).start()


# --- 1. registration ---------------------------------------------------------------------


def contact_of(node: Node, user: str, domain: str) -> str:
    """Where the switch itself would send a call for ``user@domain`` (its registrations)."""
    return node.esl.api(f"sofia_contact */{user}@{domain}").strip()


def test_declared_extension_registers_with_its_password(node: Node) -> None:
    secret = node.credentials("acme", "1001")["password"]
    phone = register(node, "reg-ok", "1001", ACME, secret, contact_port=9)
    assert phone.final_status("REGISTER") == 200, phone.describe() + node.logs()
    challenge = next(m for m in phone.messages if m.status == 401)
    assert f'realm="{ACME}"' in (challenge.header("WWW-Authenticate") or "")
    assert "sip:1001@127.0.0.1:9;" in contact_of(node, "1001", ACME)


def test_wrong_password_is_forbidden(node: Node) -> None:
    phone = register(node, "reg-wrong", "1001", ACME, "not-the-password", contact_port=11)
    assert phone.final_status("REGISTER") == 403, phone.describe()
    assert "127.0.0.1:11;" not in contact_of(node, "1001", ACME)


def test_undeclared_user_is_forbidden(node: Node) -> None:
    secret = node.credentials("acme", "1001")["password"]
    phone = register(node, "reg-undeclared", "1099", ACME, secret, contact_port=9)
    assert phone.final_status("REGISTER") == 403, phone.describe()
    assert contact_of(node, "1099", ACME) == "error/user_not_registered"


def test_extension_cannot_register_in_another_tenants_domain(node: Node) -> None:
    secret = node.credentials("acme", "1001")["password"]
    phone = register(node, "reg-cross", "1001", GLOBEX, secret, contact_port=9)
    assert phone.final_status("REGISTER") == 403, phone.describe()
    assert contact_of(node, "1001", GLOBEX) == "error/user_not_registered"


# --- 2. calls between extensions ---------------------------------------------------------


def test_call_between_extensions_of_one_tenant_is_answered(node: Node) -> None:
    with registered_phone(node, "acme", ACME, "1003") as callee:
        caller = call(node, "call-1002-1003", "1002", "1003")
        caller.wait()
        invite = callee.wait_for_invite()
        assert invite.first_line.startswith("INVITE sip:1003@"), invite.first_line
        assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()
        assert caller.received("BYE"), "the callee's hang-up reached the caller"


def test_extension_of_another_tenant_cannot_be_reached(node: Node) -> None:
    with registered_phone(node, "globex", GLOBEX, "2001") as other:
        # addressed to the other tenant's own domain: the caller authenticates as acme, so
        # the call is routed in acme's context, where 2001 does not exist
        caller = call(node, "call-cross-tenant", "1002", "2001", to_domain=GLOBEX)
        caller.wait()
        # acme's context answers an unknown number with UNALLOCATED_NUMBER: 404 on the wire
        assert caller.final_status("INVITE") == 404, caller.describe()
        # the refusal is final: the switch has nothing left to send the other tenant's phone
        assert not other.received("INVITE"), other.describe()


# --- 3. queues ---------------------------------------------------------------------------


def _listed(node: Node, command: str, name: str) -> bool:
    return any(line.startswith(f"{name}|") for line in node.esl.try_api(command).splitlines())


def test_queue_and_agent_are_loaded_into_mod_callcenter(node: Node) -> None:
    wait_for(lambda: _listed(node, "callcenter_config queue list", f"support@{ACME}"),
             "queue support loaded", detail=node.logs)  # fmt: skip
    wait_for(lambda: _listed(node, "callcenter_config agent list", f"alice@{ACME}"),
             "agent alice loaded", detail=node.logs)  # fmt: skip
    # the tier is a command of its own after the agent's: wait for it too
    tier_row = f"support@{ACME}|alice@{ACME}|"
    wait_for(lambda: tier_row in node.esl.try_api(f"callcenter_config queue list tiers support@{ACME}"),
             "tier support/alice loaded", detail=node.logs)  # fmt: skip


def test_queue_call_rings_the_agents_phone(node: Node) -> None:
    wait_for(lambda: _listed(node, "callcenter_config agent list", f"alice@{ACME}"),
             "agent alice loaded", detail=node.logs)  # fmt: skip
    with registered_phone(node, "acme", ACME, "1004") as agent_phone:
        caller = call(node, "call-queue-7000", "1002", "7000")
        invite = agent_phone.wait_for_invite()
        assert invite.first_line.startswith("INVITE sip:1004@"), invite.first_line
        caller.wait()
        assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()


# --- 4. DIDs -----------------------------------------------------------------------------


def test_did_from_an_allowed_carrier_reaches_its_target(node: Node) -> None:
    with registered_phone(node, "acme", ACME, "1005") as target:
        carrier = node.sipp(
            "carrier-did",
            "call_carrier.xml",
            target=node.carrier_target,
            variables={"user": "+14155559999", "domain": CARRIER, "to_domain": CARRIER},
            extra=["-s", "+14155550100"],
        ).start()
        invite = target.wait_for_invite()
        assert invite.first_line.startswith("INVITE sip:1005@"), invite.first_line
        carrier.wait()
        assert carrier.final_status("INVITE") == 200, carrier.describe() + node.logs()


def test_did_from_an_unlisted_address_is_refused(node: Node) -> None:
    with registered_phone(node, "acme", ACME, "1005") as target:
        carrier = node.sipp(
            "carrier-unlisted",
            "call_carrier.xml",
            target=node.carrier_target,
            variables={"user": "+14155559999", "domain": CARRIER, "to_domain": CARRIER},
            extra=["-s", "+14155550100"],
            local_ip="127.0.0.2",
        ).start()
        carrier.wait()
        # the carriers profile's inbound ACL refuses before any lookup: 403, no 100 Trying
        assert carrier.final_status("INVITE") == 403, carrier.describe()
        assert not target.received("INVITE"), target.describe()


# --- 5. drift repair ---------------------------------------------------------------------


def test_agent_deleted_by_hand_is_restored_by_the_drift_check(node: Node) -> None:
    agent = f"dora@{ACME}"
    wait_for(lambda: _listed(node, "callcenter_config agent list", agent),
             "agent dora loaded", detail=node.logs)  # fmt: skip
    reply = node.esl.fs_cli(f"callcenter_config agent del {agent}")
    assert "+OK" in reply, reply
    # the agent and its tier come back as two commands: wait for both, not for the first
    tier_row = f"backoffice@{ACME}|{agent}|"
    wait_for(lambda: _listed(node, "callcenter_config agent list", agent)
             and tier_row in node.esl.try_api(f"callcenter_config queue list tiers backoffice@{ACME}"),
             "agent dora and its tier restored by the daemon", timeout=45,
             detail=node.logs)  # fmt: skip


# --- 6. audio: recordings and the tenant's own sounds -----------------------------------


def _portal_session(node: Node, email: str) -> tuple[urllib.request.OpenerDirector, str]:
    """An activated account (through a real invitation) logged in through the form."""
    spec = load_specs([node.tenants_dir]).tenants["acme"].spec
    people = SimpleNamespace(state={"acme": tenant_state_from_spec(spec)}, admins={})
    with connect(node.env["PBX_DATABASE_URL"]) as conn:  # another module may have made it
        known = conn.execute("SELECT 1 FROM pbx.portal_accounts WHERE email = %s", (email,))
        exists = known.fetchone() is not None
    if not exists:
        make_account(node.env["PBX_DATABASE_URL"], people, email)  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{node.ports.portal}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{base}/login", timeout=10) as page:
        csrf = csrf_of(page.read().decode())
    form = urllib.parse.urlencode(
        {"csrf": csrf, "email": email, "password": PASSWORD, "code": ""}
    ).encode()
    with opener.open(f"{base}/login", data=form, timeout=30) as answer:
        assert answer.status == 200
    return opener, base


def test_a_queue_call_is_recorded_and_the_admin_lists_and_plays_it(node: Node) -> None:
    wait_for(lambda: _listed(node, "callcenter_config agent list", f"rita@{ACME}"),
             "agent rita loaded", detail=node.logs)  # fmt: skip
    # the tenant's hold music from git, copied where the queue's moh-sound points
    copied = node.workdir / "sounds" / "acme" / "moh" / "hold.wav"
    wait_for(copied.is_file, "tenant:moh/hold.wav copied into the sounds root", detail=node.logs)
    git_copy = node.tenants_dir / "acme" / "sounds" / "moh" / "hold.wav"
    assert copied.read_bytes() == git_copy.read_bytes()
    with registered_phone(node, "acme", ACME, "1030") as agent_phone:
        caller = call(node, "call-queue-7003", "1002", "7003")
        agent_phone.wait_for_invite()
        caller.wait()
        assert caller.final_status("INVITE") == 200, caller.describe() + node.logs()
    recordings = node.workdir / "recordings" / "acme"
    wait_for(lambda: list(recordings.rglob("*.wav")), "the queue call's recording",
             detail=node.logs)  # fmt: skip
    (recording,) = recordings.rglob("*.wav")
    path = recording.relative_to(recordings).as_posix()
    assert path.startswith("recorded/"), path
    # who answered: the note the daemon wrote from mod_callcenter's bridge-agent-start
    note = recordings / ".answered" / f"{recording.stem}.rita"
    wait_for(note.is_file, "the answered note of the recorded call", detail=node.logs)
    assert json.loads(note.read_text()) == {"agent": "rita", "queue": "recorded"}

    opener, base = _portal_session(node, ADMIN)
    api = f"{base}/api/v1/tenants/acme/recordings"
    with opener.open(f"{api}?agent=rita", timeout=30) as answer:
        listed = json.loads(answer.read())
    assert [r["path"] for r in listed["recordings"]] == [path]
    item = listed["recordings"][0]
    assert (item["queue"], item["agent"]) == ("recorded", "rita")
    ranged = urllib.request.Request(base + item["url"], headers={"Range": "bytes=0-3"})
    with opener.open(ranged, timeout=30) as audio:
        assert audio.status == 206
        assert audio.read() == b"RIFF"
        assert audio.headers["Content-Type"] == "audio/wav"

"""mod_sofia in the fake: phones' registrations, their api views and the sofia::* events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tests.fakes.freeswitch.gateways import FakeGateways

if TYPE_CHECKING:
    from tests.fakes.freeswitch.switch import FakeFreeSwitch

REG_SEPARATOR = "=" * 97


@dataclass
class FakeRegistration:
    """One phone's registration as sofia and the core registrations table hold it."""

    user: str
    realm: str
    call_id: str
    contact: str  # as the phone sent it: '"" <sip:1001@127.0.0.1:5381;transport=UDP>'
    network_ip: str
    network_port: int
    user_agent: str
    registered_at: int  # epoch seconds
    expires: int = 120
    profile: str = "internal"
    transport: str = "UDP"
    rpid: str = "unknown"
    ping_status: str = "Reachable"
    ping_time: str = "0.00"

    @property
    def status(self) -> str:
        return f"Registered({self.transport})"

    @property
    def url(self) -> str:
        """The dialable contact (``show registrations``'s ``url``)."""
        uri = self.contact[self.contact.index("<") + 1 : self.contact.rindex(">")]
        return f"sofia/{self.profile}/{uri}"


class FakeSofia:
    """mod_sofia's registrations: the api views and the sofia::* events.

    Captured (esl/live): ``show registrations [as json]``, ``sofia [xml]status profile P reg``
    with one row, and the ``sofia::register`` event. Inferred from the 1.10 source and those
    neighbours (no capture): the empty forms of the four views, and the headers of
    ``sofia::unregister`` and ``sofia::expire``.
    """

    sip_expires_late_margin = 60  # the core table's expiry: registration + expires + margin

    def __init__(self, fs: FakeFreeSwitch, presence_hosts: str = "127.0.0.1,127.0.0.1") -> None:
        self.fs = fs
        self.presence_hosts = presence_hosts
        self.registrations: dict[str, FakeRegistration] = {}
        self.gateways = FakeGateways()

    # -- phones --------------------------------------------------------------------------

    def register(
        self,
        user: str,
        realm: str,
        *,
        contact_port: int = 5381,
        network_port: int = 5382,
        network_ip: str = "127.0.0.1",
        call_id: str | None = None,
        user_agent: str = "SIPp register test",
        expires: int = 120,
        profile: str = "internal",
        variables: Iterable[tuple[str, str]] = (),
    ) -> FakeRegistration:
        """A phone registers (digest auth passed): stored, and ``sofia::register`` fired.
        ``variables``: the directory user's params/variables the event carries last."""
        reg = FakeRegistration(
            user=user,
            realm=realm,
            call_id=call_id or f"{uuid.uuid4()}@{network_ip}",
            contact=f'"" <sip:{user}@{network_ip}:{contact_port};transport=UDP>',
            network_ip=network_ip,
            network_port=network_port,
            user_agent=user_agent,
            registered_at=self.fs.clock_us() // 1_000_000,
            expires=expires,
            profile=profile,
        )
        self.registrations[reg.call_id] = reg
        headers = [
            ("profile-name", reg.profile),
            ("from-user", user),
            ("from-host", realm),
            ("presence-hosts", self.presence_hosts),
            ("contact", reg.contact),
            ("call-id", reg.call_id),
            ("rpid", reg.rpid),
            ("status", reg.status),
            ("expires", str(expires)),
            ("to-user", user),
            ("to-host", realm),
            ("network-ip", network_ip),
            ("network-port", str(network_port)),
            ("username", user),
            ("realm", realm),
            ("user-agent", user_agent),
            *variables,
        ]
        self._fire("sofia::register", "sofia_reg_handle_register_token", 2059, headers)
        return reg

    def unregister(self, call_id: str) -> None:
        """The phone sends REGISTER with Expires: 0 (headers inferred, see the class doc)."""
        reg = self.registrations.pop(call_id)
        headers = [
            ("profile-name", reg.profile),
            ("from-user", reg.user),
            ("from-host", reg.realm),
            ("contact", reg.contact),
            ("call-id", reg.call_id),
            ("rpid", reg.rpid),
            ("expires", "0"),
            ("to-user", reg.user),
            ("to-host", reg.realm),
            ("network-ip", reg.network_ip),
            ("network-port", str(reg.network_port)),
            ("username", reg.user),
            ("realm", reg.realm),
            ("user-agent", reg.user_agent),
        ]
        self._fire("sofia::unregister", "sofia_reg_handle_register_token", 1586, headers)

    def expire(self, call_id: str) -> None:
        """sofia's reaper drops a registration that was not renewed (headers inferred)."""
        reg = self.registrations.pop(call_id)
        headers = [
            ("profile-name", reg.profile),
            ("call-id", reg.call_id),
            ("user", reg.user),
            ("host", reg.realm),
            ("contact", reg.contact),
            ("expires", str(reg.registered_at + reg.expires)),
            ("user-agent", reg.user_agent),
            ("network-ip", reg.network_ip),
            ("network-port", str(reg.network_port)),
        ]
        self._fire("sofia::expire", "sofia_reg_del_callback", 304, headers)

    def _fire(
        self, subclass: str, function: str, line: int, headers: list[tuple[str, str]]
    ) -> None:
        self.fs.emit_event(
            "CUSTOM", headers, subclass=subclass, calling=("sofia_reg.c", function, line)
        )

    # -- api -----------------------------------------------------------------------------

    def api(self, cmd: str, arg: str) -> str:
        words = arg.split()
        if cmd == "show" and words[:1] == ["registrations"]:
            return self._show_json() if words[1:] == ["as", "json"] else self._show_text()
        if cmd == "sofia":
            reply = self.gateways.api(words)
            if reply is not None:
                return reply
        if cmd == "sofia" and len(words) == 4 and words[1::2] == ["profile", "reg"]:
            if words[0] == "xmlstatus":
                return self._xmlstatus(words[2])
            if words[0] == "status":
                return self._status(words[2])
        return f"-ERR {cmd} {arg}: not modelled by the fake\n"

    def _rows(self) -> list[dict[str, str]]:
        return [
            {
                "reg_user": r.user,
                "realm": r.realm,
                "token": r.call_id,
                "url": r.url,
                "expires": str(r.registered_at + r.expires + self.sip_expires_late_margin),
                "network_ip": r.network_ip,
                "network_port": str(r.network_port),
                "network_proto": r.transport.lower(),
                "hostname": self.fs.hostname,
                "metadata": "",
            }
            for r in self.registrations.values()
        ]

    def _show_text(self) -> str:
        rows = self._rows()
        if not rows:
            return "\n0 total.\n"  # inferred: the header is printed with the first row
        lines = [",".join(rows[0]), *(",".join(row.values()) for row in rows)]
        return "\n".join(lines) + f"\n\n{len(rows)} total.\n"

    def _show_json(self) -> str:
        rows = self._rows()
        if not rows:
            return '{"row_count":0}'  # inferred
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))

    def _of(self, profile: str) -> list[FakeRegistration]:
        return [r for r in self.registrations.values() if r.profile == profile]

    def _expiry(self, reg: FakeRegistration) -> tuple[str, int]:
        ends = reg.registered_at + reg.expires + self.sip_expires_late_margin
        left = ends - self.fs.clock_us() // 1_000_000
        return datetime.fromtimestamp(ends, self.fs.tz).strftime("%Y-%m-%d %H:%M:%S"), left

    def _xmlstatus(self, profile: str) -> str:
        rows = []
        for r in self._of(profile):
            when, left = self._expiry(r)
            fields_ = [
                ("call-id", r.call_id),
                ("user", f"{r.user}@{r.realm}"),
                ("contact", r.contact),
                ("agent", r.user_agent),
                ("status", f"{r.status}({r.rpid}) exp({when}) expsecs({left})"),
                ("ping-status", r.ping_status),
                ("ping-time", r.ping_time),
                ("host", self.fs.hostname),
                ("network-ip", r.network_ip),
                ("network-port", str(r.network_port)),
                ("sip-auth-user", r.user),
                ("sip-auth-realm", r.realm),
                ("mwi-account", f"{r.user}@{r.realm}"),
            ]
            inner = "".join(f"        <{k}>{xml_escape(v)}</{k}>\n" for k, v in fields_)
            rows.append(f"    <registration>\n{inner}    </registration>\n")
        return (
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n<profile>\n  <registrations>\n'
            + "".join(rows)
            + "  </registrations>\n</profile>\n"
        )

    def _status(self, profile: str) -> str:
        blocks = []
        for r in self._of(profile):
            when, left = self._expiry(r)
            blocks.append(
                f"Call-ID:    \t{r.call_id}\nUser:       \t{r.user}@{r.realm}\n"
                f"Contact:    \t{r.contact}\nAgent:      \t{r.user_agent}\n"
                f"Status:     \t{r.status}({r.rpid}) EXP({when}) EXPSECS({left})\n"
                f"Ping-Status:\t{r.ping_status}\nPing-Time:\t{r.ping_time}\n"
                f"Host:       \t{self.fs.hostname}\nIP:         \t{r.network_ip}\n"
                f"Port:       \t{r.network_port}\nAuth-User:  \t{r.user}\n"
                f"Auth-Realm: \t{r.realm}\nMWI-Account:\t{r.user}@{r.realm}\n\n"
            )
        return (
            f"\nRegistrations:\n{REG_SEPARATOR}\n"
            + "".join(blocks)
            + f"Total items returned: {len(blocks)}\n{REG_SEPARATOR}\n"
        )


def xml_escape(value: str) -> str:
    """sofia's XML escaping of a registration field (quotes included, as captured)."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )

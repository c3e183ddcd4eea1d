"""mod_sofia's carrier gateways in the fake: ``sofia profile carriers startgw|killgw``,
``sofia xmlstatus gateway [name]``, as FreeSWITCH 1.10.12 answers them (captured:
``captures/sofia_gateways``).

``startgw`` fetches the gateway as the real switch does, through ``fetch`` (given the
xml_curl form, returning the answer's XML or None): tests wire it to the real
``reconciler.serve.xmlcurl.answer``. As on the real switch, ``startgw`` answers ``+OK`` even
when nothing was fetched, and a killed gateway stays listed (state ``UNREGISTER``) until
``reap()`` (sofia reaps within ~3 s) while ``xmlstatus gateway <name>`` says
``Invalid Gateway!`` at once. Registration is not simulated: a gateway that registers is
``REGED`` when its password is ``accept_password`` (or any when that is None), else
``FAIL_WAIT`` with a retry; one that does not is ``NOREG``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

HEADER = '<?xml version="1.0" encoding="ISO-8859-1"?>'
Fetch = Callable[[Mapping[str, str]], str | None]


@dataclass
class FakeGateway:
    name: str
    params: dict[str, str]
    profile: str = "carriers"
    state: str = "NOREG"
    status: str = "UP"
    deleted: bool = False
    calls_in: int = 0
    calls_out: int = 0

    def xml(self) -> str:
        p = self.params
        username = p.get("username") or "FreeSWITCH"
        realm = p.get("realm") or p.get("proxy", "")
        proxy = p.get("register-proxy") or p.get("proxy") or realm
        retry = (
            "    <retry>28s</retry>\n" if self.state in ("FAILED", "FAIL_WAIT", "TRYING") else ""
        )
        ping = p.get("ping", "0")
        return (
            "  <gateway>\n"
            f"    <name>{self.name}</name>\n"
            f"    <profile>{self.profile}</profile>\n"
            "    <scheme>Digest</scheme>\n"
            f"    <realm>{realm}</realm>\n"
            f"    <username>{username}</username>\n"
            f"    <password>{'yes' if p.get('password') else 'no'}</password>\n"
            f"    <from>&lt;sip:{username}@{realm}&gt;</from>\n"
            f"    <contact>&lt;sip:gw+{self.name}@127.0.0.1:5080;transport=udp;gw={self.name}&gt;</contact>\n"
            f"    <exten>{username}</exten>\n"
            f"    <to>sip:{username}@{proxy}</to>\n"
            f"    <proxy>sip:{proxy}</proxy>\n"
            "    <context>public</context>\n"
            f"    <expires>{p.get('expire-seconds', '3600')}</expires>\n"
            f"    <freq>{p.get('expire-seconds', '3600')}</freq>\n"
            "    <ping>0</ping>\n"
            f"    <pingfreq>{ping}</pingfreq>\n"
            f"    <pingmin>{1 if ping != '0' else 0}</pingmin>\n"
            "    <pingcount>0</pingcount>\n"
            f"    <pingmax>{1 if ping != '0' else 0}</pingmax>\n"
            "    <pingtime>0.00</pingtime>\n"
            "    <pinging>0</pinging>\n"
            f"    <state>{self.state}</state>\n"
            f"    <status>{self.status}</status>\n"
            f"    <uptime-usec>{1000000 if self.status == 'UP' else 0}</uptime-usec>\n"
            f"    <calls-in>{self.calls_in}</calls-in>\n"
            f"    <calls-out>{self.calls_out}</calls-out>\n"
            "    <failed-calls-in>0</failed-calls-in>\n"
            "    <failed-calls-out>0</failed-calls-out>\n"
            f"{retry}"
            "  </gateway>\n"
        )


@dataclass
class FakeGateways:
    """The gateways of every profile, newest first (sofia prepends)."""

    fetch: Fetch | None = None
    accept_password: str | None = None
    hostname: str = "fake"
    gateways: list[FakeGateway] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def live(self, name: str) -> FakeGateway | None:
        return next((g for g in self.gateways if g.name == name and not g.deleted), None)

    def add(self, name: str, params: Mapping[str, str], profile: str = "carriers") -> FakeGateway:
        """A gateway defined some other way (a file on the node): drift to the reconciler."""
        gateway = FakeGateway(name, dict(params), profile)
        gateway.state = self._registered(gateway)
        self.gateways.insert(0, gateway)
        return gateway

    def reap(self) -> None:
        """sofia's reaper: killed gateways leave the list."""
        self.gateways = [g for g in self.gateways if not g.deleted]

    def api(self, words: list[str]) -> str | None:
        """The reply to ``sofia <words>``, or None when it is not a gateway command."""
        if words[:2] == ["xmlstatus", "gateway"]:
            if len(words) == 2:
                listed = "".join(g.xml() for g in self.gateways if g.profile)
                return f"{HEADER}\n<gateways>\n{listed}</gateways>\n"
            one = self.live(words[2])
            return f"{HEADER}\n{one.xml()}" if one is not None else "Invalid Gateway!\n"
        if len(words) == 4 and words[0] == "profile" and words[2] in ("startgw", "killgw"):
            self.commands.append(" ".join(words))
            if words[1] != "carriers":
                return f"Invalid Profile [{words[1]}]"
            return self._startgw(words[3]) if words[2] == "startgw" else self._killgw(words[3])
        return None

    def _killgw(self, name: str) -> str:
        gateway = self.live(name)
        if gateway is None:
            return "-ERR no such gateway.\n"
        gateway.deleted, gateway.state = True, "UNREGISTER"
        return "+OK gateway marked for deletion.\n"

    def _startgw(self, name: str) -> str:
        form = {
            "hostname": self.hostname,
            "section": "configuration",
            "tag_name": "configuration",
            "key_name": "name",
            "key_value": "sofia.conf",
            "profile": "carriers",
            "reconfig": "true",
            "gateway": name,
        }
        answer = self.fetch(form) if self.fetch is not None else None
        if answer is not None:
            root = ET.fromstring(answer)
            for element in root.iter("gateway"):
                gname = element.get("name", "")
                if self.live(gname) is not None:
                    continue  # "Ignoring duplicate gateway"
                params = {p.get("name", ""): p.get("value", "") for p in element.iter("param")}
                self.add(gname, params)
        return f"Reload XML [Success]\n+OK start gateway {name} complete\n"

    def _registered(self, gateway: FakeGateway) -> str:
        if gateway.params.get("register") != "true":
            return "NOREG"
        wanted = self.accept_password
        return (
            "REGED" if wanted is None or gateway.params.get("password") == wanted else "FAIL_WAIT"
        )

"""What a phone needs to register, besides its username and password: one row per way to
reach the switch (registrar/proxy host, port, transport), rendered from this one list on
the extension and credentials pages (a new transport, such as the browser phone's WSS, is
one more ``Transport`` here).

The host is ``--portal-sip-host`` when set (the public name of the switches), else the
tenant's SIP domain (a domain whose DNS points at the switches, the usual multi-tenant
setup: the realm and the registrar are then the same name). Nothing here is a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from reconciler.store.credentials import SipCredentials
from reconciler.web.config import PortalConfig


@dataclass(frozen=True, slots=True)
class Transport:
    name: str  # what the row says: UDP, TCP, TLS
    transport: str  # the ;transport= parameter value
    host: str
    port: int

    @property
    def proxy(self) -> str:
        """The outbound proxy as most phones take it: ``host:port;transport=x``."""
        return f"{self.host}:{self.port};transport={self.transport}"


def transports(config: PortalConfig, domain: str) -> list[Transport]:
    """The ways a phone of ``domain`` reaches the switches, most common first."""
    host = config.sip_host or domain
    return [
        Transport("UDP", "udp", host, config.sip_port),
        Transport("TCP", "tcp", host, config.sip_port),
        Transport("TLS", "tls", host, config.sip_tls_port),
    ]


def account_uri(creds: SipCredentials, via: Transport) -> str:
    """The QR code's text: the account as a SIP URI with its password in the userinfo
    (RFC 3261), the registrar as ``maddr`` when it is not the domain itself. Only ever put
    on the owner's reveal page."""
    where = "" if via.host == creds.domain else f";maddr={via.host}"
    port = "" if via.port == 5060 else f":{via.port}"
    return f"sip:{creds.username}:{creds.password}@{creds.domain}{port}{where};transport={via.transport}"


def wave_account_xml(creds: SipCredentials, via: Transport, account_name: str) -> str:
    """The QR code Grandstream Wave (Android and iOS; "Scan QR code" when adding an account)
    imports: its ``AccountConfig`` XML, the account with its password. The registrar is
    the domain (the realm FreeSWITCH challenges with); ``via`` becomes the outbound proxy
    when it is not simply the domain on 5060. Only ever put on the owner's reveal page."""
    proxy = "" if (via.host, via.port) == (creds.domain, 5060) else f"{via.host}:{via.port}"
    fields = {
        "RegisterServer": creds.domain,
        "OutboundServer": proxy,
        "UserID": creds.username,
        "AuthID": creds.username,
        "AuthPass": creds.password,
        "AccountName": account_name,
        "DisplayName": creds.username,
    }
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<AccountConfig version="1"><Account>{body}</Account></AccountConfig>'
    )

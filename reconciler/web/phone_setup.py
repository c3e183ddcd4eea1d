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

    @property
    def uri(self) -> str:
        """The registrar as a SIP URI (``sips:`` for TLS)."""
        scheme = "sips" if self.transport == "tls" else "sip"
        return f"{scheme}:{self.host}:{self.port};transport={self.transport}"


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

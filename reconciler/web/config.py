"""The portal's settings: where it is reached, how long sessions live, how hard logins are
throttled. Built by the CLI (``PBX_PORTAL_*``); every default is what production wants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.web.wss import parse_wss_urls

if TYPE_CHECKING:  # the mailer (SMTP client, invitations) loads only when mail is configured
    from reconciler.web.mail import MailSettings

# No FreeSWITCH default binds it: 8081/8082 are mod_verto's, 8080 mod_xml_rpc's, 8090
# mod_sms_flowroute's, 8021 the event socket, 5060/5066/5080/7443 SIP, 16384-32768 RTP.
DEFAULT_LISTEN = ("127.0.0.1", 8180)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``attempts`` within ``window`` seconds."""

    attempts: int
    window: float


@dataclass(frozen=True, slots=True)
class PortalConfig:
    """``public_url``: the base URL people use (links in invitations; ``https`` turns on
    Secure cookies and HSTS). ``secure_cookies``: None decides from ``public_url`` and TLS.
    ``session_cache_seconds``: how long a session lookup is trusted without the database
    (revocation by this process is immediate; by another daemon, within this delay).
    Login throttling (``ratelimit``): ``login_per_account_address`` free failures then
    doubling delays, ``login_per_address`` failures, ``login_per_account`` the cap of all
    addresses together. ``argon2_threads``/``argon2_queue``: password checks run on their
    own threads, beyond ``threads + queue`` waiting ones a login is refused at once (503).
    ``trusted_proxies``: peers whose ``X-Forwarded-For`` names the client.
    ``unauthenticated_per_address``: requests from one address that nobody is logged in
    for (``web.addresslimit``); past it, 429 before any database lookup."""

    public_url: str = "http://127.0.0.1:8180"
    listen_host: str = DEFAULT_LISTEN[0]
    listen_port: int = DEFAULT_LISTEN[1]
    tls_cert: Path | None = None
    tls_key: Path | None = None
    secure_cookies: bool | None = None
    idle_timeout: float = 30 * 60.0
    absolute_timeout: float = 12 * 3600.0
    invitation_ttl: float = 72 * 3600.0
    session_cache_seconds: float = 5.0
    login_per_account_address: RateLimit = RateLimit(attempts=5, window=15 * 60.0)
    login_per_address: RateLimit = RateLimit(attempts=30, window=5 * 60.0)
    login_per_account: RateLimit = RateLimit(attempts=100, window=15 * 60.0)
    argon2_threads: int = 2
    argon2_queue: int = 16
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    unauthenticated_per_address: RateLimit = RateLimit(attempts=120, window=60.0)
    db_pool_size: int = 4
    sse_heartbeat: float = 15.0
    mail: MailSettings | None = None  # invitations and resets go to the person, not the inviter
    token_days: int = 90  # an API token's lifetime unless its creator asks for less
    token_max_days: int = 90  # the longest lifetime anyone may ask for
    phone_wss: tuple[str, ...] = ()  # each node's public wss:// URL; none: no browser phone
    revision_url: str | None = None  # https://.../commit/{revision}: revisions link there
    sip_host: str | None = None  # what phones register to; None: each tenant's SIP domain
    sip_port: int = 5060  # UDP and TCP
    sip_tls_port: int = 5061
    service_level: float = 20.0  # wallboards: answered within this many seconds
    audio_roots: AudioRoots = DEFAULT_ROOTS  # where recordings, sounds, voicemail are read
    # a look at the recordings directories is trusted this long (then refreshed behind the
    # page); 0: every listing looks at the disk first
    recordings_fresh_seconds: float = 1.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"portal URL must be http(s)://host[:port]: {self.public_url!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("portal TLS needs both a certificate and a key")
        if self.idle_timeout <= 0 or self.absolute_timeout < self.idle_timeout:
            raise ValueError("portal timeouts: 0 < idle <= absolute")
        if not 1 <= self.token_max_days <= 3650:
            raise ValueError("API token lifetime: 1 to 3650 days")
        object.__setattr__(self, "phone_wss", parse_wss_urls(self.phone_wss))
        if self.revision_url is not None:
            parse_revision_url(self.revision_url)
        if self.sip_host is not None:
            parse_sip_host(self.sip_host)
        if not (0 < self.sip_port < 65536 and 0 < self.sip_tls_port < 65536):
            raise ValueError("SIP ports: 1 to 65535")
        if not 1 <= self.service_level <= 3600:
            raise ValueError("service level: 1 to 3600 seconds")

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def cookies_secure(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.tls or self.public_url.startswith("https://")

    def link(self, path: str) -> str:
        """An absolute link for someone outside the portal (an invitation e-mail)."""
        return self.base_url + path


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) of ``--portal-listen``."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--portal-listen must be HOST:PORT, not {text!r}")
    return host, int(port)


REVISION = "{revision}"
_SIP_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def parse_revision_url(text: str) -> str:
    """``--portal-revision-url``: an https URL with exactly one ``{revision}`` (the commit
    id goes there) and no other brace, space or control character."""
    parts = urlsplit(text)
    rest = text.replace(REVISION, "", 1)
    if (
        parts.scheme != "https"
        or not parts.netloc
        or REVISION in parts.netloc
        or text.count(REVISION) != 1
        or any(c in "{} " or ord(c) < 32 or ord(c) == 127 for c in rest)
    ):
        raise ValueError(
            "the revision URL must be https://... with exactly one {revision}, e.g. "
            f"https://git.example.com/pbx/commit/{{revision}}, not {text!r}"
        )
    return text


def parse_sip_host(text: str) -> str:
    """``--portal-sip-host``: a DNS name or IPv4 address phones register to."""
    if not _SIP_HOST.match(text) or ".." in text:
        raise ValueError(f"the SIP host must be a host name or IPv4 address, not {text!r}")
    return text


def parse_rate(text: str) -> RateLimit:
    """``N/SECONDS`` of ``--portal-login-limit``, ``--portal-address-limit`` and
    ``--portal-unauthenticated-limit``."""
    attempts, sep, window = text.strip().partition("/")
    if not sep or not attempts.isdigit() or not window.isdigit() or int(attempts) < 1:
        raise ValueError(f"a rate limit is ATTEMPTS/SECONDS, e.g. 5/900, not {text!r}")
    return RateLimit(int(attempts), float(window))


def parse_networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """``CIDR,...`` of ``--portal-trusted-proxies`` (a bare address is a /32 or /128)."""
    try:
        return tuple(ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise ValueError(f"trusted proxies are CIDR,CIDR..., not {text!r}") from exc


def config_from_settings(
    listen: str = "127.0.0.1:8180",
    url: str | None = None,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    idle_timeout: float = 1800.0,
    session_lifetime: float = 43200.0,
    invite_ttl: float = 259200.0,
    login_limit: str = "5/900",
    address_limit: str = "30/300",
    trusted_proxies: str = "",
    unauthenticated_limit: str = "120/60",
    smtp_url: str | None = None,
    smtp_from: str | None = None,
    token_max_days: int = 90,
    phone_wss: tuple[str, ...] = (),
    revision_url: str | None = None,
    sip_host: str | None = None,
    sip_port: int = 5060,
    sip_tls_port: int = 5061,
    service_level: float = 20.0,
) -> PortalConfig:
    """The portal's config from the CLI's settings (``PBX_PORTAL_*``), as given."""
    host, port = parse_listen(listen)
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if tls_cert else "http"
    return PortalConfig(
        public_url=url or f"{scheme}://{shown}:{port}",
        listen_host=host,
        listen_port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        idle_timeout=idle_timeout,
        absolute_timeout=session_lifetime,
        invitation_ttl=invite_ttl,
        login_per_account_address=parse_rate(login_limit),
        login_per_address=parse_rate(address_limit),
        trusted_proxies=parse_networks(trusted_proxies),
        unauthenticated_per_address=parse_rate(unauthenticated_limit),
        mail=mail_settings(smtp_url, smtp_from),
        token_days=min(90, token_max_days),
        token_max_days=token_max_days,
        phone_wss=phone_wss,
        revision_url=revision_url or None,
        sip_host=sip_host or None,
        sip_port=sip_port,
        sip_tls_port=sip_tls_port,
        service_level=service_level,
    )


def mail_settings(smtp_url: str | None, smtp_from: str | None) -> MailSettings | None:
    """``PBX_SMTP_URL`` + ``PBX_SMTP_FROM``, or None (links are then shown to the inviter)."""
    if not smtp_url:
        return None
    from reconciler.web.mail import MailSettings

    return MailSettings.parse(smtp_url, smtp_from or "")

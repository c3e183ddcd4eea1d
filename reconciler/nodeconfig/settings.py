"""The deployment-specific values of a FreeSWITCH node, and the checks that keep them safe.

Why this exists: the XML on a node's disk is what FreeSWITCH falls back to whenever an
xml_curl fetch fails, so it must be minimal and free of tenant data, and the few values
that differ per deployment (reconciler URL, xml_curl credentials, event-socket password,
SIP addresses and ports) must land in it without hand-editing XML on every node. Every
value is checked here before it reaches a template: a value FreeSWITCH would mangle or
expand is refused, not escaped.

Neighbours: ``reconciler.nodeconfig.files`` turns validated settings into the node's files;
``reconciler.cli.node_config`` is the ``pbx node-config`` command.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

SERVED_PATH = "/freeswitch/xml"
DEFAULT_URL = f"http://127.0.0.1:8080{SERVED_PATH}"
AUTO_IP = "$${local_ip_v4}"
DEFAULT_MOH_DIR = "$${sounds_dir}/music"
DEFAULT_VOICEMAIL_DIR = "/var/lib/pbx/voicemail"
"""Where boxes live (``<dir>/<tenant id>/<extension>/``); the daemon's ``--voicemail-dir``
has the same default (``reconciler.core.voicemail.DEFAULT_ROOT``)."""
WELL_KNOWN_ESL_PASSWORD = "ClueCon"  # noqa: S105 -- the default we refuse, not a credential

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SWITCHNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PATH_TAIL = re.compile(r"^[A-Za-z0-9_./-]*$")
_EXT_IP_KEYWORD = re.compile(r"^(auto-nat|(stun|host):[A-Za-z0-9.-]+(:[0-9]+)?)$")


class NodeConfigError(ValueError):
    """A value that would produce a broken or unsafe node configuration."""


@dataclass(frozen=True)
class NodeSettings:
    """Every deployment-specific value of a node; secrets are kept out of ``repr``."""

    reconciler_url: str
    xml_curl_user: str
    xml_curl_password: str = field(repr=False)
    esl_password: str = field(repr=False)
    sip_ip: str = AUTO_IP
    ext_ip: str | None = None
    tenant_sip_port: int = 5060
    carrier_sip_port: int = 5080
    carrier_cidrs: tuple[str, ...] = ()
    esl_listen_ip: str = "127.0.0.1"
    esl_port: int = 8021
    esl_allow: tuple[str, ...] = ()
    xml_curl_timeout: int = 3
    xml_curl_cacert: str | None = None
    switchname: str | None = None
    rtp_start_port: int = 16384
    rtp_end_port: int = 32768
    moh_dir: str = DEFAULT_MOH_DIR
    voicemail_dir: str = DEFAULT_VOICEMAIL_DIR

    @property
    def tls(self) -> bool:
        """Whether xml_curl talks HTTPS (and so must verify the peer)."""
        return urlsplit(self.reconciler_url).scheme == "https"


def _check_plain(name: str, value: str) -> None:
    """Reject what FreeSWITCH would mangle: control characters and variable expansion.

    ``$${x}`` is expanded by the XML preprocessor on every line and ``${x}`` by many
    parameters at run time, so a secret containing them would silently change.
    """
    if not value:
        raise NodeConfigError(f"{name} must not be empty")
    if _CONTROL.search(value):
        raise NodeConfigError(f"{name} must not contain control characters or newlines")
    if "${" in value:
        raise NodeConfigError(f"{name} must not contain '${{' (FreeSWITCH would expand it)")


def _check_ip(name: str, value: str) -> str:
    """An address, not a host name: sofia and the event socket bind to literal IPs."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise NodeConfigError(f"{name} must be an IP address, got {value!r}") from exc


def _check_port(name: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise NodeConfigError(f"{name} must be within 1..65535, got {value}")
    return value


def _check_cidrs(name: str, values: Sequence[str]) -> tuple[str, ...]:
    """Normalise CIDRs (a bare address becomes a /32 or /128)."""
    networks: list[str] = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError as exc:
            raise NodeConfigError(f"{name}: {value!r} is not an address or CIDR") from exc
    return tuple(networks)


def _check_url(url: str) -> str:
    _check_plain("--reconciler-url", url)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise NodeConfigError("--reconciler-url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise NodeConfigError(
            "--reconciler-url must not carry credentials: they go in --xml-curl-auth "
            "(gateway-credentials), never in a URL that FreeSWITCH logs"
        )
    if any(ch.isspace() for ch in url):
        raise NodeConfigError("--reconciler-url must not contain whitespace")
    return url


def split_auth(auth: str) -> tuple[str, str]:
    """``USER:PASS`` → (user, password); the user cannot hold ':' in HTTP basic auth."""
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise NodeConfigError("--xml-curl-auth must be USER:PASS with both parts non-empty")
    _check_plain("--xml-curl-auth user", user)
    _check_plain("--xml-curl-auth password", password)
    return user, password


def _check_esl_password(password: str) -> None:
    """Also usable inside PBX_FREESWITCH (``HOST:PORT:PASSWORD``, comma-separated)."""
    _check_plain("--esl-password", password)
    if any(ch.isspace() for ch in password) or any(ch in password for ch in ",:"):
        raise NodeConfigError(
            "--esl-password must not contain whitespace, ',' or ':' "
            "(it is also written as HOST:PORT:PASSWORD in PBX_FREESWITCH, comma-separated)"
        )
    if password == WELL_KNOWN_ESL_PASSWORD:
        raise NodeConfigError("--esl-password must not be FreeSWITCH's well-known default")


def _check_moh_dir(value: str) -> str:
    """An absolute path, or one under FreeSWITCH's own ``$${sounds_dir}``."""
    tail = value.removeprefix("$${sounds_dir}")
    if tail == value and not value.startswith("/"):
        raise NodeConfigError("--moh-dir must be absolute or start with $${sounds_dir}")
    if not _PATH_TAIL.match(tail):
        raise NodeConfigError("--moh-dir may only contain letters, digits and _ . / -")
    return value.rstrip("/")


def _check_voicemail_dir(value: str) -> str:
    """An absolute path of plain characters (it is a FreeSWITCH global and a directory
    parameter's prefix)."""
    if not value.startswith("/") or not _PATH_TAIL.match(value):
        raise NodeConfigError(
            "--voicemail-dir must be absolute and contain only letters, digits and _ . / -"
        )
    return value.rstrip("/") or "/"


def validate(settings: NodeSettings) -> NodeSettings:
    """Return ``settings`` with normalised values, or raise :class:`RenderError`.

    The checks run in a fixed order, so a command line with several mistakes always
    reports the same one first.
    """
    _check_url(settings.reconciler_url)
    _check_credentials(settings)
    checked = _with_sip_addresses(settings)
    checked = _with_ports(checked)
    checked = _with_event_socket(checked)
    _check_xml_curl(checked)
    if settings.switchname is not None and not _SWITCHNAME.match(settings.switchname):
        raise NodeConfigError("--switchname may only contain letters, digits and . _ -")
    return replace(
        checked,
        carrier_cidrs=_check_cidrs("--carrier-cidr", settings.carrier_cidrs),
        moh_dir=_check_moh_dir(settings.moh_dir),
        voicemail_dir=_check_voicemail_dir(settings.voicemail_dir),
    )


def _check_credentials(settings: NodeSettings) -> None:
    """The xml_curl basic-auth pair and the event-socket password."""
    _check_plain("--xml-curl-auth user", settings.xml_curl_user)
    if ":" in settings.xml_curl_user:
        raise NodeConfigError("--xml-curl-auth user must not contain ':'")
    _check_plain("--xml-curl-auth password", settings.xml_curl_password)
    _check_esl_password(settings.esl_password)


def _with_sip_addresses(settings: NodeSettings) -> NodeSettings:
    """The SIP bind address (or FreeSWITCH's guess) and the public one, an IP or one of
    sofia's NAT keywords."""
    sip_ip = (
        settings.sip_ip if settings.sip_ip == AUTO_IP else _check_ip("--sip-ip", settings.sip_ip)
    )
    ext_ip = settings.ext_ip
    if ext_ip is not None and not _EXT_IP_KEYWORD.match(ext_ip):
        ext_ip = _check_ip("--ext-ip", ext_ip)
    return replace(settings, sip_ip=sip_ip, ext_ip=ext_ip)


def _with_ports(settings: NodeSettings) -> NodeSettings:
    """SIP, event-socket and RTP ports: each valid, and no two uses of one port."""
    tenant_port = _check_port("--tenant-sip-port", settings.tenant_sip_port)
    carrier_port = _check_port("--carrier-sip-port", settings.carrier_sip_port)
    if tenant_port == carrier_port:
        raise NodeConfigError("--tenant-sip-port and --carrier-sip-port must differ")
    esl_port = _check_port("--esl-port", settings.esl_port)
    rtp_start = _check_port("--rtp-ports start", settings.rtp_start_port)
    rtp_end = _check_port("--rtp-ports end", settings.rtp_end_port)
    if rtp_start >= rtp_end:
        raise NodeConfigError("--rtp-ports must be START-END with START < END")
    if {tenant_port, carrier_port, esl_port} & set(range(rtp_start, rtp_end + 1)):
        raise NodeConfigError("--rtp-ports must not overlap the SIP or event-socket ports")
    return replace(
        settings,
        tenant_sip_port=tenant_port,
        carrier_sip_port=carrier_port,
        esl_port=esl_port,
        rtp_start_port=rtp_start,
        rtp_end_port=rtp_end,
    )


def _with_event_socket(settings: NodeSettings) -> NodeSettings:
    """The event socket controls the whole switch: off loopback, only for listed hosts."""
    esl_listen_ip = _check_ip("--esl-listen-ip", settings.esl_listen_ip)
    esl_allow = _check_cidrs("--esl-allow", settings.esl_allow)
    if not ipaddress.ip_address(esl_listen_ip).is_loopback and not esl_allow:
        raise NodeConfigError(
            "--esl-listen-ip is not a loopback address: also give --esl-allow CIDR for the "
            "hosts that may connect (the event socket controls the whole switch)"
        )
    return replace(settings, esl_listen_ip=esl_listen_ip, esl_allow=esl_allow)


def _check_xml_curl(settings: NodeSettings) -> None:
    """A lookup blocks a FreeSWITCH thread for up to the timeout, so 1 to 30 seconds; a CA
    file is only read for https."""
    if not 1 <= settings.xml_curl_timeout <= 30:
        raise NodeConfigError("--xml-curl-timeout must be within 1..30 seconds")
    cacert = settings.xml_curl_cacert
    if cacert is not None:
        if not settings.tls:
            raise NodeConfigError("--xml-curl-cacert only makes sense with an https:// URL")
        _check_plain("--xml-curl-cacert", cacert)
        if not cacert.startswith("/"):
            raise NodeConfigError("--xml-curl-cacert must be an absolute path on the node")


def template_context(settings: NodeSettings) -> dict[str, object]:
    """The names the ``*.j2`` files may use; Jinja's StrictUndefined rejects any other."""
    return {
        "reconciler_url": settings.reconciler_url,
        "xml_curl_credentials": f"{settings.xml_curl_user}:{settings.xml_curl_password}",
        "xml_curl_timeout": settings.xml_curl_timeout,
        "xml_curl_cacert": settings.xml_curl_cacert,
        "tls": settings.tls,
        "esl_listen_ip": settings.esl_listen_ip,
        "esl_port": settings.esl_port,
        "esl_password": settings.esl_password,
        "esl_allow": settings.esl_allow,
        "esl_acl": "esl_clients" if settings.esl_allow else "loopback.auto",
        "sip_ip": settings.sip_ip,
        "ext_ip": settings.ext_ip,
        "tenant_sip_port": settings.tenant_sip_port,
        "carrier_sip_port": settings.carrier_sip_port,
        "carrier_cidrs": settings.carrier_cidrs,
        "switchname": settings.switchname,
        "rtp_start_port": settings.rtp_start_port,
        "rtp_end_port": settings.rtp_end_port,
        "moh_dir": settings.moh_dir,
        "voicemail_dir": settings.voicemail_dir,
    }


def risky_choices(settings: NodeSettings) -> list[str]:
    """Legal but risky choices the operator should hear about (never mentions secrets)."""
    notes: list[str] = []
    parts = urlsplit(settings.reconciler_url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme == "http" and not loopback:
        notes.append(
            "the reconciler URL is plain http to another host: the xml_curl credentials "
            "and every SIP auth lookup cross the network unencrypted"
        )
    if parts.path.rstrip("/") != SERVED_PATH:
        notes.append(
            f"the reconciler URL path is {parts.path or '/'!r}; `pbx run` serves {SERVED_PATH}"
            " (fine behind a rewriting proxy, otherwise every lookup falls back and fails)"
        )
    if settings.sip_ip == AUTO_IP:
        notes.append("no --sip-ip: the profiles bind to the address FreeSWITCH guesses at start-up")
    if not settings.carrier_cidrs:
        notes.append("no --carrier-cidr: the carriers profile refuses every inbound call")
    return notes

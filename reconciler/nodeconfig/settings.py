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

from reconciler.core.audio_roots import VOICEMAIL_ROOT

SERVED_PATH = "/freeswitch/xml"
CDR_PATH = "/freeswitch/cdr"
# Relative to FreeSWITCH's log directory (mod_xml_cdr's own rule for a relative err-log-dir).
DEFAULT_CDR_ERR_DIR = "xml_cdr"
DEFAULT_URL = f"http://127.0.0.1:8080{SERVED_PATH}"
AUTO_IP = "$${local_ip_v4}"
DEFAULT_MOH_DIR = "$${sounds_dir}/music"
# Where sofia reads wss.pem (or wss.crt + wss.key) unless told otherwise: FreeSWITCH's own
# certificate folder (-certs; /etc/freeswitch/tls in Debian's packages).
DEFAULT_CERTS_DIR = "$${certs_dir}"
# Where a certificate given to ``pbx node-config`` lands: beside the rest of the tree, so
# copying the tree to the node's configuration folder installs it too.
SHIPPED_CERTS_DIR = "$${conf_dir}/tls"
DEFAULT_WSS_PORT = 7443
# The FreeSWITCH variables a certificate folder may start with (each a built-in directory).
_DIR_VARIABLES = ("$${certs_dir}", "$${conf_dir}", "$${base_dir}")
_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_PEM_KEY = re.compile(r"-----BEGIN (RSA |EC )?PRIVATE KEY-----")
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
    # WebRTC: SIP over secure WebSocket for browser phones (0 = no such listener), plain
    # WebSocket (off unless asked: only behind a TLS-terminating proxy), the certificate
    # folder sofia reads wss.pem from, the certificate itself when the renderer installs
    # it (chain then key, PEM), and extra networks whose ICE candidates are preferred.
    wss_port: int = DEFAULT_WSS_PORT
    ws_port: int = 0
    certs_dir: str = DEFAULT_CERTS_DIR
    wss_pem: str | None = field(default=None, repr=False)
    candidate_cidrs: tuple[str, ...] = ()
    # Where mod_xml_cdr posts call records; None: the reconciler URL's host, CDR_PATH.
    cdr_url: str | None = None
    # Where mod_xml_cdr writes a record it could not post (collected by `pbx run --cdr-spool-dir`).
    cdr_err_dir: str = DEFAULT_CDR_ERR_DIR
    voicemail_dir: str = VOICEMAIL_ROOT

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


def _check_url(url: str, option: str = "--reconciler-url") -> str:
    _check_plain(option, url)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise NodeConfigError(f"{option} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise NodeConfigError(
            f"{option} must not carry credentials: they go in --xml-curl-auth "
            "(gateway-credentials), never in a URL that FreeSWITCH logs"
        )
    if any(ch.isspace() for ch in url):
        raise NodeConfigError(f"{option} must not contain whitespace")
    if "?" in url or "#" in url:
        raise NodeConfigError(f"{option} must not carry a query or fragment")
    return url


def default_cdr_url(reconciler_url: str) -> str:
    """The daemon's CDR route on the xml_curl listener's host and port (in-process serving;
    with xml_curl workers the control plane listens elsewhere: pass --cdr-url)."""
    parts = urlsplit(reconciler_url)
    return f"{parts.scheme}://{parts.netloc}{CDR_PATH}"


def _check_cdr(settings: NodeSettings) -> NodeSettings:
    """The CDR URL (same rules as the reconciler's) and the error directory: an absolute
    path or one relative to FreeSWITCH's log directory, plain characters only."""
    url = settings.cdr_url or default_cdr_url(settings.reconciler_url)
    _check_url(url, "--cdr-url")
    err_dir = settings.cdr_err_dir
    if not err_dir or not _PATH_TAIL.match(err_dir) or ".." in err_dir.split("/"):
        raise NodeConfigError("--cdr-err-dir may only contain letters, digits and _ . / -")
    return replace(settings, cdr_url=url, cdr_err_dir=err_dir.rstrip("/") or "/")


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
    checked = _with_webrtc(checked)
    _check_xml_curl(checked)
    if settings.switchname is not None and not _SWITCHNAME.match(settings.switchname):
        raise NodeConfigError("--switchname may only contain letters, digits and . _ -")
    checked = _check_cdr(checked)
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
    web_ports = _web_socket_ports(settings)
    listeners = [tenant_port, carrier_port, esl_port, *web_ports]
    if len(set(listeners)) != len(listeners):
        raise NodeConfigError(
            "--tenant-sip-port, --carrier-sip-port, --esl-port, --wss-port and --ws-port "
            "must all differ"
        )
    rtp_start = _check_port("--rtp-ports start", settings.rtp_start_port)
    rtp_end = _check_port("--rtp-ports end", settings.rtp_end_port)
    if rtp_start >= rtp_end:
        raise NodeConfigError("--rtp-ports must be START-END with START < END")
    if set(listeners) & set(range(rtp_start, rtp_end + 1)):
        raise NodeConfigError(
            "--rtp-ports must not overlap the SIP, WebSocket or event-socket ports"
        )
    return replace(
        settings,
        tenant_sip_port=tenant_port,
        carrier_sip_port=carrier_port,
        esl_port=esl_port,
        rtp_start_port=rtp_start,
        rtp_end_port=rtp_end,
    )


def _web_socket_ports(settings: NodeSettings) -> list[int]:
    """The SIP-over-WebSocket listeners in use; 0 turns one off."""
    ports = []
    for name, value in (("--wss-port", settings.wss_port), ("--ws-port", settings.ws_port)):
        if value != 0:
            ports.append(_check_port(name, value))
    return ports


def _with_webrtc(settings: NodeSettings) -> NodeSettings:
    """The browser phones' certificate and ICE preferences.

    A certificate given to the renderer is installed with the tree, so its folder is
    fixed; otherwise the operator names the folder that holds ``wss.pem``. The PEM must
    hold a certificate and a private key: sofia reads both from the one file.
    """
    candidate_cidrs = _check_cidrs("--candidate-cidr", settings.candidate_cidrs)
    certs_dir = settings.certs_dir
    if settings.wss_pem is not None:
        if certs_dir not in (DEFAULT_CERTS_DIR, SHIPPED_CERTS_DIR):
            raise NodeConfigError("give either --wss-cert or --certs-dir, not both")
        pem = settings.wss_pem
        if not pem.isascii() or _CONTROL.search(pem.replace("\r\n", "").replace("\n", "")):
            raise NodeConfigError("--wss-cert must be a PEM text file")
        if _PEM_CERT not in pem or not _PEM_KEY.search(pem):
            raise NodeConfigError(
                "--wss-cert (with --wss-key) must hold a PEM certificate and its private key"
            )
        certs_dir = SHIPPED_CERTS_DIR
    else:
        certs_dir = _check_folder("--certs-dir", certs_dir)
    return replace(settings, certs_dir=certs_dir, candidate_cidrs=candidate_cidrs)


def _check_folder(name: str, value: str) -> str:
    """An absolute path, or one under a FreeSWITCH directory variable; plain characters."""
    prefix = next((v for v in _DIR_VARIABLES if value.startswith(v)), "")
    tail = value.removeprefix(prefix)
    if not prefix and not value.startswith("/"):
        raise NodeConfigError(f"{name} must be absolute or start with {_DIR_VARIABLES[0]}")
    if not _PATH_TAIL.match(tail) or "/../" in f"{tail}/":
        raise NodeConfigError(f"{name} may only contain letters, digits and _ . / -")
    return value.rstrip("/") or "/"


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
        "wss_port": settings.wss_port,
        "ws_port": settings.ws_port,
        "certs_dir": settings.certs_dir,
        "candidate_cidrs": settings.candidate_cidrs,
        "cdr_url": settings.cdr_url or default_cdr_url(settings.reconciler_url),
        "cdr_err_dir": settings.cdr_err_dir,
        "voicemail_dir": settings.voicemail_dir,
    }


def risky_choices(settings: NodeSettings) -> list[str]:
    """Legal but risky choices the operator should hear about (never mentions secrets)."""
    notes: list[str] = []
    parts = urlsplit(settings.reconciler_url)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
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
    notes.extend(_webrtc_notes(settings))
    return notes


def _webrtc_notes(settings: NodeSettings) -> list[str]:
    """A WSS listener without the operator's certificate, a plain one off loopback."""
    notes: list[str] = []
    if settings.wss_port and settings.wss_pem is None:
        notes.append(
            f"no --wss-cert: FreeSWITCH reads wss.pem from {settings.certs_dir} (certificate "
            "chain, then key) and generates a self-signed one if it is missing, which "
            "browsers refuse; put the site's certificate there"
        )
    if settings.ws_port and (settings.sip_ip == AUTO_IP or not _is_loopback(settings.sip_ip)):
        notes.append(
            "--ws-port listens without TLS on a non-loopback address: only for a proxy that "
            "terminates TLS; browsers on an https page refuse ws://"
        )
    return notes


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"

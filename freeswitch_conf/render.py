"""Render the FreeSWITCH node configuration that points a switch at pbx-reconciler.

Why this exists: the XML on a node's disk is what FreeSWITCH falls back to whenever an
xml_curl fetch fails, so it must be minimal and free of tenant data, and the few values
that differ per deployment (reconciler URL, xml_curl credentials, event-socket password,
SIP addresses and ports) must land in it without hand-editing XML on every node.

Placeholder mechanism: files named ``*.j2`` in this package are Jinja2 templates
(``{{ name }}``), rendered with :class:`NodeSettings` and written without the suffix; every
other file is copied verbatim. FreeSWITCH's own ``$${var}`` preprocessor variables remain
only for fixed globals in ``vars.xml`` and for FreeSWITCH's built-in directories, so no
secret ever becomes a FreeSWITCH global variable.

Neighbours: reads this package's data through importlib.resources (works from a wheel or
zip); writes a plain directory tree. Imports nothing from ``reconciler``.

Usage::

    python -m reconciler.freeswitch_conf.render --reconciler-url http://127.0.0.1:8080/freeswitch/xml \\
        --xml-curl-auth USER:PASS --esl-password PW --sip-ip 192.0.2.10 --out ./fs-node
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import click
import jinja2

# Installed as reconciler.freeswitch_conf (the repository folder freeswitch_conf/, mapped in
# pyproject.toml); read relative to this module so the tree is found under either name.
PACKAGE = __name__.rpartition(".")[0] or "reconciler.freeswitch_conf"
TEMPLATE_SUFFIX = ".j2"
# What belongs to the FreeSWITCH tree; everything else in the package (this module, the
# README, the systemd unit) is not part of a node's /etc/freeswitch.
TREE_ROOTS: tuple[str, ...] = (
    "freeswitch.xml",
    "vars.xml",
    "autoload_configs",
    "sip_profiles",
    "directory",
    "dialplan",
)
# The rendered tree holds the xml_curl credentials and the event-socket password.
FILE_MODE = 0o640
DIR_MODE = 0o750

SERVED_PATH = "/freeswitch/xml"
DEFAULT_URL = f"http://127.0.0.1:8080{SERVED_PATH}"
AUTO_IP = "$${local_ip_v4}"
DEFAULT_MOH_DIR = "$${sounds_dir}/music"
WELL_KNOWN_ESL_PASSWORD = "ClueCon"  # noqa: S105 -- the default we refuse, not a credential

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SWITCHNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PATH_TAIL = re.compile(r"^[A-Za-z0-9_./-]*$")
_EXT_IP_KEYWORD = re.compile(r"^(auto-nat|(stun|host):[A-Za-z0-9.-]+(:[0-9]+)?)$")


class RenderError(ValueError):
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
        raise RenderError(f"{name} must not be empty")
    if _CONTROL.search(value):
        raise RenderError(f"{name} must not contain control characters or newlines")
    if "${" in value:
        raise RenderError(f"{name} must not contain '${{' (FreeSWITCH would expand it)")


def _check_ip(name: str, value: str) -> str:
    """An address, not a host name: sofia and the event socket bind to literal IPs."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise RenderError(f"{name} must be an IP address, got {value!r}") from exc


def _check_port(name: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise RenderError(f"{name} must be within 1..65535, got {value}")
    return value


def _check_cidrs(name: str, values: Sequence[str]) -> tuple[str, ...]:
    """Normalise CIDRs (a bare address becomes a /32 or /128)."""
    networks: list[str] = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError as exc:
            raise RenderError(f"{name}: {value!r} is not an address or CIDR") from exc
    return tuple(networks)


def _check_url(url: str) -> str:
    _check_plain("--reconciler-url", url)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise RenderError("--reconciler-url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise RenderError(
            "--reconciler-url must not carry credentials: they go in --xml-curl-auth "
            "(gateway-credentials), never in a URL that FreeSWITCH logs"
        )
    if any(ch.isspace() for ch in url):
        raise RenderError("--reconciler-url must not contain whitespace")
    return url


def split_auth(auth: str) -> tuple[str, str]:
    """``USER:PASS`` → (user, password); the user cannot hold ':' in HTTP basic auth."""
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise RenderError("--xml-curl-auth must be USER:PASS with both parts non-empty")
    _check_plain("--xml-curl-auth user", user)
    _check_plain("--xml-curl-auth password", password)
    return user, password


def _check_esl_password(password: str) -> None:
    """Also usable inside PBX_FREESWITCH (``HOST:PORT:PASSWORD``, comma-separated)."""
    _check_plain("--esl-password", password)
    if any(ch.isspace() for ch in password) or any(ch in password for ch in ",:"):
        raise RenderError(
            "--esl-password must not contain whitespace, ',' or ':' "
            "(it is also written as HOST:PORT:PASSWORD in PBX_FREESWITCH, comma-separated)"
        )
    if password == WELL_KNOWN_ESL_PASSWORD:
        raise RenderError("--esl-password must not be FreeSWITCH's well-known default")


def _check_moh_dir(value: str) -> str:
    """An absolute path, or one under FreeSWITCH's own ``$${sounds_dir}``."""
    tail = value.removeprefix("$${sounds_dir}")
    if tail == value and not value.startswith("/"):
        raise RenderError("--moh-dir must be absolute or start with $${sounds_dir}")
    if not _PATH_TAIL.match(tail):
        raise RenderError("--moh-dir may only contain letters, digits and _ . / -")
    return value.rstrip("/")


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
        raise RenderError("--switchname may only contain letters, digits and . _ -")
    return replace(
        checked,
        carrier_cidrs=_check_cidrs("--carrier-cidr", settings.carrier_cidrs),
        moh_dir=_check_moh_dir(settings.moh_dir),
    )


def _check_credentials(settings: NodeSettings) -> None:
    """The xml_curl basic-auth pair and the event-socket password."""
    _check_plain("--xml-curl-auth user", settings.xml_curl_user)
    if ":" in settings.xml_curl_user:
        raise RenderError("--xml-curl-auth user must not contain ':'")
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
        raise RenderError("--tenant-sip-port and --carrier-sip-port must differ")
    esl_port = _check_port("--esl-port", settings.esl_port)
    rtp_start = _check_port("--rtp-ports start", settings.rtp_start_port)
    rtp_end = _check_port("--rtp-ports end", settings.rtp_end_port)
    if rtp_start >= rtp_end:
        raise RenderError("--rtp-ports must be START-END with START < END")
    if {tenant_port, carrier_port, esl_port} & set(range(rtp_start, rtp_end + 1)):
        raise RenderError("--rtp-ports must not overlap the SIP or event-socket ports")
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
        raise RenderError(
            "--esl-listen-ip is not a loopback address: also give --esl-allow CIDR for the "
            "hosts that may connect (the event socket controls the whole switch)"
        )
    return replace(settings, esl_listen_ip=esl_listen_ip, esl_allow=esl_allow)


def _check_xml_curl(settings: NodeSettings) -> None:
    """A lookup blocks a FreeSWITCH thread for up to the timeout, so 1 to 30 seconds; a CA
    file is only read for https."""
    if not 1 <= settings.xml_curl_timeout <= 30:
        raise RenderError("--xml-curl-timeout must be within 1..30 seconds")
    cacert = settings.xml_curl_cacert
    if cacert is not None:
        if not settings.tls:
            raise RenderError("--xml-curl-cacert only makes sense with an https:// URL")
        _check_plain("--xml-curl-cacert", cacert)
        if not cacert.startswith("/"):
            raise RenderError("--xml-curl-cacert must be an absolute path on the node")


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
    }


def _walk(node: Traversable, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
    if node.is_dir():
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name.startswith(".") or child.name == "__pycache__":
                continue
            yield from _walk(child, rel / child.name)
    else:
        yield rel, node


def iter_sources() -> Iterator[tuple[PurePosixPath, Traversable]]:
    """The node tree shipped in this package: (relative path, resource), in a stable order."""
    package = resources.files(PACKAGE)
    for root in TREE_ROOTS:
        candidates = [package / root, package / (root + TEMPLATE_SUFFIX)]
        found = [c for c in candidates if c.is_file() or c.is_dir()]
        if not found:
            raise RenderError(f"package data missing: {root} (broken installation?)")
        for node in found:
            yield from _walk(node, PurePosixPath(node.name))


def render_tree(settings: NodeSettings) -> dict[PurePosixPath, str]:
    """Decide the content of every output file; pure (no writes).

    Templates are rendered with XML autoescaping, so a password with ``&`` or ``"`` stays a
    well-formed attribute, and with StrictUndefined, so a typo fails here, not on the node.
    """
    settings = validate(settings)
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    context = template_context(settings)
    files: dict[PurePosixPath, str] = {}
    for rel, source in iter_sources():
        text = source.read_text(encoding="utf-8")
        if rel.suffix == TEMPLATE_SUFFIX:
            rel = rel.with_suffix("")
            text = env.from_string(text).render(context)
        files[rel] = text
    return files


@dataclass(frozen=True)
class WriteReport:
    """What :func:`write_tree` did, for the operator."""

    written: tuple[Path, ...]
    # Files already in the target that this tree does not contain: FreeSWITCH still loads
    # them (e.g. leftover vanilla users in directory/), so the operator must look.
    foreign: tuple[Path, ...]


class OutputNotEmptyError(RenderError):
    """The output directory already holds files and --force was not given."""


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a node never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(
    files: Mapping[PurePosixPath, str], out: Path, *, force: bool = False
) -> WriteReport:
    """Write ``files`` under ``out``; refuse a non-empty ``out`` unless ``force``."""
    if out.exists() and not out.is_dir():
        raise RenderError(f"{out} exists and is not a directory")
    existing = {p for p in out.rglob("*") if p.is_file()} if out.is_dir() else set()
    if existing and not force:
        raise OutputNotEmptyError(
            f"{out} is not empty; render into a new directory, or pass --force to overwrite"
        )
    out.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    written: list[Path] = []
    for rel, text in sorted(files.items()):
        target = out.joinpath(*rel.parts)
        _write_atomic(target, text)
        written.append(target)
    foreign = tuple(sorted(existing - set(written)))
    return WriteReport(written=tuple(written), foreign=foreign)


def render(settings: NodeSettings, out: Path, *, force: bool = False) -> WriteReport:
    """Validate, render and write the node tree into ``out``."""
    return write_tree(render_tree(settings), out, force=force)


def _parse_rtp_ports(value: str) -> tuple[int, int]:
    start, sep, end = value.partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        raise RenderError("--rtp-ports must be START-END, e.g. 16384-32768")
    return int(start), int(end)


def _warnings(settings: NodeSettings) -> list[str]:
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--reconciler-url",
    envvar="PBX_RECONCILER_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="Where FreeSWITCH POSTs its xml_curl lookups (the daemon's /freeswitch/xml).",
)
@click.option(
    "--xml-curl-auth",
    envvar="PBX_XML_CURL_AUTH",
    required=True,
    metavar="USER:PASS",
    help="Basic-auth credentials, the same as `pbx run --xml-curl-auth` [env PBX_XML_CURL_AUTH].",
)
@click.option(
    "--esl-password",
    envvar="PBX_ESL_PASSWORD",
    required=True,
    help="Event-socket password, the one in PBX_FREESWITCH [env PBX_ESL_PASSWORD].",
)
@click.option(
    "--sip-ip",
    default="auto",
    show_default=True,
    help="Address both SIP profiles and RTP bind to; 'auto' = FreeSWITCH's guess.",
)
@click.option("--ext-ip", default=None, help="Public address for SIP/SDP when behind NAT.")
@click.option("--tenant-sip-port", type=int, default=5060, show_default=True)
@click.option("--carrier-sip-port", type=int, default=5080, show_default=True)
@click.option(
    "--carrier-cidr",
    multiple=True,
    help="Source network allowed to send DIDs to the carriers profile (repeatable).",
)
@click.option("--esl-listen-ip", default="127.0.0.1", show_default=True)
@click.option("--esl-port", type=int, default=8021, show_default=True)
@click.option(
    "--esl-allow",
    multiple=True,
    help="Extra network allowed on the event socket, for a remote reconciler (repeatable).",
)
@click.option("--xml-curl-timeout", type=int, default=3, show_default=True, help="Seconds.")
@click.option("--xml-curl-cacert", default=None, help="CA file on the node, for https URLs.")
@click.option("--switchname", default=None, help="Switch name sent as 'hostname' to xml_curl.")
@click.option("--rtp-ports", default="16384-32768", show_default=True, metavar="START-END")
@click.option(
    "--moh-dir",
    default=DEFAULT_MOH_DIR,
    show_default=True,
    help="Folder holding the 8000/ 16000/ 32000/ 48000/ music-on-hold folders.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the node tree into (then copy it to /etc/freeswitch).",
)
@click.option("--force", is_flag=True, help="Overwrite files in a non-empty --out.")
def main(
    reconciler_url: str,
    xml_curl_auth: str,
    esl_password: str,
    sip_ip: str,
    ext_ip: str | None,
    tenant_sip_port: int,
    carrier_sip_port: int,
    carrier_cidr: tuple[str, ...],
    esl_listen_ip: str,
    esl_port: int,
    esl_allow: tuple[str, ...],
    xml_curl_timeout: int,
    xml_curl_cacert: str | None,
    switchname: str | None,
    rtp_ports: str,
    moh_dir: str,
    out: Path,
    force: bool,
) -> None:
    """Render the FreeSWITCH node configuration for pbx-reconciler into --out."""
    with _cli_errors():
        user, password = split_auth(xml_curl_auth)
        rtp_start, rtp_end = _parse_rtp_ports(rtp_ports)
        settings = validate(
            NodeSettings(
                reconciler_url=reconciler_url,
                xml_curl_user=user,
                xml_curl_password=password,
                esl_password=esl_password,
                sip_ip=AUTO_IP if sip_ip == "auto" else sip_ip,
                ext_ip=ext_ip,
                tenant_sip_port=tenant_sip_port,
                carrier_sip_port=carrier_sip_port,
                carrier_cidrs=carrier_cidr,
                esl_listen_ip=esl_listen_ip,
                esl_port=esl_port,
                esl_allow=esl_allow,
                xml_curl_timeout=xml_curl_timeout,
                xml_curl_cacert=xml_curl_cacert,
                switchname=switchname,
                rtp_start_port=rtp_start,
                rtp_end_port=rtp_end,
                moh_dir=moh_dir,
            )
        )
        report = render(settings, out, force=force)
    _echo_report(settings, report, out)


@contextmanager
def _cli_errors() -> Iterator[None]:
    """A bad value is a usage error (exit 2, with the usage line); a non-empty --out is a
    plain error (exit 1): the command line was right, the directory is not."""
    try:
        yield
    except OutputNotEmptyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RenderError as exc:
        raise click.UsageError(str(exc)) from exc


def _echo_report(settings: NodeSettings, report: WriteReport, out: Path) -> None:
    """Warnings on stderr, then what was written and where the node will connect."""
    for note in _warnings(settings):
        click.echo(f"warning: {note}", err=True)
    for path in report.foreign:
        click.echo(
            f"warning: {path} is not part of the rendered tree but FreeSWITCH may still load "
            "it; remove it unless you put it there on purpose",
            err=True,
        )
    click.echo(
        f"wrote {len(report.written)} files to {out} (mode {FILE_MODE:o}: they hold secrets)"
    )
    click.echo(f"  xml_curl -> {settings.reconciler_url} (timeout {settings.xml_curl_timeout}s)")
    click.echo(f"  event socket -> {settings.esl_listen_ip}:{settings.esl_port}")
    click.echo(
        f"  SIP tenants :{settings.tenant_sip_port}, carriers :{settings.carrier_sip_port}"
        f" on {'auto' if settings.sip_ip == AUTO_IP else settings.sip_ip}"
    )


if __name__ == "__main__":
    main()

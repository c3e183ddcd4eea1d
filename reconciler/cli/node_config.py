"""``pbx node-config``: write the FreeSWITCH node configuration that points a switch at
this reconciler (the values are checked in ``reconciler.nodeconfig``; this module parses the
flags, prints the warnings and what was written, never a secret).

Usage::

    pbx node-config --reconciler-url http://127.0.0.1:8080/freeswitch/xml \\
        --xml-curl-auth USER:PASS --esl-password PW --sip-ip 192.0.2.10 --out ./fs-node
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from reconciler.core.audio_roots import VOICEMAIL_ROOT
from reconciler.nodeconfig.files import (
    FILE_MODE,
    OutputNotEmptyError,
    WriteReport,
    write_node_config,
)
from reconciler.nodeconfig.settings import (
    AUTO_IP,
    DEFAULT_CDR_ERR_DIR,
    DEFAULT_CERTS_DIR,
    DEFAULT_MOH_DIR,
    DEFAULT_URL,
    DEFAULT_WSS_PORT,
    NodeConfigError,
    NodeSettings,
    risky_choices,
    split_auth,
    validate,
)


def _parse_rtp_ports(value: str) -> tuple[int, int]:
    start, sep, end = value.partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        raise NodeConfigError("--rtp-ports must be START-END, e.g. 16384-32768")
    return int(start), int(end)


@click.command("node-config", context_settings={"help_option_names": ["-h", "--help"]})
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
    "--wss-port",
    type=int,
    default=DEFAULT_WSS_PORT,
    show_default=True,
    help="SIP over secure WebSocket for browser phones on the tenants profile (0 = none).",
)
@click.option(
    "--ws-port",
    type=int,
    default=0,
    show_default=True,
    help="Plain SIP over WebSocket, for a TLS-terminating proxy on the node (0 = none).",
)
@click.option(
    "--wss-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM certificate chain (and key, unless --wss-key) installed as tls/wss.pem (0600).",
)
@click.option(
    "--wss-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM private key of --wss-cert, when it is a file of its own.",
)
@click.option(
    "--certs-dir",
    default=DEFAULT_CERTS_DIR,
    show_default=True,
    help="Folder on the node holding wss.pem, when --wss-cert is not given.",
)
@click.option(
    "--candidate-cidr",
    multiple=True,
    help="Network whose WebRTC ICE candidates are preferred for media (repeatable).",
)
@click.option(
    "--cdr-url",
    envvar="PBX_CDR_URL",
    default=None,
    help="Where mod_xml_cdr posts call records [default: the reconciler URL's host, "
    "/freeswitch/cdr; with `pbx run --xml-curl-workers` the --status-listen address].",
)
@click.option(
    "--cdr-err-dir",
    default=DEFAULT_CDR_ERR_DIR,
    show_default=True,
    help="Where the node keeps a call record it could not post (relative: under "
    "FreeSWITCH's log dir); `pbx run --cdr-spool-dir` collects it.",
)
@click.option(
    "--voicemail-dir",
    default=VOICEMAIL_ROOT,
    show_default=True,
    help="Root of the voicemail boxes: <dir>/<tenant id>/<extension>/ (writable by FreeSWITCH).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the node tree into (then copy it to /etc/freeswitch).",
)
@click.option("--force", is_flag=True, help="Overwrite files in a non-empty --out.")
def node_config(
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
    wss_port: int,
    ws_port: int,
    wss_cert: Path | None,
    wss_key: Path | None,
    certs_dir: str,
    candidate_cidr: tuple[str, ...],
    cdr_url: str | None,
    cdr_err_dir: str,
    voicemail_dir: str,
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
                wss_port=wss_port,
                ws_port=ws_port,
                certs_dir=certs_dir,
                wss_pem=read_wss_pem(wss_cert, wss_key),
                candidate_cidrs=candidate_cidr,
                cdr_url=cdr_url,
                cdr_err_dir=cdr_err_dir,
                voicemail_dir=voicemail_dir,
            )
        )
        report = write_node_config(settings, out, force=force)
    _echo_report(settings, report, out)


def read_wss_pem(cert: Path | None, key: Path | None) -> str | None:
    """The certificate chain and key as the one PEM sofia reads, after checking with
    OpenSSL that the key belongs to the certificate (a mismatch would only show on the
    node, as a WSS listener that never starts)."""
    if cert is None:
        if key is not None:
            raise NodeConfigError("--wss-key needs --wss-cert")
        return None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        parts = [cert.read_text(encoding="ascii")]
        if key is not None:
            parts.append(key.read_text(encoding="ascii"))
    except (ssl.SSLError, OSError, UnicodeDecodeError) as exc:
        raise NodeConfigError(
            "--wss-cert/--wss-key: not a PEM certificate with its unencrypted private key "
            f"({type(exc).__name__})"
        ) from exc
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts)


@contextmanager
def _cli_errors() -> Iterator[None]:
    """A bad value is a usage error (exit 2, with the usage line); a non-empty --out is a
    plain error (exit 1): the command line was right, the directory is not."""
    try:
        yield
    except OutputNotEmptyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except NodeConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def _echo_report(settings: NodeSettings, report: WriteReport, out: Path) -> None:
    """Warnings on stderr, then what was written and where the node will connect."""
    for note in risky_choices(settings):
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
    if settings.wss_port:
        click.echo(
            f"  browser phones: wss on :{settings.wss_port}, wss.pem from {settings.certs_dir}"
        )

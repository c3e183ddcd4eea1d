"""``pbx run`` (the daemon), ``pbx serve`` (its data plane alone, beside a switch) and
``pbx status`` (a readable view of either, running)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import global_options, resolved
from reconciler.cli.settings import (
    audio_roots,
    parse_credentials,
    parse_host_port,
    parse_seconds,
)
from reconciler.cli.status_view import render_status
from reconciler.cli.users import portal_config, portal_options
from reconciler.core import logs
from reconciler.core.errors import PbxError, SettingsError
from reconciler.daemon.config import (
    DEFAULT_STATUS_LISTEN,
    MAX_XML_CURL_WORKERS,
    DaemonConfig,
    default_state_dir,
)
from reconciler.switch import parse_node_specs

_DATA_PLANE_OPTIONS = (
    click.option(
        "--listen",
        metavar="HOST:PORT",
        help="xml_curl, /healthz and /readyz address (with --xml-curl-workers 0, /status and "
        "/metrics too) [PBX_LISTEN, 127.0.0.1:8080].",
    ),
    click.option(
        "--xml-curl-workers",
        type=int,
        metavar="N",
        help="Answer xml_curl from N worker processes sharing --listen; 0 answers it in the "
        "daemon itself [PBX_XML_CURL_WORKERS; default: one per core].",
    ),
    click.option(
        "--xml-curl-hang-timeout",
        type=float,
        metavar="SECONDS",
        help="A worker whose event loop has not turned for this long is killed and replaced "
        "[PBX_XML_CURL_HANG_TIMEOUT, 10].",
    ),
    click.option(
        "--status-listen",
        metavar="HOST:PORT",
        help="With workers: where /status and /metrics are served [PBX_STATUS_LISTEN; "
        "default 127.0.0.1:8181].",
    ),
    click.option(
        "--xml-curl-auth",
        metavar="USER:PASS",
        help="Basic auth FreeSWITCH must send [PBX_XML_CURL_AUTH].",
    ),
    click.option(
        "--status-auth",
        metavar="USER:PASS",
        help="Basic auth for /status and /metrics [PBX_STATUS_AUTH; default: loopback clients only].",
    ),
)


def data_plane_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the xml_curl listeners, shared by ``pbx run`` and ``pbx serve``."""
    for option in reversed(_DATA_PLANE_OPTIONS):
        command = option(command)
    return command


@click.command()
@data_plane_options
@click.option(
    "--cdr-spool-dir",
    multiple=True,
    metavar="DIR",
    help="A FreeSWITCH node's mod_xml_cdr err-log-dir on this host: the call records it "
    "could not post are filed from there and deleted (repeatable) [PBX_CDR_SPOOL_DIR].",
)
@click.option(
    "--interval",
    type=float,
    metavar="SECONDS",
    help="Full resync period, jittered [PBX_INTERVAL, 60].",
)
@click.option("--git-url", help="Fetch specs from this git repository [PBX_GIT_URL].")
@click.option("--git-branch", help="Branch of --git-url [PBX_GIT_BRANCH, main].")
@click.option(
    "--git-poll", type=float, metavar="SECONDS", help="Git poll period [PBX_GIT_POLL, 30]."
)
@click.option(
    "--stable-window",
    type=float,
    metavar="SECONDS",
    help="A spec removing most of a tenant is applied once its file is unchanged this long "
    "[PBX_STABLE_WINDOW, 2].",
)
@click.option(
    "--credentials-grace",
    type=float,
    metavar="SECONDS",
    help="A deleted extension's password is given back when it returns within this "
    "[PBX_CREDENTIALS_GRACE, 604800 (7 days)].",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="Persisted snapshot and embedded DB [PBX_STATE_DIR].",
)
@portal_options
@global_options
@click.pass_context
def run(ctx: click.Context, /, **_: Any) -> None:
    """The daemon: watch specs, reconcile PostgreSQL and FreeSWITCH, serve xml_curl."""
    cfg = resolved(ctx)
    logs.configure(cfg["log_format"])
    try:
        host, port = parse_host_port(cfg["listen"])
        roots = audio_roots(cfg)
        portal = portal_config(cfg)
        config = DaemonConfig(
            tenants_dir=Path(cfg["tenants"]),
            database_url=cfg["database_url"],
            listen_host=host,
            listen_port=port,
            xml_curl_auth=parse_credentials(cfg["xml_curl_auth"]),
            status_auth=parse_credentials(cfg["status_auth"], "status_auth"),
            nodes=parse_node_specs(cfg["freeswitch"]),
            interval=float(cfg["interval"]),
            templates_dir=Path(cfg["templates"]) if cfg["templates"] else None,
            state_dir=Path(cfg["state_dir"]) if cfg["state_dir"] else default_state_dir(),
            git_url=cfg["git_url"],
            git_branch=cfg["git_branch"],
            git_poll=float(cfg["git_poll"]),
            max_orphan_share=float(cfg["max_orphan_share"]),
            stable_window=parse_seconds(cfg["stable_window"], "stable_window"),
            credentials_grace=parse_seconds(cfg["credentials_grace"], "credentials_grace"),
            portal=replace(portal, audio_roots=roots) if portal is not None else None,
            xml_curl_workers=_workers(cfg["xml_curl_workers"]),
            xml_curl_hang_seconds=parse_seconds(
                cfg["xml_curl_hang_timeout"], "xml_curl_hang_timeout"
            ),
            status_listen=parse_host_port(cfg["status_listen"]) if cfg["status_listen"] else None,
            audio_roots=roots,
            cdr_spool_dirs=tuple(Path(d) for d in cfg["cdr_spool_dir"] or ()),
        )
    except PbxError as exc:
        raise click.UsageError(str(exc)) from exc
    settings_log = logging.getLogger("reconciler.settings")
    for name, described in cfg.describe().items():
        logs.event(settings_log, "setting", name=name, value=described)
    _run(config, "pbx run")


def _run(config: DaemonConfig, name: str, *, data_plane_only: bool = False) -> None:
    # The xml_curl workers first, on the persisted generation: a switch registers its phones
    # while this process still imports the daemon's rooms (the portal's pages among them),
    # which are for these two commands only, never on the way of `pbx plan`.
    from reconciler.daemon.early import EarlyWorkers, launch

    early: EarlyWorkers | None = None
    # until the event loop handles it: SIGTERM still stops the workers started already
    signal.signal(signal.SIGTERM, _stop_starting)
    try:
        if config.xml_curl_workers > 0:
            early = launch(config)
        from reconciler.daemon.startup import run_daemon

        code = run_daemon(config, data_plane_only=data_plane_only, early=early)
    except Exception as exc:
        from reconciler.serve.listener import ListenerUnavailable

        if not isinstance(exc, ListenerUnavailable):
            raise
        click.echo(f"{name}: {exc}", err=True)  # a port already taken: one line, no traceback
        sys.exit(1)
    finally:
        if early is not None:
            early.close()  # stopped by their supervisor already, unless it never ran
    sys.exit(code)


def _stop_starting(signum: int, frame: object) -> None:
    raise SystemExit(0)


@click.command()
@data_plane_options
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="Where the generation it serves is persisted [PBX_STATE_DIR; default: serve/ in "
    "pbx run's, so the two never share a generation or a worker pid file].",
)
@global_options
@click.pass_context
def serve(ctx: click.Context, /, **_: Any) -> None:
    """The data plane alone, beside a FreeSWITCH node: xml_curl from the applied state in
    PostgreSQL (--database-url, read-only), no passes, no switch, no portal."""
    cfg = resolved(ctx)
    logs.configure(cfg["log_format"])
    try:
        if not cfg["database_url"]:
            raise SettingsError(
                "pbx serve reads the control plane's database: set --database-url or "
                "PBX_DATABASE_URL (the embedded one lives on the control plane's host)"
            )
        host, port = parse_host_port(cfg["listen"])
        config = DaemonConfig(
            tenants_dir=Path(cfg["tenants"]),
            database_url=_read_only_dsn(cfg["database_url"]),
            listen_host=host,
            listen_port=port,
            xml_curl_auth=parse_credentials(cfg["xml_curl_auth"]),
            status_auth=parse_credentials(cfg["status_auth"], "status_auth"),
            templates_dir=Path(cfg["templates"]) if cfg["templates"] else None,
            state_dir=Path(cfg["state_dir"]) if cfg["state_dir"] else default_state_dir() / "serve",
            xml_curl_workers=_workers(cfg["xml_curl_workers"]),
            xml_curl_hang_seconds=parse_seconds(
                cfg["xml_curl_hang_timeout"], "xml_curl_hang_timeout"
            ),
            status_listen=parse_host_port(cfg["status_listen"]) if cfg["status_listen"] else None,
        )
    except PbxError as exc:
        raise click.UsageError(str(exc)) from exc
    _run(config, "pbx serve", data_plane_only=True)


def _read_only_dsn(dsn: str) -> str:
    from reconciler.store import read_only_dsn  # the store package: `pbx serve`'s alone

    return read_only_dsn(dsn)


def _workers(value: object) -> int:
    count = int(str(value))
    if not 0 <= count <= MAX_XML_CURL_WORKERS:
        raise SettingsError(f"--xml-curl-workers must be 0..{MAX_XML_CURL_WORKERS}, not {count}")
    return count


def _status_base(cfg: Any) -> str:
    """Where /status is: with xml_curl workers, the control plane's status listener."""
    if cfg["status_url"]:
        return str(cfg["status_url"])
    if int(cfg["xml_curl_workers"] or 0) > 0:
        if cfg["status_listen"]:
            return f"http://{cfg['status_listen']}"
        return "http://{}:{}".format(*DEFAULT_STATUS_LISTEN)
    return f"http://{cfg['listen']}"


@click.command()
@click.option(
    "--url",
    help="Daemon base URL [PBX_STATUS_URL; default: the status listener "
    "(--status-listen, 127.0.0.1:8181), or http://<listen> with --xml-curl-workers 0].",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@global_options
@click.pass_context
def status(ctx: click.Context, /, url: str | None, output: str, **_: Any) -> None:
    """Readable view of a running daemon's /status."""
    import urllib.error
    import urllib.request  # `pbx status` alone: not on `pbx run`'s way

    cfg = resolved(ctx, status_url=url)
    target = _status_base(cfg).rstrip("/") + "/status"
    request = urllib.request.Request(target)  # noqa: S310 - operator-given URL
    credentials = parse_credentials(cfg["status_auth"], "status_auth")
    if credentials:
        import base64

        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            payload = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        click.echo(f"daemon not reachable at {target}: {exc}", err=True)
        sys.exit(1)
    click.echo(
        json.dumps(payload, indent=2) if output == "json" else render_status(payload),
        nl=output == "json",
    )

"""The portal's side of the CLI: its ``pbx run`` options, and ``pbx users invite`` (the
activation link a person sets their password with; the first super admin's bootstrap)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.cli.options import global_options, opened_store, resolved
from reconciler.cli.settings import ResolvedSettings
from reconciler.core.errors import SettingsError
from reconciler.store import migrate
from reconciler.web import NotEntitled, PortalConfig, config_from_settings, invite

F = TypeVar("F", bound=Callable[..., Any])

_PORTAL_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--portal/--no-portal", default=None, help="Serve the web portal [PBX_PORTAL, on]."
    ),
    click.option(
        "--portal-listen",
        metavar="HOST:PORT",
        help="Portal address [PBX_PORTAL_LISTEN, 127.0.0.1:8180].",
    ),
    click.option(
        "--portal-url",
        metavar="URL",
        help="Public base URL of the portal, for links [PBX_PORTAL_URL].",
    ),
    click.option(
        "--portal-tls-cert",
        type=click.Path(path_type=Path),
        help="TLS certificate [PBX_PORTAL_TLS_CERT].",
    ),
    click.option(
        "--portal-tls-key", type=click.Path(path_type=Path), help="TLS key [PBX_PORTAL_TLS_KEY]."
    ),
    click.option(
        "--portal-idle-timeout",
        type=float,
        metavar="SECONDS",
        help="[PBX_PORTAL_IDLE_TIMEOUT, 1800].",
    ),
    click.option(
        "--portal-session-lifetime",
        type=float,
        metavar="SECONDS",
        help="[PBX_PORTAL_SESSION_LIFETIME, 43200].",
    ),
    click.option(
        "--portal-invite-ttl",
        type=float,
        metavar="SECONDS",
        help="[PBX_PORTAL_INVITE_TTL, 259200].",
    ),
    click.option(
        "--portal-login-limit",
        metavar="N/SECONDS",
        help="Failures per account and address before doubling delays, and how long a "
        "streak is remembered [PBX_PORTAL_LOGIN_LIMIT, 5/900].",
    ),
    click.option(
        "--portal-address-limit",
        metavar="N/SECONDS",
        help="Failed logins per client address [PBX_PORTAL_ADDRESS_LIMIT, 30/300].",
    ),
    click.option(
        "--portal-trusted-proxies",
        metavar="CIDR,...",
        help="Reverse proxies whose X-Forwarded-For names the client "
        "[PBX_PORTAL_TRUSTED_PROXIES, none].",
    ),
    click.option(
        "--portal-unauthenticated-limit",
        metavar="N/SECONDS",
        help="Requests per address without a login; then 429 "
        "[PBX_PORTAL_UNAUTHENTICATED_LIMIT, 120/60].",
    ),
]


def portal_options(func: F) -> F:
    for option in reversed(_PORTAL_OPTIONS):
        func = option(func)
    return func


def portal_config(cfg: ResolvedSettings) -> PortalConfig | None:
    """The portal's config, or None when switched off (``--no-portal``, PBX_PORTAL=off)."""
    switch = cfg["portal"]
    if switch is False or str(switch).lower() in ("off", "false", "0", "no"):
        return None
    try:
        return config_from_settings(
            cfg["portal_listen"],
            cfg["portal_url"],
            tls_cert=Path(cfg["portal_tls_cert"]) if cfg["portal_tls_cert"] else None,
            tls_key=Path(cfg["portal_tls_key"]) if cfg["portal_tls_key"] else None,
            idle_timeout=float(cfg["portal_idle_timeout"]),
            session_lifetime=float(cfg["portal_session_lifetime"]),
            invite_ttl=float(cfg["portal_invite_ttl"]),
            login_limit=str(cfg["portal_login_limit"]),
            address_limit=str(cfg["portal_address_limit"]),
            trusted_proxies=str(cfg["portal_trusted_proxies"] or ""),
            unauthenticated_limit=str(cfg["portal_unauthenticated_limit"]),
        )
    except ValueError as exc:
        raise SettingsError(f"portal: {exc}") from exc


@click.group()
def users() -> None:
    """People of the portal (declared in git; passwords never are)."""


@users.command("invite")
@click.argument("email")
@click.option(
    "--ttl", type=float, metavar="SECONDS", help="How long the link works [PBX_PORTAL_INVITE_TTL]."
)
@portal_options
@global_options
@click.pass_context
def users_invite(ctx: click.Context, /, email: str, ttl: float | None, **_: Any) -> None:
    """Print a single-use activation link for EMAIL (a user or super admin in git)."""
    cfg = resolved(ctx)
    try:
        config = portal_config(cfg) or config_from_settings(cfg["portal_listen"], cfg["portal_url"])
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    lifetime = timedelta(seconds=ttl if ttl is not None else config.invitation_ttl)
    with opened_store(cfg) as store:
        conn = store.connection
        migrate(conn)
        try:
            link = invite(conn, email, base_url=config.base_url, ttl=lifetime)
        except NotEntitled as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(link.url)
    click.echo(f"expires {link.expires_at.isoformat(timespec='minutes')}; single use", err=True)
    if link.totp_required:
        click.echo("super admin: the page also enrols an authenticator app (TOTP)", err=True)

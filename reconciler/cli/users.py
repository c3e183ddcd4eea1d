"""The portal's side of the CLI: its ``pbx run`` options, ``pbx users invite`` (the
activation link a person sets their password with; the first super admin's bootstrap) and
``pbx users reset`` (an activated account's new password: the host is the root of trust).

With mail configured (``PBX_SMTP_URL``, ``PBX_SMTP_FROM``) links are mailed to the address
git declares and only the masked address is printed; otherwise the link is printed."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.cli.options import global_options, opened_store, resolved
from reconciler.cli.settings import ResolvedSettings
from reconciler.core.errors import SettingsError
from reconciler.web import PortalConfig, config_from_settings
from reconciler.web.config import DEFAULT_LISTEN
from reconciler.web.errors import PortalError

if TYPE_CHECKING:  # invitations and the mailer load with the commands that use them
    from reconciler.web.invitations import InviteLink

F = TypeVar("F", bound=Callable[..., Any])


def _seconds(flag: str, help_text: str) -> Callable[[F], F]:
    return click.option(flag, type=float, metavar="SECONDS", help=help_text)


def _rate(flag: str, help_text: str) -> Callable[[F], F]:
    """A limit written ``N/SECONDS`` (parsed by the portal's config)."""
    return click.option(flag, metavar="N/SECONDS", help=help_text)


def _port(flag: str, help_text: str) -> Callable[[F], F]:
    return click.option(flag, type=click.IntRange(1, 65535), metavar="PORT", help=help_text)


_PORTAL_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--portal/--no-portal", default=None, help="Serve the web portal [PBX_PORTAL, on]."
    ),
    click.option(
        "--portal-listen",
        metavar="HOST:PORT",
        help="Portal address [PBX_PORTAL_LISTEN, {}:{}].".format(*DEFAULT_LISTEN),
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
    _seconds("--portal-idle-timeout", "[PBX_PORTAL_IDLE_TIMEOUT, 1800]."),
    _seconds("--portal-session-lifetime", "[PBX_PORTAL_SESSION_LIFETIME, 43200]."),
    _seconds("--portal-invite-ttl", "[PBX_PORTAL_INVITE_TTL, 259200]."),
    _rate(
        "--portal-login-limit",
        "Failures per account and address before doubling delays, and how long a "
        "streak is remembered [PBX_PORTAL_LOGIN_LIMIT, 5/900].",
    ),
    _rate(
        "--portal-address-limit",
        "Failed logins per client address [PBX_PORTAL_ADDRESS_LIMIT, 30/300].",
    ),
    click.option(
        "--portal-trusted-proxies",
        metavar="CIDR,...",
        help="Reverse proxies whose X-Forwarded-For names the client "
        "[PBX_PORTAL_TRUSTED_PROXIES, none].",
    ),
    _rate(
        "--portal-unauthenticated-limit",
        "Requests per address without a login; then 429 "
        "[PBX_PORTAL_UNAUTHENTICATED_LIMIT, 120/60].",
    ),
    click.option(
        "--portal-token-max-days",
        type=click.IntRange(1, 3650),
        metavar="DAYS",
        help="Longest API token lifetime [PBX_PORTAL_TOKEN_MAX_DAYS, 90].",
    ),
    click.option(
        "--phone-wss",
        multiple=True,
        metavar="wss://HOST:PORT",
        help="A switch node's public WSS URL for the portal's browser phone; repeat per node "
        "[PBX_PHONE_WSS, comma-separated; none: no browser phone].",
    ),
    click.option(
        "--portal-revision-url",
        metavar="URL",
        help="Link revisions to their commit: https://.../commit/{revision} "
        "[PBX_PORTAL_REVISION_URL, none].",
    ),
    click.option(
        "--portal-sip-host",
        metavar="HOST",
        help="Registrar/proxy host phones use [PBX_PORTAL_SIP_HOST, the tenant's domain].",
    ),
    _port("--portal-sip-port", "SIP port for UDP and TCP [PBX_PORTAL_SIP_PORT, 5060]."),
    _port("--portal-sip-tls-port", "SIP port for TLS [PBX_PORTAL_SIP_TLS_PORT, 5061]."),
    click.option(
        "--portal-service-level",
        type=click.FloatRange(1, 3600),
        metavar="SECONDS",
        help="Wallboards: a caller answered within this counts toward the service level "
        "[PBX_PORTAL_SERVICE_LEVEL, 20].",
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
            smtp_url=cfg["smtp_url"],
            smtp_from=cfg["smtp_from"],
            token_max_days=int(cfg["portal_token_max_days"]),
            phone_wss=tuple(cfg["phone_wss"] or ()),
            revision_url=cfg["portal_revision_url"],
            sip_host=cfg["portal_sip_host"],
            sip_port=int(cfg["portal_sip_port"]),
            sip_tls_port=int(cfg["portal_sip_tls_port"]),
            service_level=float(cfg["portal_service_level"]),
        )
    except ValueError as exc:
        raise SettingsError(f"portal: {exc}") from exc


@click.group()
def users() -> None:
    """People of the portal (declared in git; passwords never are)."""


def _ttl(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    """A link lives 60 s to 30 days: a negative TTL would replace a pending link with a dead
    one, ``nan`` and ``1e12`` are typing mistakes."""
    from reconciler.web.invitations import MAX_TTL

    top = MAX_TTL.total_seconds()
    if value is not None and not (math.isfinite(value) and 60 <= value <= top):
        raise click.BadParameter(f"seconds from 60 to {int(top)} (30 days), not {value}")
    return value


_TTL = click.option(
    "--ttl",
    type=float,
    callback=_ttl,
    metavar="SECONDS",
    help="How long the link works, 60 to 2592000 [PBX_PORTAL_INVITE_TTL].",
)


def _config(cfg: ResolvedSettings) -> PortalConfig:
    try:
        config = portal_config(cfg) or config_from_settings(
            cfg["portal_listen"],
            cfg["portal_url"],
            smtp_url=cfg["smtp_url"],
            smtp_from=cfg["smtp_from"],
        )
    except (SettingsError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    if config.mail is None and not cfg["portal_url"]:
        if config.listen_host in ("0.0.0.0", "::", ""):  # noqa: S104 (a check, not a bind)
            raise click.UsageError(
                f"the portal listens on every address ({config.listen_host}): give the "
                "address people use with --portal-url or PBX_PORTAL_URL"
            )
        if cfg.sources.get("portal_listen") == "default":
            click.echo(
                f"note: the link uses the default portal address {config.base_url}; set "
                "PBX_PORTAL_URL (or PBX_PORTAL_LISTEN) as the daemon has it",
                err=True,
            )
    return config


def _issue(
    ctx: click.Context, ttl: float | None, issue: Callable[[Any, str, timedelta], InviteLink]
) -> InviteLink:
    """``issue(connection, base URL, lifetime)`` on the migrated database, then the link
    handed over (mailed or printed); a refusal is the command's error."""
    from reconciler.store import migrate  # the store: not on `pbx run`'s way

    cfg = resolved(ctx)
    config = _config(cfg)
    lifetime = timedelta(seconds=ttl if ttl is not None else config.invitation_ttl)
    with opened_store(cfg) as store:
        conn = store.connection
        migrate(conn)
        try:
            link = issue(conn, config.base_url, lifetime)
        except PortalError as exc:
            raise click.ClickException(exc.message) from exc
    _hand_over(link, config)
    return link


def _hand_over(link: InviteLink, config: PortalConfig) -> None:
    """Mail the link to the person when mail is configured (print where), else print it."""
    if config.mail is not None:
        from reconciler.web.mail import Mailer

        try:
            sent_to = asyncio.run(Mailer(config.mail).send_link(link))
        except PortalError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"sent to {sent_to}")
    else:
        click.echo(link.url)
    click.echo(f"expires {link.expires_at.isoformat(timespec='minutes')}; single use", err=True)


@users.command("invite")
@click.argument("email")
@_TTL
@portal_options
@global_options
@click.pass_context
def users_invite(ctx: click.Context, /, email: str, ttl: float | None, **_: Any) -> None:
    """A single-use activation link for EMAIL (a user or super admin in git who has no
    account yet): printed, or mailed to EMAIL when mail is configured."""
    from reconciler.web.invitations import invite

    link = _issue(
        ctx, ttl, lambda conn, url, lifetime: invite(conn, email, base_url=url, ttl=lifetime)
    )
    if link.totp_required:
        click.echo("super admin: the page also enrols an authenticator app (TOTP)", err=True)


@users.command("reset")
@click.argument("email")
@_TTL
@click.option(
    "--new-authenticator",
    is_flag=True,
    help="Also replace the second factor (a lost phone): the page enrols a new one.",
)
@portal_options
@global_options
@click.pass_context
def users_reset(
    ctx: click.Context, /, email: str, ttl: float | None, new_authenticator: bool, **_: Any
) -> None:
    """A single-use password reset link for EMAIL's activated account (audited): printed for
    the operator to hand to the person, or mailed to EMAIL when mail is configured. Using
    it ends every session and API token of that person; without --new-authenticator, a
    person who has an authenticator also types its current code."""
    from reconciler.web.invitations import issue_reset

    link = _issue(
        ctx,
        ttl,
        lambda conn, url, lifetime: issue_reset(
            conn, email, base_url=url, ttl=lifetime, new_authenticator=new_authenticator
        ),
    )
    if link.totp_required:
        click.echo("the page also enrols a new authenticator app (TOTP)", err=True)

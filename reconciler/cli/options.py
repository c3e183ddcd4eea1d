"""What every ``pbx`` command shares: the global options, their resolution (flag > env >
config file > default, see ``settings``) and opening the store."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.cli import settings
from reconciler.cli.settings import ResolvedSettings
from reconciler.core.errors import PbxError, SettingsError

if TYPE_CHECKING:  # the store (psycopg) only for the commands that open one, not `pbx run`
    from reconciler.store import PostgresStore

F = TypeVar("F", bound=Callable[..., Any])

_GLOBAL_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--tenants",
        type=click.Path(path_type=Path),
        help="Spec directory [PBX_TENANTS, ./tenants.d].",
    ),
    click.option(
        "--database-url", help="PostgreSQL DSN [PBX_DATABASE_URL; default: embedded pgserver]."
    ),
    click.option(
        "--templates",
        type=click.Path(path_type=Path),
        help="Jinja2 XML templates dir [PBX_TEMPLATES].",
    ),
    click.option(
        "--freeswitch",
        multiple=True,
        metavar="HOST:PORT:PASSWORD",
        help="ESL node, repeatable [PBX_FREESWITCH, comma-separated].",
    ),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        help="Log line format [PBX_LOG_FORMAT].",
    ),
    click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path),
        help="TOML config file [PBX_CONFIG].",
    ),
]


def global_options(func: F) -> F:
    """Accept the global options after the command name too (``pbx plan --tenants x``)."""
    for option in reversed(_GLOBAL_OPTIONS):
        func = option(func)
    return func


def resolved(ctx: click.Context, /, **local: Any) -> ResolvedSettings:
    """Merge this command's flags with the group's flags, env, config file and defaults."""
    flags: dict[str, Any] = {}
    for source in (ctx.find_root().params, ctx.params, local):
        for key, value in source.items():
            if value not in (None, ()):
                flags[key] = value
    config_path = flags.pop("config_file", None) or _env_path("PBX_CONFIG")
    try:
        return settings.resolve(flags, config=settings.load_config_file(config_path))
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


@contextmanager
def opened_store(cfg: ResolvedSettings) -> Iterator[PostgresStore]:
    """The configured (or embedded) database as a store; its failures exit 1 with the
    message (never a secret: store errors carry none)."""
    from reconciler.store import PostgresStore, database_url

    try:
        with database_url(cfg["database_url"]) as dsn:
            store = PostgresStore(dsn, credentials_grace=_credentials_grace(cfg))
            try:
                yield store
            finally:
                store.close()
    except PbxError as exc:
        raise click.ClickException(str(exc)) from exc


def _credentials_grace(cfg: ResolvedSettings) -> timedelta:
    """``pbx apply`` keeps deleted extensions' credentials as long as the daemon does."""
    try:
        return timedelta(
            seconds=settings.parse_seconds(cfg["credentials_grace"], "credentials_grace")
        )
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def confirm_or_exit(question: str, *, yes: bool, refusal: str) -> None:
    """Ask on a terminal; without one, refuse unless ``--yes`` (automation must say so)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.ClickException(refusal)
    if not click.confirm(question, default=False):
        click.echo("Cancelled; nothing changed.")
        raise SystemExit(1)

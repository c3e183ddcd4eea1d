"""The ``pbx`` command: thin click wrappers that parse, call, print and set the exit code.

Names, flags, environment variables and exit codes follow ``shared/INTERFACE.md``. Global
options are accepted before or after the command name (``pbx --tenants x plan`` and
``pbx plan --tenants x``); see ``reconciler.settings`` for the precedence.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import settings as settings_mod
from reconciler.settings import ResolvedSettings, SettingsError

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
    for option in reversed(_GLOBAL_OPTIONS):
        func = option(func)
    return func


def resolved(ctx: click.Context, **local: Any) -> ResolvedSettings:
    """Merge this command's flags with the group's flags, env, config file and defaults."""
    flags: dict[str, Any] = {}
    group = ctx.find_root().params
    for source in (group, ctx.params, local):
        for key, value in source.items():
            if value not in (None, ()):
                flags[key] = value
    config_path = flags.pop("config_file", None) or _env_path("PBX_CONFIG")
    try:
        config = settings_mod.load_config_file(config_path)
        return settings_mod.resolve(flags, config=config)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def _env_path(name: str) -> Path | None:
    import os

    value = os.environ.get(name)
    return Path(value) if value else None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(package_name="pbx-reconciler")
def main(**_: Any) -> None:
    """Declarative reconciler for a multi-tenant FreeSWITCH PBX."""


# --- validate / schema -----------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
)
@global_options
@click.pass_context
def validate(ctx: click.Context, paths: tuple[Path, ...], fmt: str, **_: Any) -> None:
    """Validate spec files or directories (no database, no switch). Exit 0 valid, 1 invalid."""
    from specs_schema.load import load_specs

    cfg = resolved(ctx)
    targets = list(paths) or [Path(cfg["tenants"])]
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise click.UsageError(f"no such file or directory: {', '.join(map(str, missing))}")
    result = load_specs(targets)
    if fmt == "json":
        payload = {
            "valid": result.ok,
            "files": list(result.files),
            "tenants": sorted(result.tenants),
            "errors": [e.to_dict() for e in result.errors],
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    elif fmt == "github":
        for error in result.errors:
            click.echo(
                f"::error file={error.file},line={error.line},col={error.col}::"
                f"{_gh_escape(f'{error.field}: {error.message}' if error.field else error.message)}"
            )
    else:
        for error in result.errors:
            click.echo(str(error))
        tenants = len(result.tenants)
        if result.ok:
            click.echo(f"{len(result.files)} file(s) valid ({tenants} tenant(s)).", err=True)
        else:
            click.echo(
                f"{len(result.errors)} error(s) in {len({e.file for e in result.errors})} file(s).",
                err=True,
            )
    sys.exit(0 if result.ok else 1)


def _gh_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


@main.command()
@global_options
def schema(**_: Any) -> None:
    """Print the JSON Schema of a tenant file."""
    from specs_schema.schema import render_schema

    click.echo(render_schema(), nl=False)


def run_main() -> None:
    main(prog_name="pbx")


if __name__ == "__main__":  # pragma: no cover
    run_main()

"""``pbx validate`` and ``pbx schema``: the specs alone, no database, no switch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import global_options, resolved
from reconciler.core.gcpause import gc_paused
from specs_schema.load import SpecError, load_specs
from specs_schema.schema import render_schema


@click.command()
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
def validate(ctx: click.Context, /, paths: tuple[Path, ...], fmt: str, **_: Any) -> None:
    """Validate spec files or directories (no database, no switch). Exit 0 valid, 1 invalid."""
    targets = list(paths) or [Path(resolved(ctx)["tenants"])]
    missing = [p for p in targets if not p.exists() and not p.is_symlink()]
    if missing:
        raise click.UsageError(f"no such file or directory: {', '.join(map(str, missing))}")
    with gc_paused():
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
            click.echo(github_annotation(error))
    else:
        for error in result.errors:
            click.echo(str(error))
        if result.ok:
            click.echo(
                f"{len(result.files)} file(s) valid ({len(result.tenants)} tenant(s)).", err=True
            )
        else:
            files = len({e.file for e in result.errors})
            click.echo(f"{len(result.errors)} error(s) in {files} file(s).", err=True)
    sys.exit(0 if result.ok else 1)


def github_annotation(error: SpecError) -> str:
    """A GitHub Actions ``::error`` line (its message escaping rules applied)."""
    text = f"{error.field}: {error.message}" if error.field else error.message
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::error file={error.file},line={error.line},col={error.col}::{text}"


@click.command()
@global_options
def schema(**_: Any) -> None:
    """Print the JSON Schema of a tenant file."""
    click.echo(render_schema(), nl=False)

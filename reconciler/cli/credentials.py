"""``pbx credentials show|rotate`` and ``pbx prune``: one-off store operations."""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.cli.options import confirm_or_exit, global_options, opened_store, resolved
from reconciler.cli.settings import audio_roots
from reconciler.daemon.audio import archive_tenant_audio
from reconciler.store import prune_tenant, rotate_credentials, show_credentials


@click.group()
def credentials() -> None:
    """SIP credentials of an extension (generated; never stored in git)."""


@credentials.command("show")
@click.argument("tenant")
@click.argument("extension")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@global_options
@click.pass_context
def credentials_show(
    ctx: click.Context, /, tenant: str, extension: str, output: str, **_: Any
) -> None:
    """Print the SIP username, domain and password, for provisioning a phone."""
    with opened_store(resolved(ctx)) as store:
        creds = show_credentials(store.connection, tenant, extension)
    if output == "json":
        click.echo(json.dumps(creds.to_dict()))
    else:
        click.echo(
            f"username: {creds.username}\ndomain:   {creds.domain}\npassword: {creds.password}"
        )


@credentials.command("rotate")
@click.argument("tenant")
@click.argument("extension")
@global_options
@click.pass_context
def credentials_rotate(ctx: click.Context, /, tenant: str, extension: str, **_: Any) -> None:
    """Replace the password and a1-hash of an extension (phones must be re-provisioned)."""
    with opened_store(resolved(ctx)) as store:
        rotate_credentials(store.connection, tenant, extension)
    click.echo(
        f"rotated credentials of {extension} in tenant {tenant}; "
        f"`pbx credentials show {tenant} {extension}` prints the new password"
    )


@click.command()
@click.argument("tenant")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@global_options
@click.pass_context
def prune(ctx: click.Context, /, tenant: str, yes: bool, **_: Any) -> None:
    """Archive an orphaned tenant: its schema is renamed, not dropped."""
    cfg = resolved(ctx)
    confirm_or_exit(
        f"Archive orphaned tenant {tenant}?",
        yes=yes,
        refusal="refusing to prune without --yes: stdin is not a terminal",
    )
    roots = audio_roots(cfg)
    with opened_store(cfg) as store:
        archive = prune_tenant(store.connection, tenant)
    click.echo(f"pruned {tenant}: schema archived as {archive} (data kept, no longer registered)")
    try:
        moved = archive_tenant_audio(roots, tenant, archive)
    except OSError as exc:
        raise click.ClickException(f"audio of {tenant} not archived: {exc}") from exc
    for path in moved:
        click.echo(f"audio archived as {path}")

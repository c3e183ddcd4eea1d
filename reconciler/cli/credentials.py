"""``pbx credentials show|rotate`` (``--pin``: the voicemail PIN instead of the SIP
password) and ``pbx prune``: one-off store operations."""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.cli.options import confirm_or_exit, global_options, opened_store, resolved
from reconciler.cli.settings import audio_roots
from reconciler.store import (
    prune_tenant,
    rotate_credentials,
    rotate_pin,
    show_credentials,
    show_pin,
)

_PIN = click.option(
    "--pin", is_flag=True, help="The extension's voicemail PIN, not its SIP password."
)


@click.group()
def credentials() -> None:
    """SIP credentials and voicemail PIN of an extension (generated; never stored in git)."""


@credentials.command("show")
@click.argument("tenant")
@click.argument("extension")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_PIN
@global_options
@click.pass_context
def credentials_show(
    ctx: click.Context, /, tenant: str, extension: str, output: str, pin: bool, **_: Any
) -> None:
    """Print the SIP username, domain and password, for provisioning a phone (``--pin``:
    the voicemail box's PIN)."""
    if pin:
        with opened_store(resolved(ctx)) as store:
            secret = show_pin(store.connection, tenant, extension)
        box = {"tenant": tenant, "extension": extension, "pin": secret}
        click.echo(json.dumps(box) if output == "json" else f"voicemail pin: {secret}")
        return
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
@_PIN
@global_options
@click.pass_context
def credentials_rotate(
    ctx: click.Context, /, tenant: str, extension: str, pin: bool, **_: Any
) -> None:
    """Replace the password and a1-hash of an extension (phones must be re-provisioned);
    ``--pin``: its voicemail PIN instead."""
    if pin:
        with opened_store(resolved(ctx)) as store:
            rotate_pin(store.connection, tenant, extension)
        click.echo(
            f"rotated the voicemail PIN of {extension} in tenant {tenant}; "
            f"`pbx credentials show {tenant} {extension} --pin` prints it"
        )
        return
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
    from reconciler.daemon.audio import archive_tenant_audio  # the daemon's; prune's only

    try:
        moved = archive_tenant_audio(roots, tenant, archive)
    except OSError as exc:
        raise click.ClickException(f"audio of {tenant} not archived: {exc}") from exc
    for path in moved:
        click.echo(f"audio archived as {path}")

"""``pbx render``: the XML the xml_curl endpoint would answer, from the applied state.

The command keeps the name INTERFACE.md fixes; the module is named for what it prints.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from reconciler.cli.options import global_options, opened_store, resolved
from reconciler.serve import answer, build_snapshot, load_templates
from reconciler.serve.forms import configuration_form, dialplan_form, directory_form


@click.command("render")
@click.option(
    "--section", type=click.Choice(["directory", "dialplan", "configuration"]), required=True
)
@click.option("--domain", help="directory: the SIP domain.")
@click.option("--user", "user_id", help="directory: the extension number.")
@click.option("--action", default="sip_auth", show_default=True, help="directory: lookup action.")
@click.option("--context", help="dialplan: the context (a tenant domain, or public).")
@click.option("--number", help="dialplan: the destination number.")
@click.option("--caller", help="dialplan: the calling extension (for feature codes).")
@click.option(
    "--name",
    "config_name",
    default="callcenter.conf",
    show_default=True,
    help="configuration: the file name.",
)
@click.option(
    "--queue", help="configuration: one queue (as CC-Queue), e.g. support@acme.example.com."
)
@global_options
@click.pass_context
def xml_answer(
    ctx: click.Context,
    /,
    section: str,
    domain: str | None,
    user_id: str | None,
    action: str,
    context: str | None,
    number: str | None,
    caller: str | None,
    config_name: str,
    queue: str | None,
    **_: Any,
) -> None:
    """Print the XML the endpoint would answer, from the applied state (no switch needed)."""
    cfg = resolved(ctx)
    if section == "directory":
        if not domain or not user_id:
            raise click.UsageError("--section directory needs --domain and --user")
        form = directory_form(domain, user_id, action)
    elif section == "dialplan":
        if not context or not number:
            raise click.UsageError("--section dialplan needs --context and --number")
        form = dialplan_form(context, number, caller)
    else:
        form = configuration_form(config_name, queue)
    with opened_store(cfg) as store:
        snapshot = build_snapshot(
            store.read_state(),
            store.read_a1_hashes(),
            voicemail_hashes=store.read_voicemail_hashes(),
        )
    result = answer(snapshot, form, load_templates(cfg["templates"]))
    click.echo(result.body, nl=not result.body.endswith("\n"))
    sys.exit(0 if result.result != "not_found" else 1)

"""``pbx plan`` and ``pbx apply``: one reconcile pass by hand, through the same
``reconciler.reconcile`` functions the daemon uses (terraform-style output and exit codes)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import confirm_or_exit, global_options, opened_store, resolved
from reconciler.cli.settings import ResolvedSettings
from reconciler.core.errors import PbxError
from reconciler.core.model import State
from reconciler.core.plan_text import render_text, to_json
from reconciler.reconcile import PassGuards, PlannedPass, Reconciler
from reconciler.switch import NodeSpecError, parse_node_specs
from reconciler.switch.callcenter.preview import has_changes, preview_nodes, render_preview
from reconciler.web import revoke_unentitled
from specs_schema.load import SpecError


def _errors_of(planned: PlannedPass, tenant: str | None) -> list[SpecError]:
    if tenant is None:
        return list(planned.spec_errors)
    return list(planned.invalid.get(tenant, ()))


def _report_spec_errors(errors: list[SpecError], planned: PlannedPass) -> None:
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        frozen = ", ".join(sorted(planned.invalid)) or "none"
        click.echo(f"{len(errors)} spec error(s); tenants left untouched: {frozen}", err=True)


def _live_previews(
    cfg: ResolvedSettings, planned: PlannedPass, settled: State
) -> list[dict[str, Any]]:
    """``settled``: the records of the tenants the plan skipped (in sync: as stored)."""
    try:
        nodes = parse_node_specs(cfg["freeswitch"])
    except NodeSpecError as exc:
        raise click.UsageError(str(exc)) from exc
    state = dict(sorted({**settled, **planned.post_apply_state()}.items()))
    return asyncio.run(preview_nodes(nodes, state, retired_domains=planned.retired_domains))


def _guards(cfg: ResolvedSettings, allow_mass_orphan: bool) -> PassGuards:
    return PassGuards(
        max_orphan_share=float(cfg["max_orphan_share"]), allow_mass_orphan=allow_mass_orphan
    )


def _report_held(planned: PlannedPass) -> None:
    for tenant_id, reason in sorted(planned.held.items()):
        click.echo(f"held {tenant_id}: {reason}", err=True)


def _tenants_dir(cfg: ResolvedSettings) -> Path:
    """The spec directory, which must exist: a missing one is a usage error, never "every
    tenant left git"."""
    tenants_dir = Path(cfg["tenants"])
    if not tenants_dir.is_dir():
        raise click.UsageError(f"tenants directory not found: {tenants_dir}")
    return tenants_dir


def _plan(
    cfg: ResolvedSettings, tenant: str | None, allow_mass_orphan: bool, *, settled: bool, live: bool
) -> tuple[PlannedPass, State]:
    """The plan, and (``live``) the records of the settled tenants it skipped."""
    tenants_dir = _tenants_dir(cfg)
    with opened_store(cfg) as store:
        reconciler = Reconciler(tenants_dir, store, _guards(cfg, allow_mass_orphan), one_shot=True)
        try:
            planned = reconciler.plan_pass(full=True, only=tenant, settled=settled)
            skipped = planned.settled
            return planned, store.read_state(skipped) if live and skipped else {}
        except PbxError as exc:
            raise click.ClickException(str(exc)) from exc


_ALLOW_MASS_ORPHAN = click.option(
    "--allow-mass-orphan",
    is_flag=True,
    help="Orphan many tenants at once (refused by default: an empty checkout looks like that).",
)
_MAX_ORPHAN_SHARE = click.option(
    "--max-orphan-share",
    type=float,
    metavar="SHARE",
    help="Largest share of tenants one pass may orphan [PBX_MAX_ORPHAN_SHARE, 0.5].",
)


@click.command("plan")
@click.option("--tenant", "tenant_filter", metavar="ID", help="Plan one tenant only.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes, 1 error, 2 changes.")
@click.option(
    "--live/--no-live",
    default=True,
    show_default=True,
    help="Also diff reachable FreeSWITCH nodes.",
)
@click.option(
    "--read-all",
    is_flag=True,
    hidden=True,
    help="Parse every file and read every tenant, even those settled since the last pass.",
)
@_ALLOW_MASS_ORPHAN
@_MAX_ORPHAN_SHARE
@global_options
@click.pass_context
def plan_command(
    ctx: click.Context,
    /,
    tenant_filter: str | None,
    output: str,
    detailed_exitcode: bool,
    live: bool,
    read_all: bool,
    allow_mass_orphan: bool,
    **_: Any,
) -> None:
    """Show what `pbx apply` would change in the database (and on live switches)."""
    cfg = resolved(ctx)
    planned, settled = _plan(cfg, tenant_filter, allow_mass_orphan, settled=not read_all, live=live)
    previews = _live_previews(cfg, planned, settled) if live else []
    errors = _errors_of(planned, tenant_filter)
    if output == "json":
        payload = to_json(planned.plan)
        payload["errors"] = [e.to_dict() for e in errors]
        payload["frozen_tenants"] = sorted(planned.invalid)
        payload["live"] = previews
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(planned.plan, tenants=planned.tenant_records()), nl=False)
        for preview in previews:
            click.echo(render_preview(preview), nl=False)
    _report_spec_errors(errors, planned)
    _report_held(planned)
    if errors:
        sys.exit(1)
    changes = not planned.plan.empty or has_changes(previews)
    sys.exit(2 if detailed_exitcode and changes else 0)


@click.command("apply")
@click.option("--tenant", "tenant_filter", metavar="ID", help="Apply one tenant only.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (automation).")
@_ALLOW_MASS_ORPHAN
@_MAX_ORPHAN_SHARE
@global_options
@click.pass_context
def apply_command(
    ctx: click.Context, /, tenant_filter: str | None, yes: bool, allow_mass_orphan: bool, **_: Any
) -> None:
    """Apply the plan: one transaction per tenant, platform admins and spec status too."""
    cfg = resolved(ctx)
    tenants_dir = _tenants_dir(cfg)
    with opened_store(cfg) as store:
        reconciler = Reconciler(tenants_dir, store, _guards(cfg, allow_mass_orphan), one_shot=True)
        try:
            planned = reconciler.plan_pass(full=True, only=tenant_filter)
            errors = _errors_of(planned, tenant_filter)
            _report_spec_errors(errors, planned)
            _report_held(planned)
            if planned.plan.empty:
                click.echo("No changes. The database matches the specs.")
            else:
                click.echo(render_text(planned.plan, tenants=planned.tenant_records()), nl=False)
                confirm_or_exit(
                    "Apply these changes?",
                    yes=yes,
                    refusal="refusing to apply without --yes: stdin is not a terminal",
                )
            outcome = reconciler.apply_pass(planned)
            if tenant_filter is None:  # the whole applied state is known: as a daemon pass
                applied = reconciler.applied
                revoke_unentitled(store.connection, applied.state, applied.platform_admins)
                reconciler.settle_quietly_after_apply(planned)  # `pbx plan` skips their parse
        except PbxError as exc:
            raise click.ClickException(str(exc)) from exc
    report = outcome.report
    for tenant_id in report.applied:
        counts = planned.plan.for_tenant(tenant_id).counts()
        click.echo(f"applied {tenant_id}: {sum(counts.values())} change(s)")
    for tenant_id in report.unchanged:
        click.echo(f"unchanged {tenant_id}: another writer had already applied it")
    for tenant_id, error in report.failed.items():
        click.echo(f"FAILED {tenant_id}: {error} (rolled back)", err=True)
    platform = outcome.platform
    if platform.result == "applied":
        click.echo(f"applied platform: {len(planned.plan.platform)} change(s)")
    elif platform.result == "unchanged":
        click.echo("unchanged platform: another writer had already applied it")
    elif platform.error is not None:
        click.echo(f"FAILED {platform.error} (rolled back)", err=True)
    if not planned.plan.empty:
        click.echo(
            f"Apply complete: {len(report.applied)} tenant(s) applied, "
            f"{len(report.failed)} failed, {len(planned.invalid)} skipped (invalid spec)."
        )
    sys.exit(0 if report.ok and platform.ok and not errors and not planned.held else 1)

"""The ``pbx`` command: thin click wrappers that parse, call, print and set the exit code.

Names, flags, environment variables and exit codes follow ``shared/INTERFACE.md``. Global
options are accepted before or after the command name (``pbx --tenants x plan`` and
``pbx plan --tenants x``); see ``reconciler.cli.settings`` for the precedence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.cli import settings as settings_mod
from reconciler.cli.settings import ResolvedSettings, SettingsError
from reconciler.core.model import State, Tenant, TenantState

if TYPE_CHECKING:
    import psycopg

    from reconciler.core.plan import Plan
    from specs_schema.load import SpecError, SpecSet

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


def resolved(ctx: click.Context, /, **local: Any) -> ResolvedSettings:
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
def validate(ctx: click.Context, /, paths: tuple[Path, ...], fmt: str, **_: Any) -> None:
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


# --- database commands -----------------------------------------------------------------


@contextmanager
def _database(cfg: ResolvedSettings) -> Iterator[psycopg.Connection]:
    """A connection to the configured (or embedded) database; failures -> exit 1."""
    from reconciler.store import StoreError, connect, database_url

    try:
        with database_url(cfg["database_url"]) as dsn, connect(dsn) as conn:
            yield conn
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _spec_problems(specs: SpecSet, tenant: str | None) -> list[SpecError]:
    errors = list(specs.errors)
    if tenant is not None:
        errors = [e for e in errors if tenant in specs.invalid and e in specs.invalid[tenant]]
    return errors


def _prepare(cfg: ResolvedSettings, conn: psycopg.Connection, tenant: str | None) -> _Prepared:
    """Load specs and the stored state, and plan (optionally one tenant only)."""
    from reconciler.core.model import tenant_state_from_spec
    from reconciler.core.plan import plan
    from reconciler.store import read_state
    from specs_schema.load import load_specs

    tenants_dir = Path(cfg["tenants"])
    if not tenants_dir.is_dir():
        raise click.UsageError(f"tenants directory not found: {tenants_dir}")
    specs = load_specs([tenants_dir])
    desired = {t: tenant_state_from_spec(s.spec) for t, s in specs.tenants.items()}
    actual = read_state(conn, tenants=None if tenant is None else [tenant])
    if tenant is not None:
        known = set(desired) | set(actual) | set(specs.invalid)
        if tenant not in known:
            raise click.ClickException(f"unknown tenant: {tenant}")
        desired = {t: v for t, v in desired.items() if t == tenant}
        actual = {t: v for t, v in actual.items() if t == tenant}
    changes = plan(desired, actual, frozen=specs.invalid)
    return _Prepared(specs, desired, actual, changes, _spec_problems(specs, tenant))


@dataclass(frozen=True)
class _Prepared:
    specs: SpecSet
    desired: State
    actual: State
    plan: Plan
    errors: list[SpecError]

    def tenant_records(self) -> dict[str, Tenant]:
        out = {t: s.tenant for t, s in self.actual.items()}
        out.update({t: s.tenant for t, s in self.desired.items()})
        return out

    def post_apply_state(self) -> State:
        """What the database will hold after the plan: the live switches' desired state."""
        state: dict[str, TenantState] = dict(self.actual)
        state.update(self.desired)
        for change in self.plan.changes:
            if change.kind.value == "tenant" and change.after is not None:
                current = state.get(change.tenant)
                if current is not None and isinstance(change.after, Tenant):
                    state[change.tenant] = replace(current, tenant=change.after)
        return state


def _report_spec_errors(errors: list[SpecError], specs: SpecSet) -> None:
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        frozen = ", ".join(sorted(specs.invalid)) or "none"
        click.echo(f"{len(errors)} spec error(s); tenants left untouched: {frozen}", err=True)


@main.command("plan")
@click.option("--tenant", "tenant_filter", metavar="ID", help="Plan one tenant only.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes, 1 error, 2 changes.")
@click.option(
    "--live/--no-live",
    default=True,
    show_default=True,
    help="Also diff reachable FreeSWITCH nodes.",
)
@global_options
@click.pass_context
def plan_command(
    ctx: click.Context,
    /,
    tenant_filter: str | None,
    output: str,
    detailed_exitcode: bool,
    live: bool,
    **_: Any,
) -> None:
    """Show what `pbx apply` would change in the database (and on live switches)."""
    from reconciler.core.render import render_text, to_json

    cfg = resolved(ctx)
    with _database(cfg) as conn:
        prepared = _prepare(cfg, conn, tenant_filter)
    live_reports = _live_preview(cfg, prepared.post_apply_state()) if live else []
    live_changes = any(not r.get("empty", True) for r in live_reports)
    if output == "json":
        payload = to_json(prepared.plan)
        payload["errors"] = [e.to_dict() for e in prepared.errors]
        payload["frozen_tenants"] = sorted(prepared.specs.invalid)
        payload["live"] = live_reports
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(prepared.plan, tenants=prepared.tenant_records()), nl=False)
        for report in live_reports:
            click.echo(_live_text(report), nl=False)
    _report_spec_errors(prepared.errors, prepared.specs)
    if prepared.errors:
        sys.exit(1)
    has_changes = not prepared.plan.empty or live_changes
    sys.exit(2 if detailed_exitcode and has_changes else 0)


def _live_preview(cfg: ResolvedSettings, state: State) -> list[dict[str, Any]]:
    """Per node: the callcenter commands a reconcile would send (unreachable nodes say so)."""
    from reconciler.live.nodes import NodeSpecError, parse_node_specs

    try:
        nodes = parse_node_specs(cfg["freeswitch"])
    except NodeSpecError as exc:
        raise click.UsageError(str(exc)) from exc
    return asyncio.run(_preview_nodes(nodes, state))


async def _preview_nodes(nodes: Any, state: State) -> list[dict[str, Any]]:
    from reconciler.live import desired_live, managed_domains
    from reconciler.live.nodes import LiveReconciler

    live = LiveReconciler(nodes)
    reports = await live.plan_only(desired_live(state), managed_domains(state), connect_timeout=2.0)
    out: list[dict[str, Any]] = []
    for report in reports:
        entry: dict[str, Any] = {"node": report.node, "connected": report.connected}
        if report.errors:
            entry["error"] = "; ".join(report.errors)
        changes = report.plan.changes if report.plan is not None else ()
        entry["changes"] = [
            {"symbol": c.action.value, **c.to_dict(), "key": c.name} for c in changes
        ]
        entry["unmanaged"] = list(report.unmanaged)
        entry["empty"] = not changes
        out.append(entry)
    return out


def _live_text(report: dict[str, Any]) -> str:
    node = report.get("node", "?")
    if report.get("error"):
        return f"\nnode {node}: not reachable ({report['error']}); live state not compared\n"
    lines = [f"\nnode {node}: mod_callcenter"]
    for change in report.get("changes", []):
        lines.append(
            f"  {change['symbol']} {change['kind']} {change['key']}: {'; '.join(change['commands'])}"
        )
    if report.get("unmanaged"):
        lines.append(f"  (unmanaged, left alone: {', '.join(report['unmanaged'])})")
    if len(lines) == 1:
        lines.append("  no changes")
    return "\n".join(lines) + "\n"


@main.command("apply")
@click.option("--tenant", "tenant_filter", metavar="ID", help="Apply one tenant only.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (automation).")
@global_options
@click.pass_context
def apply_command(ctx: click.Context, /, tenant_filter: str | None, yes: bool, **_: Any) -> None:
    """Apply the plan to the database, one transaction per tenant."""
    from reconciler.core.render import render_text
    from reconciler.store import apply_plan, git_revision

    cfg = resolved(ctx)
    with _database(cfg) as conn:
        prepared = _prepare(cfg, conn, tenant_filter)
        _report_spec_errors(prepared.errors, prepared.specs)
        if prepared.plan.empty:
            click.echo("No changes. The database matches the specs.")
            sys.exit(1 if prepared.errors else 0)
        click.echo(render_text(prepared.plan, tenants=prepared.tenant_records()), nl=False)
        if not yes:
            if not sys.stdin.isatty():
                raise click.ClickException(
                    "refusing to apply without --yes: stdin is not a terminal"
                )
            if not click.confirm("Apply these changes?", default=False):
                click.echo("Cancelled; nothing applied.")
                sys.exit(1)
        tenants_dir = Path(cfg["tenants"])
        report = apply_plan(
            conn,
            prepared.plan,
            desired=prepared.desired,
            revision=git_revision(tenants_dir),
            digests={t: prepared.specs.tenants[t].digest for t in prepared.desired},
            frozen=prepared.specs.invalid,
        )
    for tenant_id in report.applied:
        counts = prepared.plan.for_tenant(tenant_id).counts()
        click.echo(f"applied {tenant_id}: {sum(counts.values())} change(s)")
    for tenant_id in report.unchanged:
        click.echo(f"unchanged {tenant_id}: already at the spec")
    for tenant_id, error in report.failed.items():
        click.echo(f"FAILED {tenant_id}: {error} (rolled back)", err=True)
    click.echo(
        f"Apply complete: {len(report.applied)} tenant(s) applied, "
        f"{len(report.failed)} failed, {len(prepared.specs.invalid)} skipped (invalid spec)."
    )
    sys.exit(0 if report.ok and not prepared.errors else 1)


@main.group()
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
    from reconciler.store import show_credentials

    cfg = resolved(ctx)
    with _database(cfg) as conn:
        creds = show_credentials(conn, tenant, extension)
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
    from reconciler.store import rotate_credentials

    cfg = resolved(ctx)
    with _database(cfg) as conn:
        rotate_credentials(conn, tenant, extension)
    click.echo(
        f"rotated credentials of {extension} in tenant {tenant}; "
        f"`pbx credentials show {tenant} {extension}` prints the new password"
    )


@main.command()
@click.argument("tenant")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@global_options
@click.pass_context
def prune(ctx: click.Context, /, tenant: str, yes: bool, **_: Any) -> None:
    """Archive an orphaned tenant: its schema is renamed, not dropped."""
    from reconciler.store import prune_tenant

    cfg = resolved(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("refusing to prune without --yes: stdin is not a terminal")
        if not click.confirm(f"Archive orphaned tenant {tenant}?", default=False):
            click.echo("Cancelled.")
            sys.exit(1)
    with _database(cfg) as conn:
        archive = prune_tenant(conn, tenant)
    click.echo(f"pruned {tenant}: schema archived as {archive} (data kept, no longer registered)")


# --- render ----------------------------------------------------------------------------


@main.command()
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
def render(
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
    from reconciler.serve.snapshot import build_snapshot
    from reconciler.serve.templating import load_templates
    from reconciler.serve.xmlcurl import answer
    from reconciler.store import read_a1_hashes
    from reconciler.store import read_state as read_db_state

    cfg = resolved(ctx)
    form: dict[str, str] = {"hostname": "pbx-render", "section": section}
    if section == "directory":
        if not domain or not user_id:
            raise click.UsageError("--section directory needs --domain and --user")
        form.update(
            tag_name="domain",
            key_name="name",
            key_value=domain,
            action=action,
            user=user_id,
            domain=domain,
            key="id",
        )
    elif section == "dialplan":
        if not context or not number:
            raise click.UsageError("--section dialplan needs --context and --number")
        form.update(
            {
                "Hunt-Context": context,
                "Caller-Context": context,
                "Hunt-Destination-Number": number,
                "Caller-Destination-Number": number,
            }
        )
        if caller:
            form.update(
                {
                    "variable_user_name": caller,
                    "variable_domain_name": context,
                    "Caller-Username": caller,
                }
            )
    else:
        form.update(tag_name="configuration", key_name="name", key_value=config_name)
        if queue:
            form["CC-Queue"] = queue
    with _database(cfg) as conn:
        snapshot = build_snapshot(read_db_state(conn), read_a1_hashes(conn))
    templates = load_templates(cfg["templates"])
    result = answer(snapshot, form, templates)
    click.echo(result.body, nl=not result.body.endswith("\n"))
    sys.exit(0 if result.result != "not_found" else 1)


# --- run -------------------------------------------------------------------------------


@main.command()
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="xml_curl/health/metrics address [PBX_LISTEN, 127.0.0.1:8080].",
)
@click.option(
    "--xml-curl-auth",
    metavar="USER:PASS",
    help="Basic auth FreeSWITCH must send [PBX_XML_CURL_AUTH].",
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
    "--state-dir",
    type=click.Path(path_type=Path),
    help="Persisted snapshot and embedded DB [PBX_STATE_DIR].",
)
@global_options
@click.pass_context
def run(ctx: click.Context, /, **_: Any) -> None:
    """The daemon: watch specs, reconcile PostgreSQL and FreeSWITCH, serve xml_curl."""
    from reconciler.cli.settings import parse_credentials, parse_host_port
    from reconciler.core import logs
    from reconciler.daemon.app import DaemonConfig, default_state_dir, run_daemon
    from reconciler.live.nodes import NodeSpecError, parse_node_specs

    cfg = resolved(ctx)
    logs.configure(cfg["log_format"])
    try:
        host, port = parse_host_port(cfg["listen"])
        auth = parse_credentials(cfg["xml_curl_auth"])
        nodes = parse_node_specs(cfg["freeswitch"])
    except (SettingsError, NodeSpecError) as exc:
        raise click.UsageError(str(exc)) from exc
    state_dir = Path(cfg["state_dir"]) if cfg["state_dir"] else default_state_dir()
    config = DaemonConfig(
        tenants_dir=Path(cfg["tenants"]),
        database_url=cfg["database_url"],
        listen_host=host,
        listen_port=port,
        xml_curl_auth=auth,
        nodes=nodes,
        interval=float(cfg["interval"]),
        templates_dir=Path(cfg["templates"]) if cfg["templates"] else None,
        state_dir=state_dir,
        git_url=cfg["git_url"],
        git_branch=cfg["git_branch"],
        git_poll=float(cfg["git_poll"]),
    )
    for name, described in cfg.describe().items():
        logs.event(
            logging.getLogger("reconciler.cli.settings"), "setting", name=name, value=described
        )
    sys.exit(run_daemon(config))


# --- status ----------------------------------------------------------------------------


@main.command()
@click.option("--url", help="Daemon base URL [PBX_STATUS_URL; default http://<listen>].")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@global_options
@click.pass_context
def status(ctx: click.Context, /, url: str | None, output: str, **_: Any) -> None:
    """Readable view of a running daemon's /status."""
    import urllib.error
    import urllib.request

    cfg = resolved(ctx, status_url=url)
    base = cfg["status_url"] or f"http://{cfg['listen']}"
    target = base.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(target, timeout=5) as response:  # noqa: S310 - operator-given URL
            payload = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        click.echo(f"daemon not reachable at {target}: {exc}", err=True)
        sys.exit(1)
    if output == "json":
        click.echo(json.dumps(payload, indent=2))
    else:
        from reconciler.cli.status_view import render_status

        click.echo(render_status(payload), nl=False)


def run_main() -> None:
    # pgserver's platformdirs warns about XDG_RUNTIME_DIR on servers; it is harmless noise
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    main(prog_name="pbx")


if __name__ == "__main__":  # pragma: no cover
    run_main()

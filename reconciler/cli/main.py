"""The ``pbx`` command: thin click wrappers that parse, call, print and set the exit code.

Names, flags, environment variables and exit codes follow ``shared/INTERFACE.md``. Global
options are accepted before or after the command name (``pbx --tenants x plan`` and
``pbx plan --tenants x``); see ``reconciler.cli.settings`` for the precedence. Each command
lives in the module of its concern; this one only assembles the group.
"""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli.credentials import credentials, prune
from reconciler.cli.daemon import run, serve, status
from reconciler.cli.node_config import node_config
from reconciler.cli.options import global_options
from reconciler.cli.passes import apply_command, plan_command
from reconciler.cli.specs import schema, validate
from reconciler.cli.users import users
from reconciler.cli.xml_answer import xml_answer


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(package_name="pbx-reconciler")
def main(**_: Any) -> None:
    """Declarative reconciler for a multi-tenant FreeSWITCH PBX."""


for command in (
    validate,
    schema,
    plan_command,
    apply_command,
    credentials,
    prune,
    xml_answer,
    node_config,
    run,
    serve,
    status,
    users,
):
    main.add_command(command)


def run_main() -> None:
    main(prog_name="pbx")


if __name__ == "__main__":  # pragma: no cover
    run_main()

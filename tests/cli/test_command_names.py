"""The command names scripts and runbooks depend on (the CLI contract): renaming one breaks
them, so each is checked here; new commands may be added freely."""

from __future__ import annotations

import click
from click.testing import CliRunner

from reconciler.cli.main import main

# as INTERFACE.md names them (`credentials` has `show` and `rotate`)
CONTRACT = (
    "validate",
    "schema",
    "plan",
    "apply",
    "credentials",
    "prune",
    "render",
    "run",
    "status",
)


def test_every_command_the_contract_names_exists() -> None:
    assert isinstance(main, click.Group)
    missing = [name for name in CONTRACT if name not in main.commands]
    assert missing == []
    credentials = main.commands["credentials"]
    assert isinstance(credentials, click.Group)
    assert {"show", "rotate"} <= set(credentials.commands)


def test_render_takes_the_sections_the_contract_names() -> None:
    result = CliRunner().invoke(main, ["render", "--help"])
    assert result.exit_code == 0, result.output
    assert "directory|dialplan|configuration" in result.output

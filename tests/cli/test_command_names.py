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


def test_serve_is_a_command_beside_the_contract() -> None:
    """`pbx serve` (the data plane alone) is new: added, nothing of the contract renamed.
    It takes the xml_curl options of `pbx run` under the same names."""
    assert "serve" in main.commands and "serve" not in CONTRACT
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--listen", "--xml-curl-workers", "--xml-curl-auth", "--status-listen",
                   "--status-auth", "--xml-curl-hang-timeout", "--state-dir", "--database-url"):  # fmt: skip
        assert option in result.output, option
    for option in ("--interval", "--git-url", "--portal-listen"):  # no passes, no portal
        assert option not in result.output, option

"""``pbx`` imports a command's module only when that command runs: ``pbx run`` and ``pbx
serve`` spawn their xml_curl workers before the planner, the store and the portal are
loaded (issue 17), and every command is still there, under its name."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from reconciler.cli.main import COMMANDS, LazyCommands, main

HEAVY = (
    "reconciler.cli.passes",
    "reconciler.cli.node_config",
    "reconciler.cli.xml_answer",
    "reconciler.cli.credentials",
    "reconciler.reconcile",
    "reconciler.store",
    "reconciler.switch.session",
    "reconciler.switch.callcenter",
    "reconciler.web.server",
    "specs_schema.models",
    "pydantic",
    "psycopg",
    "aiohttp",
    "jinja2",
)


def _loaded_after(code: str) -> set[str]:
    probe = code + ";import json, sys;print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("name", ["run", "serve"])
def test_the_daemon_commands_load_without_the_control_plane(name: str) -> None:
    loaded = _loaded_after(
        "from reconciler.cli.main import main;"
        f"import click;c = main.get_command(click.Context(main), {name!r});assert c is not None"
    )
    assert "reconciler.cli.daemon" in loaded
    assert sorted(m for m in loaded if m.startswith(HEAVY)) == []


def test_every_command_is_listed_and_resolves_to_its_name() -> None:
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name


def test_a_mistyped_command_is_still_suggested() -> None:
    result = CliRunner().invoke(main, ["rn"])
    assert result.exit_code == 2
    assert "No such command 'rn'" in result.output and "'run'" in result.output


def test_the_mapping_refuses_a_module_attribute_that_is_not_the_command() -> None:
    commands = LazyCommands({"run": ("reconciler.cli.daemon", "serve")})
    assert "run" in commands and list(commands) == ["run"] and len(commands) == 1
    with pytest.raises(TypeError):
        commands["run"]
    with pytest.raises(KeyError):
        commands["nope"]
    commands["run"] = main  # an added command replaces the lazy one
    assert commands["run"] is main and len(commands) == 1
    del commands["run"]
    assert "run" not in commands
    with pytest.raises(KeyError):
        del commands["run"]

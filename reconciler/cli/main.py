"""The ``pbx`` command: thin click wrappers that parse, call, print and set the exit code.

Names, flags, environment variables and exit codes follow ``shared/INTERFACE.md``. Global
options are accepted before or after the command name (``pbx --tenants x plan`` and
``pbx plan --tenants x``); see ``reconciler.cli.settings`` for the precedence. Each command
lives in the module of its concern; this one only assembles the group, importing a
command's module when that command is asked for: ``pbx run`` spawns its xml_curl workers
without first loading the planner, the node config's templates and the spec loader.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from reconciler.cli.options import global_options

COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("reconciler.cli.specs", "validate"),
    "schema": ("reconciler.cli.specs", "schema"),
    "plan": ("reconciler.cli.passes", "plan_command"),
    "apply": ("reconciler.cli.passes", "apply_command"),
    "credentials": ("reconciler.cli.credentials", "credentials"),
    "prune": ("reconciler.cli.credentials", "prune"),
    "render": ("reconciler.cli.xml_answer", "xml_answer"),
    "node-config": ("reconciler.cli.node_config", "node_config"),
    "run": ("reconciler.cli.daemon", "run"),
    "serve": ("reconciler.cli.daemon", "serve"),
    "status": ("reconciler.cli.daemon", "status"),
    "users": ("reconciler.cli.users", "users"),
}
"""Every command: its name, then where it is defined (module, attribute)."""


class LazyCommands(MutableMapping[str, click.Command]):
    """``Group.commands`` whose names are known up front and whose commands are imported on
    first lookup; listing the names (``pbx --help`` aside, typo suggestions) imports none."""

    def __init__(self, where: dict[str, tuple[str, str]]) -> None:
        self._where = dict(where)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            module, attribute = self._where[name]  # KeyError: no such command
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != name:
                raise TypeError(f"{module}.{attribute} is not the command {name!r}")
            self._loaded[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._where.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        found = name in self._where or name in self._loaded
        self._where.pop(name, None)
        self._loaded.pop(name, None)
        if not found:
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._where, *self._loaded]))

    def __len__(self) -> int:
        return len(self._where.keys() | self._loaded.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._where or name in self._loaded


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    commands=LazyCommands(COMMANDS),
)
@global_options
@click.version_option(package_name="pbx-reconciler")
def main(**_: Any) -> None:
    """Declarative reconciler for a multi-tenant FreeSWITCH PBX."""


def run_main() -> None:
    main(prog_name="pbx")


if __name__ == "__main__":  # pragma: no cover
    run_main()

"""The portal's database gateway: the store owns psycopg (the portal imports none of it), and
every way the database can be missing reaches the portal as its 503."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

import reconciler.web
from reconciler.store.accounts import read_installation_id
from reconciler.web.db import PortalDb
from reconciler.web.errors import Unavailable

WEB = Path(reconciler.web.__file__).parent


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_portal_module_imports_psycopg() -> None:
    offenders = {
        path.name: sorted(
            n for n in _imported_modules(path) if n.split(".")[0].startswith("psycopg")
        )
        for path in WEB.rglob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("reachable", [False, None])
async def test_an_unreachable_or_unresolved_database_is_unavailable(reachable: bool | None) -> None:
    dsn = None if reachable is None else f"postgresql://nobody@127.0.0.1:{_closed_port()}/none"
    db = PortalDb(lambda: dsn, size=1)
    try:
        with pytest.raises(Unavailable):
            await db.run(read_installation_id)
    finally:
        await db.close()


async def test_store_functions_run_on_the_portals_connections(portal_dsn: str) -> None:
    db = PortalDb(lambda: portal_dsn, size=1)
    try:
        first, again = await db.run(read_installation_id), await db.run(read_installation_id)
    finally:
        await db.close()
    assert first and first == again

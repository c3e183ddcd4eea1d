"""A CLI prints only what its user asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_importing_the_embedded_database_warns_nothing_even_as_root(tmp_path: Path) -> None:
    """platformdirs warns about a world-writable XDG_RUNTIME_DIR (every root shell on many
    servers) when pgserver is imported; no command may print that."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o777)
    runtime.chmod(0o777)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            "from reconciler.store.database import _import_pgserver; _import_pgserver()",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    bare = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import pgserver"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "RuntimeDirWarning" in bare.stderr, "the test must provoke the warning it guards"


def test_a_dsn_without_a_scheme_is_refused_without_quoting_its_password(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reconciler.cli.main import main

    tenants = tmp_path / "tenants.d"
    tenants.mkdir()
    result = CliRunner().invoke(
        main,
        ["plan", "--no-live", "--tenants", str(tenants), "--database-url", "pbx:Hunter2xyz@db/pbx"],
    )
    assert result.exit_code == 1
    assert "not a PostgreSQL connection string" in result.output
    assert "Hunter2xyz" not in result.output
    assert result.exception is None or "Hunter2xyz" not in repr(result.exception)

"""Where the database is, connecting to it, and the git revision recorded with an apply."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

from reconciler.sources.revision import git_revision
from reconciler.store import (
    DATABASE_URL_ENV,
    StoreUnavailable,
    connect,
    database_url,
    migrate,
)


def test_an_explicit_url_beats_the_environment() -> None:
    env = {DATABASE_URL_ENV: "postgresql://env/db"}
    with database_url("postgresql://flag/db", environ=env) as dsn:
        assert dsn == "postgresql://flag/db"
    with database_url(None, environ=env) as dsn:
        assert dsn == "postgresql://env/db"


def test_without_a_url_an_embedded_server_is_started_and_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    with database_url(None, environ={}, data_dir=data_dir) as dsn, connect(dsn) as conn:
        migrate(conn)
        assert conn.execute("SELECT current_database()").fetchone() == ("pbx",)
    assert (data_dir / "PG_VERSION").exists()
    with pytest.raises(StoreUnavailable):
        connect(dsn, connect_timeout=2).close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as excinfo:
        connect(f"postgresql://nobody@127.0.0.1:{_free_port()}/x", connect_timeout=2)
    assert isinstance(excinfo.value.__cause__, psycopg.OperationalError)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def test_the_revision_is_head_and_whether_the_tenants_dir_has_edits(tmp_path: Path) -> None:
    tenants = tmp_path / "repo" / "tenants.d"
    tenants.mkdir(parents=True)
    (tenants / "acme.yaml").write_text("id: acme\n")
    (tmp_path / "repo" / "README").write_text("x\n")
    _git(tmp_path / "repo", "init", "-q")
    _git(tmp_path / "repo", "add", ".")
    _git(tmp_path / "repo", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = subprocess.run(
        ["git", "-C", str(tenants), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    clean = git_revision(tenants)
    assert clean is not None and (clean.commit, clean.dirty) == (head, False)
    (tmp_path / "repo" / "README").write_text("elsewhere\n")
    assert git_revision(tenants) == clean  # edits outside the tenants dir do not count
    (tenants / "beta.yaml").write_text("id: beta\n")
    dirty = git_revision(tenants)
    assert dirty is not None and (dirty.commit, dirty.dirty) == (head, True)
    assert str(dirty) == f"{head}-dirty"


def test_outside_a_git_work_tree_there_is_no_revision(tmp_path: Path) -> None:
    assert git_revision(tmp_path) is None
    assert git_revision(tmp_path / "missing") is None

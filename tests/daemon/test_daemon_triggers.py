"""Daemon triggers beyond file edits: a git source (newest commit wins, a broken commit never
blocks a fixed one), SIGHUP, and `pbx status` reading /status."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.cli.status_view import render_status
from reconciler.daemon.root import DaemonConfig
from tests.daemon.test_daemon import (
    ACME,
    AUTH,
    eventually,
    free_port,
    get_status,
    lookup,
    running,
    spawn_daemon,
    wait_first_pass,
)


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A repository with tenants.d/acme.yaml on branch main."""
    repo = tmp_path / "origin"
    (repo / "tenants.d").mkdir(parents=True)
    (repo / "tenants.d" / "acme.yaml").write_text(ACME)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "acme")
    return repo


def commit(repo: Path, text: str, message: str) -> None:
    (repo / "tenants.d" / "acme.yaml").write_text(text)
    git(repo, "commit", "-q", "-am", message)


async def test_git_source_applies_the_newest_commit(
    tmp_path: Path, origin: Path, pg_dsn: str
) -> None:
    port = free_port()
    config = DaemonConfig(
        tenants_dir=Path("tenants.d"),
        database_url=pg_dsn,
        listen_port=port,
        xml_curl_auth=AUTH,
        interval=3600,
        state_dir=tmp_path / "state",
        install_signal_handlers=False,
        git_url=f"file://{origin}",
        git_branch="main",
        git_poll=0.2,
        leader_poll=0.2,
    )
    async with running(config) as daemon:

        async def served(user: str) -> bool:
            return f'<user id="{user}"' in await lookup(port, "acme.example.com", user)

        await eventually(lambda: served("1001"), "the first commit applied")
        broken = ACME.replace("name: Acme\n", "name: Acme\ncolour: red\n").replace(
            "name: Bob}", 'name: Bob}\n  - {number: "1003", name: Cy}'
        )
        commit(origin, broken, "broken")
        await eventually(
            lambda: _async(
                daemon.status_payload()["tenants"].get("acme", {}).get("last_error") or ""
            ),
            "the broken commit reported",
        )
        assert not await served("1003"), "nothing of a broken commit is applied"
        fixed = ACME.replace("name: Bob}", 'name: Bob}\n  - {number: "1004", name: Di}')
        commit(origin, fixed, "fixed")
        await eventually(lambda: served("1004"), "the newer, fixed commit applied")
        head = git(origin, "rev-parse", "HEAD")
        await eventually(
            lambda: _async(
                daemon.status_payload()["tenants"]["acme"]["last_applied_revision"] == head
            ),
            "the applied revision recorded",
        )


async def _async(value: object) -> bool:
    return bool(value)


@pytest.mark.usefixtures("default_ports_taken")
def test_sighup_triggers_a_full_pass(tmp_path: Path, pg_dsn: str) -> None:
    """Out of process: SIGHUP reaches the daemon's own handler (no crash, a new full pass)."""
    tenants = tmp_path / "tenants.d"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(ACME)
    port = free_port()
    proc = spawn_daemon(tmp_path, tenants, pg_dsn, port)
    try:
        first = wait_first_pass(port)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        later = first
        while time.monotonic() < deadline and "sighup" not in later["last_pass"]["trigger"]:
            time.sleep(0.1)
            later = get_status(port)
        assert "sighup" in later["last_pass"]["trigger"]
        assert later["last_pass"]["result"] == "ok"
        assert proc.poll() is None, "still running after SIGHUP"

        result = CliRunner().invoke(main, ["status", "--url", f"http://127.0.0.1:{port}"])
        assert result.exit_code == 0
        assert "role: leader" in result.stdout
        assert "acme" in result.stdout and "acme.example.com" in result.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_status_view_renders_nodes_and_errors() -> None:
    text = render_status(
        {
            "role": "follower",
            "ready": True,
            "database_up": False,
            "snapshot": {"generation": "abc", "users": 3},
            "tenants": {
                "beta": {
                    "domain": "beta.example.com",
                    "status": "active",
                    "last_error": "invalid spec",
                }
            },
            "nodes": [
                {
                    "node": "10.0.0.1:8021",
                    "connected": False,
                    "drift_repaired": 2,
                    "errors": ["refused"],
                }
            ],
        }
    )
    assert "role: follower" in text and "database: down" in text
    assert "beta.example.com" in text and "invalid spec" in text
    assert "10.0.0.1:8021" in text and "refused" in text

"""The git source: newest commit wins, and credentials in the URL reach neither an argument
list, nor the work tree's config, nor a log line."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.settings import resolve
from reconciler.core.logs import redact
from reconciler.sources.git import GitRemote, GitSource, GitSourceStopped
from tests.daemon.test_daemon import free_port

TOKEN = "ghp_S3cretT0kenValue"


def make_repo(path: Path) -> Path:
    path.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (path / "acme.yaml").write_text("id: acme\n")
    run("add", ".")
    run("-c", "user.email=t@example.net", "-c", "user.name=t", "commit", "-q", "-m", "one")
    return path


def test_the_remote_url_loses_its_credentials_and_keeps_them_apart() -> None:
    remote = GitRemote.parse(f"https://deploy:{TOKEN}@git.example.net/ops/specs.git")
    assert remote.url == "https://git.example.net/ops/specs.git"
    assert (remote.username, remote.password) == ("deploy", TOKEN)
    assert TOKEN not in remote.masked() and "(sensitive)@git.example.net" in remote.masked()
    assert GitRemote.parse("git@host:ops/specs.git").url == "git@host:ops/specs.git"


def test_credentials_never_reach_argv_config_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo(tmp_path / "repo")
    url = f"file://deploy:{TOKEN}@{repo}"
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_popen = subprocess.Popen

    def spy(args: list[str], **kwargs: Any) -> Any:
        seen.append((list(args), dict(kwargs.get("env") or {})))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    caplog.set_level(logging.DEBUG)
    source = GitSource(url, "main", tmp_path / "work")
    assert source.sync() is True
    assert source.sync() is False
    assert seen and all(TOKEN not in " ".join(argv) for argv, _ in seen)
    assert any(env.get("PBX_GIT_PASSWORD") == TOKEN for _, env in seen)
    assert TOKEN not in (tmp_path / "work" / ".git" / "config").read_text()
    assert TOKEN not in caplog.text
    assert redact(f"oops {TOKEN}") == "oops (sensitive)"


def test_start_up_settings_show_the_git_url_without_its_token() -> None:
    described = resolve({"git_url": f"https://deploy:{TOKEN}@git.example.net/specs.git"}).describe()
    assert TOKEN not in described["git_url"]
    assert "git.example.net/specs.git" in described["git_url"]


# A git that hangs like a fetch on a dead network: it ignores SIGTERM (so does the helper it
# starts, as git-remote-https would be) and writes both process ids beside itself (git runs
# with a minimal environment).
HANGING_GIT = """#!/bin/sh
trap '' TERM
sleep 600 &
echo "$$ $!" >> "$(dirname "$0")/git.pids"
wait
"""


@pytest.fixture
def hanging_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PATH starts with a directory whose ``git`` hangs; returns the file of its pids."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.write_text(HANGING_GIT)
    git.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    pids = bin_dir / "git.pids"
    yield pids
    if pids.exists():  # a failed test must not leave the fake behind
        for pid in (int(p) for p in pids.read_text().split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def started_pids(pids: Path) -> list[int]:
    for _ in range(600):
        if pids.exists() and pids.read_text().strip():
            return [int(p) for p in pids.read_text().split()]
        time.sleep(0.05)
    pytest.fail("the fake git never started")


def assert_gone(pids: list[int]) -> None:
    """Every process is gone (a killed, re-parented helper is reaped by init shortly)."""
    for _ in range(200):
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail(f"processes still running: {alive}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and ") Z " in stat.read_text())  # a zombie has ended


def test_stop_ends_a_hanging_git_and_its_helpers(tmp_path: Path, hanging_git: Path) -> None:
    source = GitSource("https://git.example.net/specs.git", "main", tmp_path / "work", grace=0.2)
    failures: list[BaseException] = []

    def sync() -> None:
        try:
            source.sync()
        except BaseException as exc:  # handed to the test thread
            failures.append(exc)

    worker = threading.Thread(target=sync)
    worker.start()
    pids = started_pids(hanging_git)
    source.stop()
    worker.join(30)
    assert not worker.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], GitSourceStopped)
    assert_gone(pids)
    with pytest.raises(GitSourceStopped):
        source.sync()  # no git starts after stop


def test_sigterm_ends_the_daemon_and_its_hanging_git_fetch(
    tmp_path: Path, hanging_git: Path, pg_dsn: str
) -> None:
    """systemd's SIGTERM must not wait for git's own 120 s timeout."""
    env = {
        **os.environ,
        "PBX_DATABASE_URL": pg_dsn,
        "PBX_FREESWITCH": "127.0.0.1:1:ClueCon",
        "PBX_PORTAL": "off",
        "PBX_GIT_URL": "https://git.example.net/specs.git",
    }
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{free_port()}"]
    command += ["--tenants", "tenants.d", "--state-dir", str(tmp_path / "state")]
    command += ["--status-listen", f"127.0.0.1:{free_port()}"]
    daemon = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        pids = started_pids(hanging_git)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert_gone(pids)

"""The git source: newest commit wins, and credentials in the URL reach neither an argument
list, nor the work tree's config, nor a log line."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.settings import resolve
from reconciler.core.logs import redact
from reconciler.sources.git import GitRemote, GitSource

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
    real_run = subprocess.run

    def spy(args: list[str], **kwargs: Any) -> Any:
        seen.append((list(args), dict(kwargs.get("env") or {})))
        return real_run(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
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

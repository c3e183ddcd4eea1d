"""An optional git source: fetch a branch into a local work tree the daemon reads specs from.

Always the newest commit of the branch is checked out, so a commit with a broken spec never
blocks a newer one: its tenants stay frozen until the next commit fixes them.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from reconciler.core.errors import Transient
from reconciler.core.logs import event

log = logging.getLogger(__name__)


class GitSourceError(Transient):
    """git failed; the message carries git's stderr (URLs with credentials are masked)."""


class GitSource:
    def __init__(self, url: str, branch: str, workdir: Path, *, timeout: float = 120.0) -> None:
        self.url = url
        self.branch = branch
        self.workdir = workdir
        self.timeout = timeout
        self.commit: str | None = None

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitSourceError(f"git {args[0]} failed: {exc}") from exc
        if done.returncode != 0:
            raise GitSourceError(f"git {args[0]} failed: {_mask(done.stderr.strip(), self.url)}")
        return done.stdout.strip()

    def sync(self) -> bool:
        """Fetch and check out the branch's newest commit; True when the commit changed."""
        if not (self.workdir / ".git").is_dir():
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            self._git(
                "clone",
                "--quiet",
                "--branch",
                self.branch,
                "--single-branch",
                self.url,
                str(self.workdir),
            )
        else:
            self._git("fetch", "--quiet", "origin", self.branch, cwd=self.workdir)
            self._git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=self.workdir)
            self._git("clean", "--quiet", "-fdx", cwd=self.workdir)
        commit = self._git("rev-parse", "HEAD", cwd=self.workdir)
        changed = commit != self.commit
        if changed:
            event(log, "git source updated", branch=self.branch, commit=commit)
        self.commit = commit
        return changed


def _mask(text: str, url: str) -> str:
    if "@" in url and "://" in url:
        _scheme, rest = url.split("://", 1)
        userinfo, _, _host = rest.rpartition("@")
        if userinfo:
            text = text.replace(userinfo, "(sensitive)")
    return text

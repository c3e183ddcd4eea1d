"""Which git revision the spec directory is at (outside a git work tree there is none)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.core.revision import GitRevision


def git_revision(directory: Path | str) -> GitRevision | None:
    """HEAD of the work tree holding ``directory`` and whether files under it differ from
    HEAD (untracked ones included); None outside a git work tree or without git."""
    path = Path(directory)
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    if not head:
        return None
    return GitRevision(commit=head, dirty=bool(status.strip()))

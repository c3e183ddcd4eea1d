"""The git revision the tenant specs were read at, recorded with every apply.

Deciding "which commit produced this database state" needs no more than the commit id and
whether the tenants directory had uncommitted edits; outside a git work tree there is none.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class GitRevision:
    commit: str
    dirty: bool

    def __str__(self) -> str:
        return self.commit + ("-dirty" if self.dirty else "")


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

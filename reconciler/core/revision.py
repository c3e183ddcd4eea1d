"""The git revision the tenant specs were read at: recorded with every apply, shown in status.

Deciding "which commit produced this database state" needs no more than the commit id and
whether the tenants directory had uncommitted edits. Reading it is ``reconciler.sources``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GitRevision:
    commit: str
    dirty: bool

    def __str__(self) -> str:
        return self.commit + ("-dirty" if self.dirty else "")

"""Which database a value belongs to: a record shared by the store (which reads it) and
the served snapshot's file (which records it, so it is never served against another
database). See ``reconciler.store.identity`` for how it is read and why three facts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DatabaseIdentity:
    """Equal only for the same database of the same cluster installation."""

    system_identifier: str  # pg_control_system(): a 64-bit number, kept as text for JSON
    database: str
    installation_id: str  # UUID of pbx.installation

    def as_dict(self) -> dict[str, str]:
        return {
            "system_identifier": self.system_identifier,
            "database": self.database,
            "installation_id": self.installation_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DatabaseIdentity:
        """Inverse of ``as_dict``; ``ValueError`` for anything else."""
        values = [data.get(name) for name in ("system_identifier", "database", "installation_id")]
        if not all(isinstance(v, str) and v for v in values):
            raise ValueError("incomplete database identity")
        return cls(*values)  # type: ignore[arg-type]

    def difference(self, other: DatabaseIdentity) -> str | None:
        """What tells ``other`` apart (for messages), or None when they are the same."""
        if self.system_identifier != other.system_identifier:
            return "another PostgreSQL cluster (system identifier differs)"
        if self.database != other.database:
            return f"database {other.database!r}, not {self.database!r}"
        if self.installation_id != other.installation_id:
            return "another installation of this database (re-created or restored)"
        return None

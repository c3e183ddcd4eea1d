"""What every persisted snapshot generation promises, shared by its writer and readers:
the identity binding, the atomic private write, and the errors a caller acts on. The
format itself is ``reconciler.serve.generation`` (the one file the control plane writes,
start-up maps and the xml_curl workers follow).

A persisted generation is only ever served against the database it was built from. The
file records that database's identity (``reconciler.store.identity``) and the fingerprint of
the DSN it was reached by; ``check_belongs`` lets it be served only when

* the database is reachable and its identity equals the recorded one, or
* the database is unreachable at start (``expected_identity=None``) and the DSN the daemon is
  configured with has the recorded fingerprint;

otherwise it raises ``SnapshotMismatch`` saying why.

The rule for writing: a generation with no user never replaces a file that holds users of
the same database, unless the caller says the database really serves no user
(``allow_empty=True``). A cold start or a half-read state must not wipe the last good view;
a file of another database is worthless here and is replaced. Refusals and write failures
raise ``SnapshotNotPersisted`` (a ``Transient``): serving goes on, and the daemon turns the
error into /readyz detail and ``pbx_snapshot_persist_failures_total``.

Until this version the daemon also wrote ``snapshot.json`` (a JSON body of the same
records); it is no longer written or read (``LEGACY_SNAPSHOT_FILE``: removed at start).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import Permanent, Transient
from reconciler.core.identity import DatabaseIdentity

HEADER_MAX_BYTES = 64 * 1024
LEGACY_SNAPSHOT_FILE = "snapshot.json"


class SnapshotError(Permanent):
    """A snapshot file that cannot be read back (missing, corrupt, unknown format)."""


class SnapshotMismatch(SnapshotError):
    """The file is readable but belongs to another database (or to none we can tell)."""


class SnapshotNotPersisted(Transient):
    """The served snapshot is not on disk: a write failed, the file is as before."""


class EmptySnapshotRefused(SnapshotNotPersisted):
    """An empty snapshot would have replaced a file holding users of the same database."""


@dataclass(frozen=True, slots=True)
class PersistStatus:
    """Whether what is served is also on disk: for /readyz (never a readiness failure:
    xml_curl keeps serving) and the daemon's metrics."""

    persisted: bool
    persisted_at: float | None = None  # unix time of the last successful write
    detail: str = ""

    def failed(self, detail: str) -> PersistStatus:
        """This status after a failed write: the last good write time is kept."""
        return PersistStatus(False, self.persisted_at, detail)


def write_atomically(target: Path, payload: bytes | Sequence[bytes | bytearray]) -> None:
    """``payload``: the bytes, or their pieces in order (written one after the other, never
    joined in memory). Mode 0600 (the file holds A1 hashes): a temporary file in the same directory, fsync,
    rename over ``target``, fsync the directory. A crash leaves the old file or the new
    one, never a torn one."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as tmp:
            for piece in (payload,) if isinstance(payload, bytes) else payload:
                tmp.write(piece)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_belongs(
    identity: DatabaseIdentity | None,
    fingerprint: str | None,
    path: object,
    expected_identity: DatabaseIdentity | None,
    dsn_fingerprint: str,
) -> None:
    """The identity binding (module docstring): raises ``SnapshotMismatch`` unless a file
    recording ``identity``/``fingerprint`` may be served."""
    if identity is None:
        raise SnapshotMismatch(
            f"{path} was written by a version that did not record its database: ignored"
        )
    if expected_identity is not None:
        difference = identity.difference(expected_identity)
        if difference is not None:
            raise SnapshotMismatch(f"{path} was written for another database: now {difference}")
    elif fingerprint != dsn_fingerprint:
        raise SnapshotMismatch(
            f"{path} was written for {fingerprint}, not {dsn_fingerprint}, and the "
            "database cannot be asked which it is"
        )

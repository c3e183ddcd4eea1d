"""The snapshot on disk: what a restart serves before (or without) PostgreSQL.

A persisted snapshot is only ever served against the database it was built from. The file
records that database's identity (``reconciler.store.identity``) and the fingerprint of the
DSN it was reached by; ``load_snapshot`` hands the snapshot back only when

* the database is reachable and its identity equals the recorded one, or
* the database is unreachable at start (``expected_identity=None``) and the DSN the daemon is
  configured with has the recorded fingerprint;

otherwise it raises ``SnapshotMismatch`` saying why. A file written before identities were
recorded is a mismatch too: there is no telling which database it came from.

The rule for writing (``save_snapshot``): a snapshot with no user never replaces a file that
holds users of the same database, unless the caller says the database really serves no user
(``allow_empty=True``: built from a complete read in which every tenant is suspended, say).
A cold start or a half-read state must not wipe the last good view; a file of another
database is worthless here and is replaced. Refusals and write failures raise
``SnapshotNotPersisted`` (a ``Transient``): serving goes on from memory, and the daemon turns
the error into /readyz detail and ``pbx_snapshot_persist_failures_total``.

File format (version 2): line 1 a small JSON header (format, version, generation, identity,
DSN fingerprint, counts), so the identity is checked and an overwrite judged without parsing
100k users; line 2 the body, rows as positional lists whose columns are named once.

Neighbours: ``reconciler.serve.snapshot`` (the records), ``reconciler.store.identity``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.core.errors import Permanent, Transient
from reconciler.core.gcpause import gc_paused
from reconciler.core.identity import DatabaseIdentity
from reconciler.serve.snapshot import (
    DidRoute,
    DirectoryUser,
    QueueConfig,
    Route,
    RouteKind,
    ServedTenant,
    Snapshot,
)

SNAPSHOT_FORMAT = "pbx-reconciler/snapshot"
SNAPSHOT_VERSION = 2
HEADER_MAX_BYTES = 64 * 1024
_LEGACY = re.compile(rb'^\{"format":\s*"pbx-reconciler/snapshot",\s*"version":\s*1\b')


class SnapshotError(Permanent):
    """A snapshot file that cannot be read back (missing, corrupt, unknown format)."""


class SnapshotMismatch(SnapshotError):
    """The file is readable but belongs to another database (or to none we can tell)."""


class SnapshotNotPersisted(Transient):
    """The served snapshot is not on disk: a write failed, the file is as before."""


class EmptySnapshotRefused(SnapshotNotPersisted):
    """An empty snapshot would have replaced a file holding users of the same database."""


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """Line 1 of the file. ``identity``/``dsn_fingerprint`` are None in a legacy file."""

    version: int
    generation: str
    identity: DatabaseIdentity | None
    dsn_fingerprint: str | None
    users: int
    written_at: float | None = None  # unix time


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


# --- writing -----------------------------------------------------------------------------


def save_snapshot(
    snapshot: Snapshot,
    path: str | os.PathLike[str],
    *,
    identity: DatabaseIdentity,
    dsn_fingerprint: str,
    allow_empty: bool = False,
) -> PersistStatus:
    """Write atomically with mode 0600 (the file holds A1 hashes): a temporary file in the
    same directory, fsync, rename over ``path``, fsync the directory. A crash leaves the old
    file or the new one, never a torn one. Raises ``EmptySnapshotRefused`` or
    ``SnapshotNotPersisted`` (see the module docstring); the old file is then untouched."""
    target = Path(path)
    users = snapshot.user_count
    if users == 0 and not allow_empty:
        _refuse_to_empty(target, identity)
    header = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "generation": snapshot.generation,
        "written_at": time.time(),
        "identity": identity.as_dict(),
        "dsn_fingerprint": dsn_fingerprint,
        "counts": snapshot.counts(),
    }
    with gc_paused():
        body = json.dumps(snapshot_to_json(snapshot), separators=(",", ":"), ensure_ascii=False)
    payload = json.dumps(header, separators=(",", ":")) + "\n" + body + "\n"
    try:
        write_atomically(target, payload.encode("utf-8"))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SnapshotNotPersisted(f"snapshot not written to {target}: {reason}") from exc
    return PersistStatus(True, time.time(), f"{users} users written to {target}")


def _refuse_to_empty(target: Path, identity: DatabaseIdentity) -> None:
    try:
        header = read_snapshot_header(target)
    except SnapshotError:
        return  # nothing usable to protect
    if header.identity == identity and header.users > 0:
        raise EmptySnapshotRefused(
            f"kept {target}: it holds {header.users} users of this database and the new "
            "snapshot none (allow_empty when the database really serves no user)"
        )


def write_atomically(target: Path, payload: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
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


# --- reading -----------------------------------------------------------------------------


def load_snapshot(
    path: str | os.PathLike[str],
    *,
    expected_identity: DatabaseIdentity | None = None,
    dsn_fingerprint: str,
    freeze: bool = False,
) -> Snapshot:
    """The persisted snapshot, if it belongs to this database (see the module docstring):
    pass ``expected_identity`` whenever the database is reachable. Raises
    ``SnapshotMismatch`` or ``SnapshotError``. ``freeze`` as for ``build_snapshot``."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    head, _, body = raw.partition(b"\n")
    header = _parse_header(head, path)
    check_belongs(header.identity, header.dsn_fingerprint, path, expected_identity, dsn_fingerprint)
    with gc_paused(freeze):
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise SnapshotError(f"snapshot {path} is not valid JSON: {exc}") from exc
        return snapshot_from_json(data, generation=header.generation)


def read_snapshot_header(path: str | os.PathLike[str]) -> SnapshotHeader:
    """Line 1 only (cheap at any size): which database and how many users a file holds."""
    try:
        with open(path, "rb") as file:
            head = file.readline(HEADER_MAX_BYTES)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    return _parse_header(head.rstrip(b"\n"), path)


def _parse_header(head: bytes, path: object) -> SnapshotHeader:
    if _LEGACY.match(head):
        return SnapshotHeader(1, "", None, None, 0)
    try:
        data = json.loads(head)
    except ValueError as exc:
        raise SnapshotError(f"{path} is not a pbx-reconciler snapshot") from exc
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path} is not a pbx-reconciler snapshot")
    if data.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"{path}: unsupported snapshot version {data.get('version')!r}")
    try:
        identity = DatabaseIdentity.from_dict(data["identity"])
        fingerprint = data["dsn_fingerprint"]
        users = data["counts"]["users"]
        written_at = data.get("written_at")
        if not isinstance(fingerprint, str) or not isinstance(users, int):
            raise TypeError("fingerprint or counts of the wrong type")
        return SnapshotHeader(
            SNAPSHOT_VERSION,
            str(data["generation"]),
            identity,
            fingerprint,
            users,
            float(written_at) if isinstance(written_at, int | float) else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"{path}: corrupt snapshot header: {exc!r}") from exc


def check_belongs(
    identity: DatabaseIdentity | None,
    fingerprint: str | None,
    path: object,
    expected_identity: DatabaseIdentity | None,
    dsn_fingerprint: str,
) -> None:
    """The identity binding (module docstring), shared with ``serve.generation``: raises
    ``SnapshotMismatch`` unless a file recording ``identity``/``fingerprint`` may be served."""
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


# --- the body ----------------------------------------------------------------------------


def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The body: served data only, rows as positional lists under named columns."""
    return {
        "columns": {
            "user": list(DirectoryUser._fields),
            "route": list(Route._fields),
            "did": list(DidRoute._fields),
        },
        "tenants": [
            {
                "id": t.id,
                "domain": t.domain,
                "outbound_caller_id_name": t.outbound_caller_id_name,
                "outbound_caller_id_number": t.outbound_caller_id_number,
                "users": [list(u) for u in t.users.values()],
                "routes": [list(r) for r in t.routes.values()],
            }
            for t in snapshot.tenants.values()
        ],
        "dids": [list(d) for d in snapshot.dids.values()],
        "queues": [
            {"name": q.name, "tenant_id": q.tenant_id, "params": [list(p) for p in q.params]}
            for q in snapshot.queues.values()
        ],
        "problems": list(snapshot.problems),
    }


def snapshot_from_json(data: Any, *, generation: str = "") -> Snapshot:
    """Inverse of ``snapshot_to_json``; any deviation raises ``SnapshotError``."""
    try:
        columns = data["columns"]
        if (
            columns["user"] != list(DirectoryUser._fields)
            or columns["route"] != list(Route._fields)
            or columns["did"] != list(DidRoute._fields)
        ):
            raise SnapshotError("snapshot columns do not match this version")
        tenants = {t["domain"]: _tenant_from_json(t) for t in data["tenants"]}
        dids = {row[0]: DidRoute._make(row) for row in data["dids"]}
        queues = {
            q["name"]: QueueConfig(q["name"], q["tenant_id"], tuple((k, v) for k, v in q["params"]))
            for q in data["queues"]
        }
        return Snapshot(
            generation=generation,
            tenants=MappingProxyType(tenants),
            dids=MappingProxyType(dids),
            queues=MappingProxyType(queues),
            problems=tuple(data.get("problems", ())),
        )
    except SnapshotError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"corrupt snapshot: {exc!r}") from exc


def _tenant_from_json(t: dict[str, Any]) -> ServedTenant:
    users = {}
    for row in t["users"]:
        user = DirectoryUser._make([*row[:6], tuple(row[6]), *row[7:]])
        users[user.number] = user
    routes = {}
    for row in t["routes"]:
        route = Route._make([RouteKind(row[0]), *row[1:]])
        routes[route.number] = route
    return ServedTenant(
        id=t["id"],
        domain=t["domain"],
        outbound_caller_id_name=t["outbound_caller_id_name"],
        outbound_caller_id_number=t["outbound_caller_id_number"],
        users=MappingProxyType(users),
        routes=MappingProxyType(routes),
    )

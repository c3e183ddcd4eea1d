"""A snapshot generation: the served view as one immutable file, the only one persisted.

The control plane writes a generation whenever the applied state changes
(``write_generation``); it maps the file back to serve from it (``open_generation``), at
start-up too (a restart serves the persisted generation in milliseconds, whatever its
size), and so do xml_curl workers (``reconciler.dataplane``) and ``pbx serve``: lookups
read records in place, a process's heap holds only what it is answering, and every
process shares the file's pages through the page cache.

Why a purpose-built index rather than LMDB: a generation is written once and never
modified, so LMDB's transactions, free lists and writer lock buy nothing; a plain file
keeps today's atomic swap (write a temporary file, fsync, rename) and its identity binding
unchanged, needs no new dependency, and one lookup is a hash, two ``struct`` reads and one
small ``json.loads`` (measured in ``bench/bench_dataplane.py``).

Layout (version 1):

* line 1: a JSON header: format, version, generation, written_at, the database identity
  and DSN fingerprint (checked exactly as ``persist`` checks the persisted snapshot), counts,
  the slot count, the body's length and its SHA-256;
* the body: ``slots`` index entries of 16 bytes (u64 key hash, u32 offset, u32 length; hash 0
  is an empty slot; linear probing), then the records, each the compact JSON ``[key, value]``
  so that a hash collision is told apart by the stored key.

Keys: ``u\\x00<domain>\\x00<number>`` a directory user (with its tenant's served fields),
``r\\x00<context>\\x00<number>`` a route (with its tenant), ``d\\x00<number>`` a DID,
``q\\x00<name>`` a queue, ``Q`` every queue in order (callcenter.conf's module load),
``o\\x00<context>`` a tenant's outbound policy (with its tenant).

A torn or truncated file is never read: the rename makes the swap atomic and the checksum
is verified once when a generation is opened, before anything in it is served. The file
holds A1 hashes only (never a password) and is mode 0600. An empty generation never
replaces one holding users of the same database (``persist``'s rule).

Neighbours: ``reconciler.serve.persist`` (identity binding, atomic writes, errors),
``reconciler.serve.snapshot`` (the records), ``reconciler.dataplane`` (the readers).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import time
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.core.identity import DatabaseIdentity
from reconciler.core.model import OutboundRoute, outbound_from_values
from reconciler.core.outbound import OutboundPolicy
from reconciler.serve.persist import (
    HEADER_MAX_BYTES,
    EmptySnapshotRefused,
    SnapshotError,
    SnapshotNotPersisted,
    check_belongs,
    write_atomically,
)
from reconciler.serve.snapshot import (
    DidRoute,
    DirectoryUser,
    QueueConfig,
    Route,
    RouteKind,
    ServedTenant,
    Snapshot,
)

GENERATION_FORMAT = "pbx-reconciler/generation"
# 3: a user row's voicemail fields then its recording paths. A version-1 file (rows
# without either) still decodes: every later field has a default. Version 2 (recording
# paths right after the agents) never reached main and is not read. 4: a user row's calling
# right last, and each tenant's outbound policy (a version 3 file: no outside calls).
GENERATION_VERSION = 4
_READABLE_VERSIONS = frozenset({1, 3, GENERATION_VERSION})
GENERATION_FILE = "xmlcurl.generation"
_SLOT = struct.Struct("<QII")
_SEP = "\x00"


@dataclass(frozen=True, slots=True)
class GenerationHeader:
    generation: str
    identity: DatabaseIdentity
    dsn_fingerprint: str
    users: int
    counts: Mapping[str, int]
    slots: int
    body_bytes: int
    sha256: str
    written_at: float


def key_hash(key: str) -> int:
    """64 bits of BLAKE2b; 0 marks an empty slot, so it is never a key's hash."""
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value or 1


# --- writing -----------------------------------------------------------------------------


def write_generation(
    snapshot: Snapshot,
    path: str | os.PathLike[str],
    *,
    identity: DatabaseIdentity,
    dsn_fingerprint: str,
    allow_empty: bool = False,
) -> GenerationHeader:
    """Write ``snapshot`` as a generation file, atomically and mode 0600. Raises
    ``EmptySnapshotRefused`` (an empty one over users of the same database) or
    ``SnapshotNotPersisted`` (the write failed; the old file is untouched)."""
    target = Path(path)
    users = snapshot.user_count
    if users == 0 and not allow_empty:
        _refuse_to_empty(target, identity)
    table, blob, slots = encode_body(snapshot)
    digest = hashlib.sha256(table)
    digest.update(blob)
    header = {
        "format": GENERATION_FORMAT,
        "version": GENERATION_VERSION,
        "generation": snapshot.generation,
        "written_at": time.time(),
        "identity": identity.as_dict(),
        "dsn_fingerprint": dsn_fingerprint,
        "counts": snapshot.counts(),
        "slots": slots,
        "body_bytes": len(table) + len(blob),
        "sha256": digest.hexdigest(),
    }
    head = json.dumps(header, separators=(",", ":")).encode() + b"\n"
    try:
        write_atomically(target, (head, table, blob))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SnapshotNotPersisted(f"generation not written to {target}: {reason}") from exc
    return _header_from(header, target)


def _refuse_to_empty(target: Path, identity: DatabaseIdentity) -> None:
    try:
        header = read_generation_header(target)
    except SnapshotError:
        return
    if header.identity == identity and header.users > 0:
        raise EmptySnapshotRefused(
            f"kept {target}: it holds {header.users} users of this database and the new "
            "generation none"
        )


def records(snapshot: Snapshot) -> Iterator[tuple[str, Any]]:
    """Every (key, value) a generation holds: what the answer needs, nothing more."""
    for tenant in snapshot.tenants.values():
        served = _tenant_row(tenant)
        for user in tenant.users.values():
            yield f"u{_SEP}{tenant.domain}{_SEP}{user.number}", [served, list(user)]
        for route in tenant.routes.values():
            yield f"r{_SEP}{tenant.domain}{_SEP}{route.number}", [served, list(route)]
        if tenant.outbound is not None:
            yield f"o{_SEP}{tenant.domain}", [served, _outbound_row(tenant.outbound)]
    for did in snapshot.dids.values():
        yield f"d{_SEP}{did.number}", list(did)
    queues = [_queue_row(q) for q in snapshot.queues.values()]
    for row in queues:
        yield f"q{_SEP}{row[0]}", row
    yield "Q", queues


def encode_body(snapshot: Snapshot) -> tuple[bytearray, bytearray, int]:
    """The index, the records and the slot count (a power of two, at least twice the keys).
    Built in place, never copied whole: at 1,000 x 100 the body is ~40 MB, and a list of
    every encoded record plus two concatenations tripled the control plane's peak."""
    keys = 1 + len(snapshot.dids) + len(snapshot.queues)
    keys += sum(len(t.users) + len(t.routes) + 1 for t in snapshot.tenants.values())
    slots = 8
    while slots < 2 * keys:
        slots *= 2
    table = bytearray(slots * _SLOT.size)
    taken = array("Q", bytes(8 * slots))  # the hash in each slot, for probing
    blob = bytearray()
    base = len(table)
    for key, value in records(snapshot):
        data = json.dumps([key, value], separators=(",", ":"), ensure_ascii=False).encode()
        hashed = key_hash(key)
        slot = hashed & (slots - 1)
        while taken[slot] != 0:
            slot = (slot + 1) & (slots - 1)
        taken[slot] = hashed
        _SLOT.pack_into(table, slot * _SLOT.size, hashed, base + len(blob), len(data))
        blob += data
    return table, blob, slots


def _tenant_row(tenant: ServedTenant) -> list[Any]:
    return [
        tenant.id,
        tenant.domain,
        tenant.outbound_caller_id_name,
        tenant.outbound_caller_id_number,
    ]


def _outbound_row(policy: OutboundPolicy) -> list[Any]:
    settings = [list(v) if isinstance(v, tuple) else v for v in policy.settings.as_dict().values()]
    return [settings, [[r.match, list(r.gateways)] for r in policy.routes]]


def _outbound(row: list[Any]) -> OutboundPolicy:
    settings, routes = row
    return OutboundPolicy(
        outbound_from_values(settings),
        tuple(OutboundRoute(match, tuple(gws)) for match, gws in routes),
    )


def _queue_row(queue: QueueConfig) -> list[Any]:
    return [queue.name, queue.tenant_id, [list(p) for p in queue.params]]


# --- reading -----------------------------------------------------------------------------


def read_generation_header(path: str | os.PathLike[str]) -> GenerationHeader:
    """Line 1 only: which database, how many users, how the body must look."""
    try:
        with open(path, "rb") as file:
            head = file.readline(HEADER_MAX_BYTES)
    except OSError as exc:
        raise SnapshotError(f"cannot read generation {path}: {exc.strerror}") from exc
    return _parse_header(head, path)


def _parse_header(head: bytes, path: object) -> GenerationHeader:
    try:
        data = json.loads(head)
    except ValueError as exc:
        raise SnapshotError(f"{path} is not a pbx-reconciler generation") from exc
    if not isinstance(data, dict) or data.get("format") != GENERATION_FORMAT:
        raise SnapshotError(f"{path} is not a pbx-reconciler generation")
    if data.get("version") not in _READABLE_VERSIONS:
        raise SnapshotError(f"{path}: unsupported generation version {data.get('version')!r}")
    return _header_from(data, path)


def _header_from(data: dict[str, Any], path: object) -> GenerationHeader:
    try:
        header = GenerationHeader(
            generation=str(data["generation"]),
            identity=DatabaseIdentity.from_dict(data["identity"]),
            dsn_fingerprint=str(data["dsn_fingerprint"]),
            users=int(data["counts"]["users"]),
            counts=MappingProxyType({str(k): int(v) for k, v in data["counts"].items()}),
            slots=int(data["slots"]),
            body_bytes=int(data["body_bytes"]),
            sha256=str(data["sha256"]),
            written_at=float(data["written_at"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"{path}: corrupt generation header: {exc!r}") from exc
    if header.slots <= 0 or header.slots & (header.slots - 1):
        raise SnapshotError(f"{path}: corrupt generation header: slots {header.slots}")
    return header


def open_generation(
    path: str | os.PathLike[str],
    *,
    expected_identity: DatabaseIdentity | None = None,
    dsn_fingerprint: str,
    verify: bool = True,
) -> MappedGeneration:
    """Map a generation read-only, if it is whole and belongs to this database (the rule
    of ``persist.check_belongs``). Raises ``SnapshotMismatch`` or ``SnapshotError``; then
    nothing of it is served. ``verify=False`` skips the checksum (reading every page) for
    the writer mapping the file it has just written, fsynced and renamed; the size is
    checked all the same."""
    try:
        with open(path, "rb") as file:
            head = file.readline(HEADER_MAX_BYTES)
            header = _parse_header(head, path)
            check_belongs(header.identity, header.dsn_fingerprint, path,
                          expected_identity, dsn_fingerprint)  # fmt: skip
            size = os.fstat(file.fileno()).st_size
            if size != len(head) + header.body_bytes:
                raise SnapshotError(f"{path}: truncated or padded generation")
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise SnapshotError(f"cannot read generation {path}: {exc.strerror}") from exc
    body = memoryview(mapped)[len(head) :]
    if verify and hashlib.sha256(body).hexdigest() != header.sha256:
        body.release()
        mapped.close()
        raise SnapshotError(f"{path}: checksum mismatch: not served")
    return MappedGeneration(header, mapped, body)


class MappedGeneration:
    """A generation served in place: the lookups of ``Snapshot``, decoded on demand from
    the mapped file (``reconciler.serve.xmlcurl.answer`` takes either)."""

    def __init__(self, header: GenerationHeader, mapped: mmap.mmap, body: memoryview) -> None:
        self.header = header
        self.generation = header.generation
        self._mapped = mapped
        self._body = body
        self._mask = header.slots - 1
        self._queues: Mapping[str, QueueConfig] | None = None

    @property
    def user_count(self) -> int:
        return self.header.users

    def counts(self) -> dict[str, int]:
        """Sizes for /status and logs (recorded in the header when written)."""
        return dict(self.header.counts)

    def close(self) -> None:
        """Unmap; the generation must no longer be served."""
        self._body.release()
        self._mapped.close()

    def _get(self, key: str) -> Any:
        hashed = key_hash(key)
        slot = hashed & self._mask
        body = self._body
        while True:
            stored, offset, length = _SLOT.unpack_from(body, slot * _SLOT.size)
            if stored == 0:
                return None
            if stored == hashed:
                found_key, value = json.loads(bytes(body[offset : offset + length]))
                if found_key == key:
                    return value
            slot = (slot + 1) & self._mask

    def user(self, domain: str, number: str) -> tuple[ServedTenant, DirectoryUser] | None:
        row = self._get(f"u{_SEP}{domain.lower()}{_SEP}{number}")
        if row is None:
            return None
        tenant, user = row
        return _tenant(tenant), DirectoryUser._make([*user[:6], tuple(user[6]), *user[7:]])

    def route(self, context: str, number: str) -> tuple[ServedTenant, Route] | None:
        row = self._get(f"r{_SEP}{context.lower()}{_SEP}{number}")
        if row is None:
            return None
        tenant, route = row
        return _tenant(tenant), Route._make([RouteKind(route[0]), *route[1:]])

    def did(self, number: str) -> DidRoute | None:
        row = self._get(f"d{_SEP}{number}")
        return None if row is None else DidRoute._make(row)

    def queue(self, name: str) -> QueueConfig | None:
        row = self._get(f"q{_SEP}{name}")
        return None if row is None else _queue(row)

    def outbound(self, context: str) -> tuple[ServedTenant, OutboundPolicy] | None:
        row = self._get(f"o{_SEP}{context.lower()}")
        if row is None:
            return None
        tenant, policy = row
        return _tenant(tenant), _outbound(policy)

    @property
    def queues(self) -> Mapping[str, QueueConfig]:
        if self._queues is None:
            rows = self._get("Q") or []
            self._queues = MappingProxyType({row[0]: _queue(row) for row in rows})
        return self._queues


def _tenant(row: list[Any]) -> ServedTenant:
    return ServedTenant(id=row[0], domain=row[1], outbound_caller_id_name=row[2],
                        outbound_caller_id_number=row[3])  # fmt: skip


def _queue(row: list[Any]) -> QueueConfig:
    return QueueConfig(row[0], row[1], tuple((k, v) for k, v in row[2]))

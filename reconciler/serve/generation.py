"""A snapshot generation: the served view as immutable files, the only thing persisted.

The control plane writes a generation whenever the applied state changes
(``serve.generation_writer``, or ``write_generation`` for a ``Snapshot`` in memory); it maps
the files back to serve from them (``open_generation``), at start-up too (a restart serves
the persisted generation in milliseconds, whatever its size), and so do xml_curl workers
(``reconciler.dataplane``) and ``pbx serve``: lookups read records in place, a process's
heap holds only what it is answering, and every process shares the pages through the page
cache.

Why a purpose-built index rather than LMDB: a generation is written once and never
modified, so LMDB's transactions, free lists and writer lock buy nothing; plain files keep
the atomic swap (write a temporary file, fsync, rename) and the identity binding, need no
new dependency, and one lookup is two hashes, four ``struct`` reads and one small
``json.loads`` (measured in ``bench/bench_dataplane.py``).

Why two files, laid out per tenant: one extension edited must not cost rewriting (and
fsyncing, and every worker checksumming) every tenant's bytes; at 1,000 x 100 that alone
took most of the save-to-served budget. A tenant's records are one *section*, a hash table
with offsets relative to its own start, so it stays valid wherever it lies, and it is
appended once to a *data file* that only ever grows: a new generation appends the sections
of the tenants that changed and points at the others where they are.

* The index, ``<path>`` (swapped atomically by rename; what "the generation" is): line 1 a
  JSON header (format, version, generation, written_at, the database identity and DSN
  fingerprint, checked exactly as ``persist`` checks them, counts, the data file's name and
  the length of it this generation uses, the index body's length and SHA-256); then one
  table: ``t\x00<domain>`` a served tenant (its section's offset and length, its served
  fields), ``d\x00<number>`` a DID, ``D`` every tenant in order with its section's
  offset, length and SHA-256, ``G`` the carrier gateways (never their passwords; absent:
  none).
* The data file, ``<path>.<16 base32 characters>.data``, append-only: bytes below the length an index
  names never change, so a reader mapping it never sees them move. Each section is a table
  of ``u\x00<number>`` a directory user, ``r\x00<number>`` a route, ``q\x00<name>`` a
  queue and ``Q`` its queues in order (a queue's name ends with its tenant's domain), ``o``
  the tenant's outbound policy (absent: no outside calls).
* A table: u32 slot count (a power of two, at least twice the keys), ``slots`` entries of
  16 bytes (u64 key hash, u32 offset, u32 length from the table's start; hash 0 is an empty
  slot; linear probing), then the records, each the compact JSON ``[key, value]`` so that a
  hash collision is told apart by the stored key.

A torn or truncated generation is never read: the index is checksummed and every section
it names too, once, when a generation is opened, before anything of it is served (a
reader that verified a section of the same data file before trusts it again: appended
bytes never change). The files hold A1 hashes only (never a password) and are mode 0600.
An empty generation never replaces one holding users of the same database (``persist``'s
rule). Data files no index names any more are removed by the writer.

Neighbours: ``reconciler.serve.persist`` (identity binding, atomic writes, errors),
``reconciler.serve.snapshot`` (the records), ``reconciler.dataplane`` (the readers).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import mmap
import os
import re
import struct
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from reconciler.core.identity import DatabaseIdentity
from reconciler.core.model import OutboundRoute, outbound_from_values
from reconciler.core.outbound import OutboundPolicy
from reconciler.serve.gateways import ServedGateway
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
    TenantView,
)

GENERATION_FORMAT = "pbx-reconciler/generation"
# 4: an index and an append-only data file of per-tenant sections; a route row ends with
# the box's greeting, a user row with its calling right, a section with its tenant's
# outbound policy (``o``). Earlier versions (one file, one table) are not read: a restart then
# serves once the database is read.
GENERATION_VERSION = 4
_READABLE_VERSIONS = frozenset({GENERATION_VERSION})
GENERATION_FILE = "xmlcurl.generation"
_SLOTS = struct.Struct("<I")
_SLOT = struct.Struct("<QII")
_SEP = "\x00"
_INDEX_MAX_BYTES = 1 << 31


@dataclass(frozen=True, slots=True)
class GenerationHeader:
    generation: str
    identity: DatabaseIdentity
    dsn_fingerprint: str
    users: int
    counts: Mapping[str, int]
    body_bytes: int
    sha256: str
    written_at: float
    data: str  # the data file's name, beside the index
    data_bytes: int  # how much of it this generation uses


class Section(NamedTuple):
    """Where one served tenant's records lie in the data file, and their checksum."""

    domain: str
    offset: int
    length: int
    sha256: str
    tenant: list[Any]  # the served tenant's row (``tenant_row``)
    users: int
    routes: int
    queues: int
    record: Record  # its entry in the index (encoded once: unchanged tenants cost nothing)


Record = tuple[int, bytes]
"""A table record encoded: the key's hash and the JSON ``[key, value]``."""


def relocated(section: Section, offset: int) -> Section:
    """``section`` copied to ``offset`` of a new data file."""
    moved = section._replace(offset=offset)
    return moved._replace(record=_tenant_record(moved))


def _tenant_record(section: Section) -> Record:
    return encode_record(f"t{_SEP}{section.domain}",
                         [section.offset, section.length, section.tenant])  # fmt: skip


def key_hash(key: str) -> int:
    """64 bits of BLAKE2b; 0 marks an empty slot, so it is never a key's hash."""
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value or 1


def digest_text(data: bytes | memoryview) -> str:
    """The SHA-256 of ``data`` as the header writes it: base32 (lowercase, no padding)
    rather than hex, so that nothing in the header looks like an A1 hash."""
    return _base32(hashlib.sha256(data).digest())


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


def data_file_name(path: Path) -> str:
    """A new data file's name for the index at ``path``: never one used before."""
    return f"{path.name}.{_base32(os.urandom(10))}.data"


def _data_name_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.name) + r"\.[a-z2-7]{16}\.data")


def data_files(path: Path) -> list[Path]:
    """Every data file beside the index at ``path`` (referenced or not)."""
    pattern = _data_name_pattern(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / name for name in names if pattern.fullmatch(name)]


def remove_generation(path: Path) -> None:
    """The index and every data file: nothing of it may be served any more."""
    for file in (path, *data_files(path)):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()


# --- encoding ----------------------------------------------------------------------------


def encode_record(key: str, value: Any) -> Record:
    data = json.dumps([key, value], separators=(",", ":"), ensure_ascii=False).encode()
    return key_hash(key), data


def encode_table(records: Sequence[Record]) -> bytes:
    """A self-contained hash table of ``records`` (offsets from its own start)."""
    slots = 8
    while slots < 2 * len(records):
        slots *= 2
    table = bytearray(_SLOTS.size + slots * _SLOT.size)
    _SLOTS.pack_into(table, 0, slots)
    taken = array("Q", bytes(8 * slots))  # the hash in each slot, for probing
    blob = bytearray()
    base = len(table)
    for hashed, data in records:
        slot = hashed & (slots - 1)
        while taken[slot] != 0:
            slot = (slot + 1) & (slots - 1)
        taken[slot] = hashed
        _SLOT.pack_into(table, _SLOTS.size + slot * _SLOT.size, hashed, base + len(blob),
                        len(data))  # fmt: skip
        blob += data
    table += blob
    return bytes(table)


def encode_section(tenant: ServedTenant, queues: Iterable[QueueConfig]) -> bytes:
    """One served tenant's section: its users, routes, queues and outbound policy."""
    rows = [_queue_row(q) for q in queues]
    records: list[Record] = []
    records.extend(encode_record(f"u{_SEP}{n}", list(user)) for n, user in tenant.users.items())
    records.extend(encode_record(f"r{_SEP}{n}", list(r)) for n, r in tenant.routes.items())
    records.extend(encode_record(f"q{_SEP}{row[0]}", row) for row in rows)
    records.append(encode_record("Q", rows))
    if tenant.outbound is not None:
        records.append(encode_record("o", _outbound_row(tenant.outbound)))
    return encode_table(records)


def section_of(view: TenantView, offset: int, data: bytes) -> Section:
    """The index's entry of a served tenant's section written at ``offset``."""
    tenant = view.tenant
    assert tenant is not None
    section = Section(tenant.domain, offset, len(data), hashlib.sha256(data).hexdigest(),
                      tenant_row(tenant), len(tenant.users), len(tenant.routes),
                      len(view.queues), (0, b""))  # fmt: skip
    return section._replace(record=_tenant_record(section))


def did_record(did: DidRoute) -> Record:
    return encode_record(f"d{_SEP}{did.number}", list(did))


def tenant_row(tenant: ServedTenant) -> list[Any]:
    return [
        tenant.id,
        tenant.domain,
        tenant.outbound_caller_id_name,
        tenant.outbound_caller_id_number,
    ]


def _queue_row(queue: QueueConfig) -> list[Any]:
    return [queue.name, queue.tenant_id, [list(p) for p in queue.params]]


# --- writing -----------------------------------------------------------------------------


def create_data_file(path: Path, name: str) -> int:
    """A new, empty data file beside the index at ``path``: mode 0600, opened to append."""
    fd = os.open(path.parent / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_index(
    path: Path,
    *,
    generation: str,
    sections: Sequence[Section],
    dids: Mapping[str, DidRoute],
    data: str,
    data_bytes: int,
    identity: DatabaseIdentity,
    dsn_fingerprint: str,
    allow_empty: bool,
    did_records: Callable[[Iterable[DidRoute]], list[Record]] | None = None,
    gateways: Sequence[ServedGateway] = (),
) -> GenerationHeader:
    """Swap in the index naming ``sections`` of the data file ``data`` (written and
    fsynced before) and the carrier ``gateways`` (no passwords); ``did_records`` encodes
    the DIDs (a writer's memo). Raises ``EmptySnapshotRefused`` or ``SnapshotNotPersisted`` (the old
    index is untouched)."""
    users = sum(s.users for s in sections)
    if users == 0 and not allow_empty:
        _refuse_to_empty(path, identity)
    records = [s.record for s in sections]
    records.extend(did_records(dids.values()) if did_records else map(did_record, dids.values()))
    records.append(encode_record("D", [[s.domain, s.offset, s.length, s.sha256] for s in sections]))
    if gateways:
        records.append(encode_record("G", [list(g) for g in gateways]))
    body = encode_table(records)
    header = {
        "format": GENERATION_FORMAT,
        "version": GENERATION_VERSION,
        "generation": generation,
        "written_at": time.time(),
        "identity": identity.as_dict(),
        "dsn_fingerprint": dsn_fingerprint,
        "counts": {
            "tenants": len(sections),
            "users": users,
            "routes": sum(s.routes for s in sections),
            "dids": len(dids),
            "queues": sum(s.queues for s in sections),
            **({"gateways": len(gateways)} if gateways else {}),
        },
        "data": data,
        "data_bytes": data_bytes,
        "body_bytes": len(body),
        "sha256": digest_text(body),
    }
    head = json.dumps(header, separators=(",", ":")).encode() + b"\n"
    try:
        write_atomically(path, (head, body))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SnapshotNotPersisted(f"generation not written to {path}: {reason}") from exc
    return _header_from(header, path)


def write_generation(
    snapshot: Snapshot,
    path: str | os.PathLike[str],
    *,
    identity: DatabaseIdentity,
    dsn_fingerprint: str,
    allow_empty: bool = False,
) -> GenerationHeader:
    """Write ``snapshot`` as a generation of its own (a new data file, then the index),
    atomically and mode 0600. Raises ``EmptySnapshotRefused`` (an empty one over users of
    the same database) or ``SnapshotNotPersisted`` (the write failed; the old generation is
    untouched). The daemon writes tenant by tenant instead (``serve.generation_writer``)."""
    target = Path(path)
    if snapshot.user_count == 0 and not allow_empty:
        _refuse_to_empty(target, identity)
    queues_of: dict[str, list[QueueConfig]] = {}
    for queue in snapshot.queues.values():
        queues_of.setdefault(queue.tenant_id, []).append(queue)
    name = data_file_name(target)
    sections: list[Section] = []
    try:
        fd = create_data_file(target, name)
        with os.fdopen(fd, "wb") as data:
            offset = 0
            for tenant in snapshot.tenants.values():
                queues = {q.name: q for q in queues_of.get(tenant.id, ())}
                section = encode_section(tenant, queues.values())
                data.write(section)
                view = TenantView(tenant, queues, (), ())
                sections.append(section_of(view, offset, section))
                offset += len(section)
            data.flush()
            os.fsync(data.fileno())
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SnapshotNotPersisted(f"generation not written to {target}: {reason}") from exc
    old = _data_in_use(target)
    try:
        header = write_index(target, generation=snapshot.generation, sections=sections,
                             dids=snapshot.dids, data=name, data_bytes=offset,
                             identity=identity, dsn_fingerprint=dsn_fingerprint,
                             allow_empty=True,
                             gateways=tuple(snapshot.gateways.values()))  # fmt: skip
    except SnapshotNotPersisted:
        remove_unused_data(target, keep=old)
        raise
    remove_unused_data(target, keep={name, *old})
    return header


def _data_in_use(path: Path) -> set[str]:
    """The data file the index at ``path`` names now (a worker may still be opening it)."""
    try:
        return {read_generation_header(path).data}
    except SnapshotError:
        return set()


def remove_unused_data(path: Path, *, keep: set[str]) -> None:
    """Data files of the index at ``path`` other than ``keep``: no generation a reader may
    still open names them (a reader that mapped one keeps its pages)."""
    for file in data_files(path):
        if file.name not in keep:
            with contextlib.suppress(OSError):
                file.unlink()


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


def _outbound_row(policy: OutboundPolicy) -> list[Any]:
    settings = [list(v) if isinstance(v, tuple) else v for v in policy.settings.as_dict().values()]
    return [settings, [[r.match, list(r.gateways)] for r in policy.routes]]


def _outbound(row: list[Any]) -> OutboundPolicy:
    settings, routes = row
    return OutboundPolicy(
        outbound_from_values(settings),
        tuple(OutboundRoute(match, tuple(gws)) for match, gws in routes),
    )


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
            body_bytes=int(data["body_bytes"]),
            sha256=str(data["sha256"]),
            written_at=float(data["written_at"]),
            data=str(data["data"]),
            data_bytes=int(data["data_bytes"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"{path}: corrupt generation header: {exc!r}") from exc
    if not 0 <= header.body_bytes < _INDEX_MAX_BYTES or header.data_bytes < 0:
        raise SnapshotError(f"{path}: corrupt generation header: sizes")
    if _data_name_pattern(Path(str(path))).fullmatch(header.data) is None:
        raise SnapshotError(f"{path}: corrupt generation header: data file {header.data!r}")
    return header


class GenerationRaced(SnapshotError):
    """The data file an index named was removed before it was opened: a newer index has
    replaced that one (read the index again)."""


def open_generation(
    path: str | os.PathLike[str],
    *,
    expected_identity: DatabaseIdentity | None = None,
    dsn_fingerprint: str,
    verify: bool = True,
    previous: MappedGeneration | None = None,
) -> MappedGeneration:
    """Map a generation read-only, if it is whole and belongs to this database (the rule
    of ``persist.check_belongs``). Raises ``SnapshotMismatch`` or ``SnapshotError``; then
    nothing of it is served. The index is always checksummed; ``verify=False`` skips the
    sections (every page of the data file) for the writer mapping what it has just written
    and fsynced; a section ``previous`` (of the same data file) verified is not read again."""
    index_path = Path(path)
    try:
        with open(index_path, "rb") as file:
            head = file.readline(HEADER_MAX_BYTES)
            header = _parse_header(head, path)
            check_belongs(header.identity, header.dsn_fingerprint, path,
                          expected_identity, dsn_fingerprint)  # fmt: skip
            if os.fstat(file.fileno()).st_size != len(head) + header.body_bytes:
                raise SnapshotError(f"{path}: truncated or padded generation")
            body = file.read(header.body_bytes)
    except OSError as exc:
        raise SnapshotError(f"cannot read generation {path}: {exc.strerror}") from exc
    if len(body) != header.body_bytes or digest_text(body) != header.sha256:
        raise SnapshotError(f"{path}: checksum mismatch: not served")
    data_path = index_path.parent / header.data
    try:
        fd = os.open(data_path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise GenerationRaced(f"{path}: its data file {header.data} is gone") from exc
    except OSError as exc:
        raise SnapshotError(f"cannot read generation data {data_path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if st.st_size < header.data_bytes:
            raise SnapshotError(f"{data_path}: truncated generation data")
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if header.data_bytes else None
    except OSError as exc:
        raise SnapshotError(f"cannot read generation data {data_path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    generation = MappedGeneration(header, body, mapped, (st.st_dev, st.st_ino))
    try:
        generation.check_sections(verify=verify, previous=previous)
    except SnapshotError:
        generation.close()
        raise
    return generation


_EMPTY_DATA = memoryview(b"")


class MappedGeneration:
    """A generation served in place: the lookups of ``Snapshot``, decoded on demand from
    the mapped files (``reconciler.serve.xmlcurl.answer`` takes either)."""

    def __init__(
        self,
        header: GenerationHeader,
        index: bytes,
        mapped: mmap.mmap | None,
        data_id: tuple[int, int],
    ) -> None:
        self.header = header
        self.generation = header.generation
        self._index = memoryview(index)
        self._mapped = mapped
        self._data = memoryview(mapped) if mapped is not None else _EMPTY_DATA
        self._data_id = data_id
        self._verified: set[tuple[int, int, str]] = set()
        self._tenants: dict[str, tuple[ServedTenant, int]] = {}  # found ones only: bounded
        self._queues: Mapping[str, QueueConfig] | None = None
        self._gateways: Mapping[str, ServedGateway] | None = None

    def check_sections(self, *, verify: bool, previous: MappedGeneration | None) -> None:
        """Every section lies within the data this generation uses, and (``verify``) has
        its checksum. Raises ``SnapshotError``."""
        known: set[tuple[int, int, str]] = set()
        if previous is not None and previous._data_id == self._data_id:
            known = previous._verified
        end = self.header.data_bytes
        verified: set[tuple[int, int, str]] = set()
        for _domain, offset, length, digest in self._directory():
            entry = (offset, length, digest)
            if offset < 0 or length <= 0 or offset + length > end:
                raise SnapshotError(f"{self.header.data}: a section outside the data")
            if verify and entry not in known:
                with self._data[offset : offset + length] as section:  # released: unmappable
                    whole = hashlib.sha256(section).hexdigest() == digest
                if not whole:
                    raise SnapshotError(f"{self.header.data}: checksum mismatch: not served")
            verified.add(entry)
        self._verified = verified

    def sections(self) -> list[tuple[str, int, int, str]]:
        """Every served tenant's section, in domain order: (domain, offset, length,
        SHA-256)."""
        return [(d, offset, length, digest) for d, offset, length, digest in self._directory()]

    def _directory(self) -> list[list[Any]]:
        return _lookup(self._index, 0, "D") or []

    @property
    def user_count(self) -> int:
        return self.header.users

    def counts(self) -> dict[str, int]:
        """Sizes for /status and logs (recorded in the header when written)."""
        return dict(self.header.counts)

    def close(self) -> None:
        """Unmap; the generation must no longer be served."""
        self._data.release()
        if self._mapped is not None:
            self._mapped.close()

    def _tenant(self, domain: str) -> tuple[ServedTenant, int] | None:
        found = self._tenants.get(domain)
        if found is None:
            row = _lookup(self._index, 0, f"t{_SEP}{domain}")
            if row is None:
                return None
            offset, _length, tenant = row
            found = self._tenants[domain] = (_tenant(tenant), offset)
        return found

    def _in_section(self, domain: str, key: str) -> tuple[ServedTenant, Any] | None:
        found = self._tenant(domain)
        if found is None:
            return None
        tenant, offset = found
        row = _lookup(self._data, offset, key)
        return None if row is None else (tenant, row)

    def user(self, domain: str, number: str) -> tuple[ServedTenant, DirectoryUser] | None:
        found = self._in_section(domain.lower(), f"u{_SEP}{number}")
        if found is None:
            return None
        tenant, user = found
        return tenant, DirectoryUser._make([*user[:6], tuple(user[6]), *user[7:]])

    def route(self, context: str, number: str) -> tuple[ServedTenant, Route] | None:
        found = self._in_section(context.lower(), f"r{_SEP}{number}")
        if found is None:
            return None
        tenant, route = found
        return tenant, Route._make([RouteKind(route[0]), *route[1:]])

    def did(self, number: str) -> DidRoute | None:
        row = _lookup(self._index, 0, f"d{_SEP}{number}")
        return None if row is None else DidRoute._make(row)

    def queue(self, name: str) -> QueueConfig | None:
        """A queue's name ends with ``@<its tenant's domain>``: its section holds it."""
        _, at, domain = name.rpartition("@")
        found = self._in_section(domain.lower(), f"q{_SEP}{name}") if at else None
        return None if found is None else _queue(found[1])

    def outbound(self, context: str) -> tuple[ServedTenant, OutboundPolicy] | None:
        """The policy in the section of the tenant whose context this is, never another's."""
        found = self._in_section(context.lower(), "o")
        return None if found is None else (found[0], _outbound(found[1]))

    @property
    def queues(self) -> Mapping[str, QueueConfig]:
        if self._queues is None:
            queues: dict[str, QueueConfig] = {}
            for _domain, offset, _length, _digest in self._directory():
                for row in _lookup(self._data, offset, "Q") or []:
                    queues[row[0]] = _queue(row)
            self._queues = MappingProxyType(queues)
        return self._queues

    @property
    def gateways(self) -> Mapping[str, ServedGateway]:
        if self._gateways is None:
            rows = _lookup(self._index, 0, "G") or []
            self._gateways = MappingProxyType({row[0]: ServedGateway._make(row) for row in rows})
        return self._gateways


def _lookup(buffer: memoryview, base: int, key: str) -> Any:
    """The value of ``key`` in the table at ``base``, or None."""
    (slots,) = _SLOTS.unpack_from(buffer, base)
    mask = slots - 1
    hashed = key_hash(key)
    slot = hashed & mask
    while True:
        stored, offset, length = _SLOT.unpack_from(buffer, base + _SLOTS.size + slot * _SLOT.size)
        if stored == 0:
            return None
        if stored == hashed:
            start = base + offset
            found_key, value = json.loads(bytes(buffer[start : start + length]))
            if found_key == key:
                return value
        slot = (slot + 1) & mask


def _tenant(row: list[Any]) -> ServedTenant:
    return ServedTenant(id=row[0], domain=row[1], outbound_caller_id_name=row[2],
                        outbound_caller_id_number=row[3])  # fmt: skip


def _queue(row: list[Any]) -> QueueConfig:
    return QueueConfig(row[0], row[1], tuple((k, v) for k, v in row[2]))

"""Writing generations tenant by tenant: only what changed is rendered and written.

The daemon's writer (``daemon.snapshots``) keeps, for every tenant of the generation it
wrote last, the records it was rendered from (the same ``TenantState`` object and the same
digests: ``AppliedState`` replaces a tenant's objects whenever it reads anything of it
again) and where its section lies in the data file. A new generation renders the tenants
whose inputs differ, appends their sections, and points at every other section where it
already is; the cross-tenant decisions (which domain is served, which DID is claimed twice)
are taken again over all tenants each time, from the small per-tenant results kept here.
Nothing of the whole served view is held in the heap: one tenant is rendered at a time.

The data file only grows; once the bytes no generation uses outweigh the live ones, the next
generation starts a new data file, copying the unchanged sections from the old one (no
rendering). A write that fails keeps what was known before: its appended bytes are dead,
the old index stays, and the next write appends again.

The result is the generation ``write_generation`` writes from ``build_snapshot`` of the same
state (tests/serve/test_generation_writer.py), section for section.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.gcpause import gc_paused
from reconciler.core.identity import DatabaseIdentity
from reconciler.core.model import Gateway, State, TenantState
from reconciler.core.served import served_tenants
from reconciler.serve.gateways import serve_gateways
from reconciler.serve.generation import (
    GenerationHeader,
    Record,
    Section,
    create_data_file,
    data_file_name,
    did_record,
    encode_section,
    relocated,
    remove_unused_data,
    section_of,
    write_index,
)
from reconciler.serve.persist import SnapshotNotPersisted
from reconciler.serve.snapshot import DidRoute, Digests, resolve_dids, serve_tenant

_COMPACT_MIN_DEAD = 1 << 20  # bytes: below this a data file is never rewritten


@dataclass(frozen=True, slots=True)
class _Rendered:
    """One tenant as the last generation holds it, and what it was rendered from."""

    source: TenantState
    domain: str
    section: Section | None  # None: the whole tenant is withheld
    dids: tuple[DidRoute, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Written:
    """A generation written: its header, why anything was left out, how many tenants were
    rendered (the others' sections were reused)."""

    header: GenerationHeader
    problems: tuple[str, ...]
    rendered: int


class GenerationWriter:
    """Writes the generations of the index at ``path``; one writer per index."""

    def __init__(self, path: Path, *, roots: AudioRoots = DEFAULT_ROOTS) -> None:
        self.path = path
        self._roots = roots
        self._identity: DatabaseIdentity | None = None
        self._data: str | None = None  # the data file the last generation used
        self._data_bytes = 0  # its length then
        self._tenants: dict[str, _Rendered] = {}
        self._digests: tuple[Mapping[tuple[str, str], str], ...] = ({}, {})  # written from
        self._did_records: dict[DidRoute, Record] = {}

    def forget(self) -> None:
        """The next generation renders every tenant into a new data file."""
        self._data, self._data_bytes, self._tenants = None, 0, {}
        self._digests, self._did_records = ({}, {}), {}

    def _encode_dids(self, dids: Iterable[DidRoute]) -> list[Record]:
        known, self._did_records = self._did_records, {}
        for did in dids:
            self._did_records[did] = known.get(did) or did_record(did)
        return list(self._did_records.values())

    def write(
        self,
        state: State,
        a1_hashes: Mapping[tuple[str, str], str],
        voicemail_hashes: Mapping[tuple[str, str], str],
        *,
        generation: str,
        identity: DatabaseIdentity,
        dsn_fingerprint: str,
        allow_empty: bool,
        gateways: Iterable[Gateway] = (),
    ) -> Written:
        """Write the generation of ``state`` and swap it in. Raises ``SnapshotNotPersisted``
        (``EmptySnapshotRefused`` included): the old generation stays."""
        with gc_paused():  # many short-lived objects, no cycles: generational passes waste time
            return self._write(state, a1_hashes, voicemail_hashes, generation=generation,
                               identity=identity, dsn_fingerprint=dsn_fingerprint,
                               allow_empty=allow_empty, gateways=gateways)  # fmt: skip

    def _write(
        self,
        state: State,
        a1_hashes: Mapping[tuple[str, str], str],
        voicemail_hashes: Mapping[tuple[str, str], str],
        *,
        generation: str,
        identity: DatabaseIdentity,
        dsn_fingerprint: str,
        allow_empty: bool,
        gateways: Iterable[Gateway] = (),
    ) -> Written:
        if identity != self._identity:
            self.forget()
        digests = Digests(a1_hashes, voicemail_hashes)
        touched = _touched(digests, self._digests) if self._tenants else set()
        served = served_tenants(state)
        live = sum(r.section.length for r in self._tenants.values() if r.section is not None)
        fresh = self._data is None or self._data_bytes - live > max(live, _COMPACT_MIN_DEAD)
        data = data_file_name(self.path) if fresh else self._data
        assert data is not None
        previous = self._data if fresh else None
        tenants: dict[str, _Rendered] = {}
        problems = list(served.problems)
        rendered = 0
        try:
            fd = (create_data_file(self.path, data) if fresh
                  else os.open(self.path.parent / data, os.O_WRONLY | os.O_APPEND))  # fmt: skip
            with os.fdopen(fd, "wb") as out:
                end = 0 if fresh else os.fstat(out.fileno()).st_size
                source = _Copier(self.path.parent / previous) if previous else None
                try:
                    for domain, tenant_state in served.by_domain.items():
                        tenant_id = tenant_state.tenant.id
                        held = self._tenants.get(tenant_id)
                        if (
                            held is not None
                            and held.source is tenant_state
                            and held.domain == domain
                            and tenant_id not in touched
                        ):
                            moved = _move(held, source, out, end) if fresh else held
                        else:
                            moved = None
                        if moved is None:
                            moved = self._render(tenant_state, domain, digests, out, end)
                            rendered += 1
                        if moved.section is not None and moved.section.offset >= end:
                            end = moved.section.offset + moved.section.length
                        tenants[tenant_id] = moved
                        problems.extend(moved.problems)
                finally:
                    if source is not None:
                        source.close()
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SnapshotNotPersisted(f"generation not written to {self.path}: {reason}") from exc
        claims = [did for r in tenants.values() for did in r.dids]
        dids, did_problems = resolve_dids(claims)
        problems.extend(did_problems)
        sections = [r.section for r in tenants.values() if r.section is not None]  # by domain
        served_gateways, gateway_problems = serve_gateways(gateways)
        problems.extend(gateway_problems)
        header = write_index(self.path, generation=generation, sections=sections, dids=dids,
                             data=data, data_bytes=end, identity=identity,
                             dsn_fingerprint=dsn_fingerprint, allow_empty=allow_empty,
                             did_records=self._encode_dids,
                             gateways=tuple(served_gateways.values()))  # fmt: skip
        self._identity, self._data, self._data_bytes, self._tenants = identity, data, end, tenants
        self._digests = digests
        remove_unused_data(self.path, keep={data} | ({previous} if previous else set()))
        return Written(header, tuple(problems), rendered)

    def _render(
        self,
        tenant_state: TenantState,
        domain: str,
        digests: Digests,
        out: BinaryIO,
        end: int,
    ) -> _Rendered:
        view = serve_tenant(tenant_state, domain, digests, self._roots)
        section = None
        if view.tenant is not None:
            data = encode_section(view.tenant, view.queues.values())
            out.write(data)
            section = section_of(view, end, data)
        return _Rendered(tenant_state, domain, section, view.dids, view.problems)


class _Copier:
    """Reads sections of the data file being left behind (compaction)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        os.close(self._fd)


def _move(held: _Rendered, source: _Copier | None, out: BinaryIO, end: int) -> _Rendered | None:
    """``held`` copied into the new data file at ``end`` (None: render it again)."""
    section = held.section
    if section is None:
        return held
    if source is None:
        return None
    data = source.read(section.offset, section.length)
    if hashlib.sha256(data).hexdigest() != section.sha256:
        return None
    out.write(data)
    return _Rendered(held.source, held.domain, relocated(section, end), held.dids,
                     held.problems)  # fmt: skip


def _touched(
    now: tuple[Mapping[tuple[str, str], str], ...],
    before: tuple[Mapping[tuple[str, str], str], ...],
) -> set[str]:
    """Tenants with a digest added, changed or removed since ``before``: the mappings'
    symmetric difference, computed in C (a Python loop over 100,000 digests per write cost
    more than the rest of an edit's write)."""
    touched: set[str] = set()
    for new, old in zip(now, before, strict=True):
        if new is not old:
            touched.update(key[0] for key, _digest in new.items() ^ old.items())
    return touched

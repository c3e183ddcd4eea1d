"""Generations written tenant by tenant (``serve.generation_writer``): whatever sequence of
changes led to a state, the generation the daemon's writer leaves is the one a full build
of that state gives, and an unchanged tenant costs no rendering and no bytes written."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.identity import DatabaseIdentity
from reconciler.core.model import State
from reconciler.serve import generation_writer
from reconciler.serve.generation import (
    MappedGeneration,
    data_files,
    open_generation,
    read_generation_header,
    write_generation,
)
from reconciler.serve.generation_writer import GenerationWriter, Written
from reconciler.serve.persist import SnapshotError, SnapshotNotPersisted
from reconciler.serve.snapshot import build_snapshot
from tests.serve.test_xmlcurl_fixtures import a1_hash, a1_hashes_for, load_state
from tests.strategies import tenant_sets, tenant_specs

IDENTITY = DatabaseIdentity("7000000000000000001", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")
Digests = dict[tuple[str, str], str]


def write(writer: GenerationWriter, state: State, sip: Digests, pins: Digests) -> Written:
    return writer.write(state, sip, pins, generation="g", identity=IDENTITY,
                        dsn_fingerprint="fp", allow_empty=True)  # fmt: skip


def contents(generation: MappedGeneration, state: State) -> dict[str, Any]:
    """Everything a generation answers for ``state``'s tenants (offsets aside)."""
    answers: dict[str, Any] = {}
    for tenant_id, tenant_state in state.items():
        domain = tenant_state.tenant.domain
        for number in tenant_state.extensions:
            answers[f"user {tenant_id} {number}"] = generation.user(domain, number)
        for number in [*tenant_state.extensions, *(q.number for q in tenant_state.queues.values())]:
            answers[f"route {tenant_id} {number}"] = generation.route(domain, number)
        for did in tenant_state.inbound_numbers:
            answers[f"did {did}"] = generation.did(did)
    return {
        "counts": generation.counts(),
        "sections": [(d, length, digest) for d, _offset, length, digest in generation.sections()],
        "queues": dict(generation.queues),
        "answers": answers,
    }


def full_build(state: State, sip: Digests, pins: Digests, path: Path) -> MappedGeneration:
    snapshot = build_snapshot(state, sip, voicemail_hashes=pins)
    write_generation(snapshot, path, identity=IDENTITY, dsn_fingerprint="fp", allow_empty=True)
    return open_generation(path, dsn_fingerprint="fp")


def digests_of(state: State, seed: int) -> tuple[Digests, Digests]:
    sip = {
        (tid, n): a1_hash(n, ts.tenant.domain, f"pw-{seed}-{tid}-{n}")
        for tid, ts in state.items()
        for n in ts.extensions
    }
    pins = {key: a1_hash(key[1], "vm", f"pin-{seed}") for key in sorted(sip)[::2]}
    return sip, pins


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_after_any_sequence_of_changes_the_generation_is_the_full_builds(
    data: st.DataObject,
) -> None:
    specs = data.draw(tenant_sets(min_size=2, max_size=4))
    state: State = {spec.id: tenant_state_from_spec(spec) for spec in specs}
    sip, pins = digests_of(state, 0)
    with tempfile.TemporaryDirectory() as tmp:
        path, other = Path(tmp) / "g", Path(tmp) / "full"
        writer = GenerationWriter(path)
        for step in range(data.draw(st.integers(1, 5), label="steps")):
            action = data.draw(
                st.sampled_from(["edit", "remove", "add", "rotate", "same-domain", "none"])
            )
            ids = sorted(state)
            state = dict(state)  # AppliedState's rule: a new mapping, unchanged tenants kept
            if action in ("edit", "same-domain", "add") or not ids:
                tid = data.draw(st.sampled_from(ids)) if ids and action != "add" else f"new{step}"
                domain = None
                if action == "same-domain" and ids:  # two claimants: neither is served
                    domain = state[data.draw(st.sampled_from(ids))].tenant.domain
                spec = data.draw(tenant_specs(tenant_id=tid, domain=domain))
                state[tid] = tenant_state_from_spec(spec)
                fresh, fresh_pins = digests_of({tid: state[tid]}, step + 1)
                sip = {k: v for k, v in sip.items() if k[0] != tid} | fresh
                pins = {k: v for k, v in pins.items() if k[0] != tid} | fresh_pins
            elif action == "remove":
                del state[data.draw(st.sampled_from(ids))]
            elif action == "rotate" and sip:  # a digest changes, the tenant's records do not
                key = data.draw(st.sampled_from(sorted(sip)))
                sip = {**sip, key: a1_hash(key[1], "rotated", str(step))}
            written = write(writer, state, sip, pins)
            incremental = open_generation(path, dsn_fingerprint="fp")  # every section verified
            full = full_build(state, sip, pins, other)
            assert contents(incremental, state) == contents(full, state), action
            assert written.problems == build_snapshot(state, sip, voicemail_hashes=pins).problems
            incremental.close()
            full.close()
            assert len(data_files(path)) <= 2


@pytest.fixture
def acme(tmp_path: Path) -> tuple[State, Digests]:
    state = load_state(tmp_path / "tenants")
    return state, a1_hashes_for(state)


def test_an_unchanged_state_renders_nothing_and_appends_nothing(
    acme: tuple[State, Digests], tmp_path: Path
) -> None:
    state, sip = acme
    writer = GenerationWriter(tmp_path / "g")
    first = write(writer, state, sip, {})
    assert first.rendered == first.header.counts["tenants"] > 0  # the served ones
    again = write(writer, dict(state), dict(sip), {})
    assert again.rendered == 0
    assert again.header.data == first.header.data
    assert again.header.data_bytes == first.header.data_bytes


def test_one_changed_tenant_is_the_only_one_rendered(
    acme: tuple[State, Digests], tmp_path: Path
) -> None:
    state, sip = acme
    path = tmp_path / "g"
    writer = GenerationWriter(path)
    first = write(writer, state, sip, {})
    tenant_id = sorted(state)[0]
    number = sorted(state[tenant_id].extensions)[0]
    rotated = {**sip, (tenant_id, number): "f" * 32}
    second = write(writer, state, rotated, {})
    assert second.rendered == 1
    assert second.header.data == first.header.data  # appended to the same data file
    assert second.header.data_bytes > first.header.data_bytes
    served = open_generation(path, dsn_fingerprint="fp").user(
        state[tenant_id].tenant.domain, number
    )
    if served is not None:  # an enabled extension: served with the new digest
        assert served[1].a1_hash == "f" * 32


def test_dead_bytes_are_compacted_into_a_new_data_file(
    acme: tuple[State, Digests], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generation_writer, "_COMPACT_MIN_DEAD", 0)
    state, sip = acme
    path = tmp_path / "g"
    writer = GenerationWriter(path)
    names = set()
    for round_ in range(6):
        rotated = {key: f"{round_:x}" * 32 for key in sip}  # every tenant changes
        names.add(write(writer, state, rotated, {}).header.data)
        assert len(data_files(path)) <= 2  # the one in use and the one before
    assert len(names) > 1
    full = full_build(state, rotated, {}, tmp_path / "full")
    assert contents(open_generation(path, dsn_fingerprint="fp"), state) == contents(full, state)


def test_a_failed_write_keeps_the_old_generation_and_the_next_one_is_whole(
    acme: tuple[State, Digests], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, sip = acme
    path = tmp_path / "g"
    writer = GenerationWriter(path)
    write(writer, state, sip, {})
    before = path.read_bytes()

    def read_only(target: Path, payload: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("reconciler.serve.generation.write_atomically", read_only)
    rotated = {key: "e" * 32 for key in sip}
    with pytest.raises(SnapshotNotPersisted, match="Read-only"):
        write(writer, state, rotated, {})
    assert path.read_bytes() == before
    monkeypatch.undo()
    write(writer, state, rotated, {})
    full = full_build(state, rotated, {}, tmp_path / "full")
    assert contents(open_generation(path, dsn_fingerprint="fp"), state) == contents(full, state)


def test_a_reader_verifies_new_sections_and_trusts_those_it_verified(
    acme: tuple[State, Digests], tmp_path: Path
) -> None:
    state, sip = acme
    path = tmp_path / "g"
    writer = GenerationWriter(path)
    write(writer, state, sip, {})
    first = open_generation(path, dsn_fingerprint="fp")
    tenant_id = sorted(state)[0]
    rotated = {k: ("d" * 32 if k[0] == tenant_id else v) for k, v in sip.items()}
    second = write(writer, state, rotated, {})
    data = path.parent / second.header.data
    with data.open("r+b") as file:  # the section appended last: the changed tenant's
        file.seek(second.header.data_bytes - 1)
        last = file.read(1)
        file.seek(second.header.data_bytes - 1)
        file.write(bytes([last[0] ^ 1]))
    with pytest.raises(SnapshotError, match="checksum"):
        open_generation(path, dsn_fingerprint="fp", previous=first)


def test_the_data_file_is_private(acme: tuple[State, Digests], tmp_path: Path) -> None:
    state, sip = acme
    old_umask = os.umask(0)
    try:
        header = write(GenerationWriter(tmp_path / "g"), state, sip, {}).header
    finally:
        os.umask(old_umask)
    assert (tmp_path / header.data).stat().st_mode & 0o777 == 0o600
    assert read_generation_header(tmp_path / "g").users == header.users


def test_another_database_starts_a_new_data_file(
    acme: tuple[State, Digests], tmp_path: Path
) -> None:
    state, sip = acme
    writer = GenerationWriter(tmp_path / "g")
    first = write(writer, state, sip, {})
    other = dataclasses.replace(IDENTITY, database="pbx_restored")
    second = writer.write(state, sip, {}, generation="g", identity=other, dsn_fingerprint="fp",
                          allow_empty=True)  # fmt: skip
    assert second.rendered == first.rendered and second.header.data != first.header.data

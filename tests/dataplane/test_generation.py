"""The generation file workers map: same answers byte for byte, never torn, never foreign,
never emptied over users; the follower keeps the last good generation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler.core.identity import DatabaseIdentity
from reconciler.dataplane.follower import GenerationFollower
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.persist import EmptySnapshotRefused, SnapshotError, SnapshotMismatch
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import answer, parse_form
from tests.serve.test_xmlcurl_fixtures import a1_hashes_for, captured, load_state, password

IDENTITY = DatabaseIdentity("7000000000000000001", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")
OTHER = DatabaseIdentity("7000000000000000002", "pbx", "0b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5b")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="g1")


def write(snapshot: Snapshot, path: Path, **kw: object) -> None:
    write_generation(snapshot, path, identity=IDENTITY, dsn_fingerprint="fp", **kw)  # type: ignore[arg-type]


def test_every_captured_request_gets_the_same_bytes(built: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "g"
    write(built, path)
    mapped = open_generation(path, expected_identity=IDENTITY, dsn_fingerprint="fp")
    templates = load_templates()
    bodies = [str(capture["body"]) for _name, capture in captured()]
    assert bodies
    for body in bodies:
        form = parse_form(body.encode())
        assert answer(mapped, form, templates) == answer(built, form, templates), body


def test_the_file_is_private_and_holds_no_password(built: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "g"
    write(built, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = path.read_bytes()
    assert password("acme", "1001").encode() not in data
    assert b"a1" not in data.split(b"\n", 1)[0]


@pytest.mark.parametrize("damage", ["truncate", "flip", "pad"])
def test_a_torn_generation_is_never_read(built: Snapshot, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "g"
    write(built, path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "flip":
        data[-50] ^= 0x01
    else:
        data += b"x"
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        open_generation(path, expected_identity=IDENTITY, dsn_fingerprint="fp")


def test_another_databases_generation_is_refused(built: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "g"
    write(built, path)
    with pytest.raises(SnapshotMismatch):
        open_generation(path, expected_identity=OTHER, dsn_fingerprint="fp")
    with pytest.raises(SnapshotMismatch):
        open_generation(path, dsn_fingerprint="another dsn")


def test_an_empty_generation_never_replaces_users(built: Snapshot, tmp_path: Path) -> None:
    path = tmp_path / "g"
    write(built, path)
    with pytest.raises(EmptySnapshotRefused):
        write(Snapshot(generation="empty"), path)
    assert open_generation(path, dsn_fingerprint="fp").generation == "g1"


def test_the_follower_keeps_the_last_good_and_fails_closed_when_withdrawn(
    built: Snapshot, tmp_path: Path
) -> None:
    path = tmp_path / "g"
    follower = GenerationFollower(path, dsn_fingerprint="fp")
    follower.check()
    assert follower.get() is None  # none yet: fail closed
    write(built, path)
    follower.check()
    first = follower.get()
    assert first is not None and first.user("acme.example.com", "1001") is not None
    path.write_bytes(path.read_bytes()[:-10])  # torn (a rename makes this impossible; still)
    follower.check()
    assert follower.get() is first and follower.refused == 1
    write(build_snapshot({}, {}, generation="g2"), path, allow_empty=True)
    follower.check()
    current = follower.get()
    assert current is not None and current.generation == "g2"
    assert current.user("acme.example.com", "1001") is None
    path.unlink()
    follower.check()
    assert follower.get() is None

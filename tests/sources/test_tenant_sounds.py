"""Copying tenants' sounds from git into the sounds root: atomically, removing what git
removed, repairing and reporting drift, one tenant's failure its own."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from reconciler.sources import tenant_sounds
from reconciler.sources.tenant_sounds import SoundSyncer, diff_sounds
from tests.specs_schema.test_tenant_sounds import make_wav


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    git = tmp_path / "tenants.d"
    make_wav(git / "acme" / "sounds" / "moh" / "loop.wav")
    make_wav(git / "acme" / "sounds" / "hello.wav", rate=16000)
    make_wav(git / "globex" / "sounds" / "hi.wav")
    return git, tmp_path / "sounds"


def test_the_decision_names_writes_removals_and_drift() -> None:
    diff = diff_sounds(
        desired={"a.wav": "1", "b.wav": "2", "c.wav": "3"},
        actual={"a.wav": "1", "b.wav": "x", "c.wav": "y", "old.wav": "9"},
        copied={"b.wav": "2", "c.wav": "0"},
    )
    assert diff.write == ("b.wav", "c.wav")
    assert diff.remove == ("old.wav",)
    assert diff.drifted == ("b.wav",)  # c.wav changed in git since it was copied


def test_sounds_are_copied_removed_and_drift_repaired(tree: tuple[Path, Path]) -> None:
    git, root = tree
    syncer = SoundSyncer(git, root)
    first = syncer.sync(["acme"])["acme"]
    assert first.copied == ("hello.wav", "moh/loop.wav")
    copy = root / "acme" / "moh" / "loop.wav"
    assert copy.read_bytes() == (git / "acme" / "sounds" / "moh" / "loop.wav").read_bytes()
    assert not (root / "globex").exists()  # only the tenants asked for
    assert syncer.sync(["acme"])["acme"].copied == ()

    copy.write_bytes(b"changed on disk")
    repaired = syncer.sync(["acme"])["acme"]
    assert repaired.drifted == ("moh/loop.wav",)
    assert copy.read_bytes() == (git / "acme" / "sounds" / "moh" / "loop.wav").read_bytes()

    (git / "acme" / "sounds" / "hello.wav").unlink()
    (root / "acme" / "planted.wav").write_bytes(b"x")
    removed = syncer.sync(["acme"])["acme"]
    assert removed.removed == ("hello.wav", "planted.wav")
    assert sorted(p.name for p in (root / "acme").rglob("*") if p.is_file()) == ["loop.wav"]


def test_a_link_on_the_switch_side_is_replaced_not_followed(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    git, root = tree
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"keep me")
    (root / "acme").mkdir(parents=True)
    os.symlink(outside, root / "acme" / "hello.wav")
    SoundSyncer(git, root).sync(["acme"])
    assert outside.read_bytes() == b"keep me"
    assert not (root / "acme" / "hello.wav").is_symlink()


def test_invalid_files_in_git_are_not_copied(tree: tuple[Path, Path]) -> None:
    git, root = tree
    make_wav(git / "acme" / "sounds" / "stereo.wav", channels=2)
    report = SoundSyncer(git, root).sync(["acme"])["acme"]
    assert "stereo.wav" not in report.copied
    assert not (root / "acme" / "stereo.wav").exists()


def test_a_full_disk_fails_that_tenant_only(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    git, root = tree
    real_mkstemp = tenant_sounds.tempfile.mkstemp

    def full_for_acme(*args: object, **kwargs: object) -> tuple[int, str]:
        if "acme" in str(kwargs.get("dir")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_mkstemp(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(tenant_sounds.tempfile, "mkstemp", full_for_acme)
    reports = SoundSyncer(git, root).sync(["acme", "globex"])
    error = reports["acme"].error
    assert error is not None and "No space left on device" in error
    assert reports["globex"].copied == ("hi.wav",)

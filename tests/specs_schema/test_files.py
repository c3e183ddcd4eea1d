"""How the loader reads files: once, consistently, and never mistaking a file it could not
read for a tenant removed from git; and how agent gateways are checked against the platform
file, whichever way the files were given."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from specs_schema import load as load_mod
from specs_schema.load import SpecError, SpecLoader, load_specs

ACME = """\
id: acme
domain: acme.example.com
name: Acme
extensions:
  - {number: "1001", name: Alice}
agents:
  - {name: alice, extension: "1001"}
  - {name: night, contact: sofia/gateway/carrier1/+14155550199}
"""
PLATFORM = "gateways:\n  - {name: carrier1}\n  - {name: carrier2}\n"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def shown(result: object, root: Path) -> list[str]:
    return [str(e).removeprefix(f"{root}/") for e in result.errors]  # type: ignore[attr-defined]


# --- a file that changes while it is read -------------------------------------------------


def test_file_changing_during_the_read_is_a_transient_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "acme.yaml", ACME.replace("carrier1", "carrier2"))
    write(tmp_path, "_platform.yaml", PLATFORM)
    real_read = os.read
    appended: list[bool] = []

    def read_while_an_editor_appends(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if not appended and os.fstat(fd).st_ino == path.stat().st_ino:
            appended.append(True)
            with path.open("a") as editor:
                editor.write("  - {name: half")
        return data

    loader = SpecLoader()
    monkeypatch.setattr(load_mod.os, "read", read_while_an_editor_appends)
    result = loader.load([tmp_path])
    monkeypatch.undo()
    assert shown(result, tmp_path) == ["acme.yaml:1:1: changed while being read; will retry"]
    (error,) = result.errors
    assert error.transient and error.to_dict()["transient"] is True
    assert result.unstable == {"acme"}
    assert "acme" in result.invalid and "acme" not in result.tenants

    # the next pass reads the file as it now is (the half line is a YAML error, not transient)
    again = loader.load([tmp_path])
    assert again.unstable == frozenset()
    assert "acme" in again.invalid
    assert not any(e.transient for e in again.errors)
    path.write_text(ACME)
    assert loader.load([tmp_path]).ok


def test_file_replaced_between_stat_and_open_is_a_transient_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "acme.yaml", ACME)
    real_open = os.open

    def open_after_an_atomic_rename(file: object, flags: int, *args: object) -> int:
        replacement = tmp_path / "acme.yaml.tmp"
        replacement.write_text(ACME.replace("Acme", "Acme Two"))
        replacement.replace(path)
        return real_open(file, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(load_mod.os, "open", open_after_an_atomic_rename)
    result = load_specs([tmp_path])
    assert [e.message for e in result.errors] == ["changed while being read; will retry"]
    assert result.unstable == {"acme"}


def test_transient_flag_is_absent_from_ordinary_errors() -> None:
    error = SpecError("a.yaml", 1, 2, "name", "boom")
    assert error.to_dict() == {
        "file": "a.yaml",
        "line": 1,
        "col": 2,
        "field": "name",
        "message": "boom",
    }


def test_cli_json_marks_transient_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "acme.yaml", ACME)
    changed = SpecError(str(tmp_path / "acme.yaml"), 1, 1, "", "changed", True)
    monkeypatch.setattr(load_mod, "_read_stable", lambda path, before: changed)
    out = CliRunner().invoke(main, ["validate", "--format", "json", str(tmp_path)]).stdout
    assert json.loads(out)["errors"][0]["transient"] is True


# --- the cache: fast path by stat, full pass by content ---------------------------------------


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = load_mod._load_tenant
    monkeypatch.setattr(
        load_mod,
        "_load_tenant",
        lambda text, file, stem: parsed.append(stem) or real(text, file, stem),
    )
    return parsed


def same_size_same_mtime_edit(path: Path, old: str, new: str) -> None:
    assert len(old) == len(new)
    before = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_edit_keeping_size_and_mtime_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "acme.yaml", ACME)
    write(tmp_path, "_platform.yaml", PLATFORM)
    loader = SpecLoader()
    assert loader.load([tmp_path]).tenants["acme"].spec.name == "Acme"
    same_size_same_mtime_edit(path, "name: Acme", "name: Acne")
    assert loader.load([tmp_path]).tenants["acme"].spec.name == "Acne"


def test_reread_compares_content_when_the_stat_looks_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system whose timestamps cannot tell the edit apart (coarse clocks, a restore
    that keeps ctime): the fast path keeps the old parse, a ``reread`` pass does not."""
    path = write(tmp_path, "acme.yaml", ACME)
    write(tmp_path, "_platform.yaml", PLATFORM)
    loader = SpecLoader()
    loader.load([tmp_path])
    same_size_same_mtime_edit(path, "name: Acme", "name: Acne")
    # pretend the stat is the one the cache holds
    entry = loader._cache[str(path)]
    st = path.stat()
    loader._cache[str(path)] = dataclasses.replace(
        entry, stamp=(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    )
    parsed = count_parses(monkeypatch)
    assert loader.load([tmp_path]).tenants["acme"].spec.name == "Acme"
    assert parsed == []
    assert loader.load([tmp_path], reread=True).tenants["acme"].spec.name == "Acne"
    assert parsed == ["acme"]


def test_reread_of_unchanged_content_reuses_the_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "acme.yaml", ACME)
    loader = SpecLoader()
    first = loader.load([tmp_path])
    os.utime(path, ns=(1, 1))  # touched, content unchanged
    parsed = count_parses(monkeypatch)
    second = loader.load([tmp_path], reread=True)
    assert parsed == []
    assert second.errors == first.errors


def test_a_file_that_becomes_a_directory_is_not_served_from_cache(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", ACME.replace("  - {name: night, contact", "  # "))
    loader = SpecLoader()
    assert loader.load([tmp_path]).ok
    path.unlink()
    path.mkdir()
    result = loader.load([tmp_path])
    assert "acme" in result.invalid and result.tenants == {}


# --- gateways ---------------------------------------------------------------------------------


def test_contact_gateway_must_be_declared_by_the_platform(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME.replace("carrier1", "carrier9"))
    write(tmp_path, "_platform.yaml", PLATFORM)
    assert shown(load_specs([tmp_path]), tmp_path) == [
        "acme.yaml:8:28: agents[1].contact: gateway 'carrier9' is not declared in "
        "_platform.yaml gateways: [carrier1, carrier2]"
    ]


def test_without_a_platform_file_no_gateway_is_declared(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME)
    result = load_specs([tmp_path])
    assert shown(result, tmp_path) == [
        "acme.yaml:8:28: agents[1].contact: gateway 'carrier1' is not declared in "
        "_platform.yaml gateways: []"
    ]
    assert "acme" in result.invalid


def test_single_file_uses_the_platform_file_beside_it(tmp_path: Path) -> None:
    acme = write(tmp_path, "acme.yaml", ACME)
    write(tmp_path, "_platform.yaml", PLATFORM)
    result = load_specs([acme])
    assert result.ok and result.platform is None  # beside: consulted, not loaded
    code = CliRunner().invoke(main, ["validate", str(acme)]).exit_code
    assert code == 0


def test_platform_given_with_the_file_wins_over_the_one_beside_it(tmp_path: Path) -> None:
    acme = write(tmp_path / "tenants", "acme.yaml", ACME)
    write(tmp_path / "tenants", "_platform.yaml", "gateways: []\n")
    other = write(tmp_path / "other", "_platform.yaml", PLATFORM)
    assert load_specs([acme, other]).ok
    assert not load_specs([acme]).ok


def test_platform_with_broken_gateways_freezes_gateway_contacts_only(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME)
    write(tmp_path, "beta.yaml", ACME.replace("acme", "beta").split("  - {name: night")[0])
    write(tmp_path, "_platform.yaml", "gateways:\n  - {name: Carrier One}\n")
    result = load_specs([tmp_path])
    assert set(result.tenants) == {"beta"}
    assert shown(result, tmp_path) == [
        "_platform.yaml:2:12: gateways[0].name: must be a gateway name: a-z or 0-9, then "
        "a-z, 0-9, _, . or - (max 63)",
        "acme.yaml:8:28: agents[1].contact: gateway 'carrier1' cannot be checked: "
        "_platform.yaml is invalid",
    ]


def test_duplicate_gateway_is_an_error_at_the_second(tmp_path: Path) -> None:
    write(tmp_path, "_platform.yaml", PLATFORM + "  - {name: carrier1}\n")
    assert shown(load_specs([tmp_path]), tmp_path) == [
        "_platform.yaml:4:12: gateways[2].name: duplicate gateway 'carrier1' (first at "
        "gateways[0].name)"
    ]

"""Packaging: templates and the node configuration install under reconciler.*, never as
generic top-level packages; every package directory is shipped."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from reconciler.serve.templating import SHIPPED_PACKAGE, TEMPLATE_NAMES, load_templates

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def package_directories() -> set[str]:
    found = set()
    for root in ("reconciler", "specs_schema"):
        for init in (REPO / root).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_every_package_directory_is_listed_for_the_wheel() -> None:
    listed = set(SETUPTOOLS["packages"])
    assert package_directories() <= listed, "add the new package to pyproject.toml"
    mapped = set(SETUPTOOLS["package-dir"])
    assert (
        listed - package_directories()
        == mapped
        == {
            "reconciler.templates",
            "reconciler.freeswitch_conf",
        }
    )


def test_shipped_templates_load_through_the_project_path() -> None:
    assert SHIPPED_PACKAGE == "reconciler.templates"
    for name in TEMPLATE_NAMES:
        assert resources.files(SHIPPED_PACKAGE).joinpath(name).is_file()
    assert load_templates().source == "shipped templates"


def test_node_configuration_ships_under_the_project_path() -> None:
    package = resources.files("reconciler.freeswitch_conf")
    for name in ("freeswitch.xml", "systemd/pbx-reconciler.service", "README.md"):
        assert package.joinpath(name).is_file(), name


def test_no_generic_top_level_package_outside_the_repository(tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, reconciler.templates, reconciler.freeswitch_conf.render;"
        "print(u.find_spec('templates'), u.find_spec('freeswitch_conf'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


@pytest.mark.timeout(300)
def test_the_wheel_holds_only_project_named_packages(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("pbx_reconciler-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"reconciler", "specs_schema", next(t for t in top if t.endswith(".dist-info"))}
    for shipped in (
        "reconciler/templates/directory.xml.j2",
        "reconciler/freeswitch_conf/render.py",
        "reconciler/freeswitch_conf/autoload_configs/xml_curl.conf.xml.j2",
        "reconciler/freeswitch_conf/systemd/pbx-reconciler.service",
        "reconciler/serve/listener.py",
        "specs_schema/tenant.schema.json",
    ):
        assert shipped in names, shipped

    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import reconciler, reconciler.serve as s;"
        f"print(reconciler.__file__.startswith({str(unpacked)!r}), s.load_templates().source)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True shipped templates"

"""Packaging: templates and the node configuration live in the top-level folders templates/
and freeswitch_conf/ and install under reconciler/, never as generic top-level packages;
every package directory is shipped, and the checkout imports as it is (no editable install)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from reconciler.serve.templating import TEMPLATE_NAMES, load_templates
from reconciler.shipped_data import NODE_TREE, TEMPLATES, shipped_folder

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# the shipped data folders: where they are in the repository, where they install
MAPPED = {"reconciler.templates": "templates", "reconciler.freeswitch_conf": "freeswitch_conf"}


def package_directories() -> set[str]:
    found = set()
    for root in ("reconciler", "specs_schema"):
        for init in (REPO / root).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_every_package_directory_is_listed_for_the_wheel() -> None:
    listed = set(SETUPTOOLS["packages"])
    expected = package_directories() | set(MAPPED)
    assert expected == listed, "list every package in pyproject.toml, no other"
    assert SETUPTOOLS["package-dir"] == MAPPED, "the data folders install under reconciler/"


def test_the_checkout_reads_the_top_level_data_folders() -> None:
    """An editable install (or a checkout on the path) reads the repository's own folders."""
    assert Path(str(shipped_folder(TEMPLATES))) == REPO / "templates"
    assert Path(str(shipped_folder(NODE_TREE))) == REPO / "freeswitch_conf"
    for name in TEMPLATE_NAMES:
        assert (REPO / "templates" / name).is_file(), name
    assert load_templates().source == "shipped templates"
    for name in ("freeswitch.xml", "autoload_configs/xml_curl.conf.xml.j2"):
        assert (REPO / "freeswitch_conf" / name).is_file(), name


def test_the_checkout_imports_without_an_editable_install(tmp_path: Path) -> None:
    """Only the dependencies' site-packages and the checkout on the path, no site hooks (so
    no editable-install finder): the templates and the node tree are found all the same."""
    probe = (
        "import reconciler, reconciler.cli.main, reconciler.serve as s;"
        "from reconciler.nodeconfig.files import iter_sources;"
        "print(reconciler.__file__, s.load_templates().source, len(list(iter_sources())))"
    )
    paths = dict.fromkeys((str(REPO), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")))
    run = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(paths)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    module, _, count = run.stdout.split()[0], None, run.stdout.split()[-1]
    assert module.startswith(str(REPO / "reconciler")), run.stdout
    assert "shipped templates" in run.stdout and int(count) > 10


def test_no_generic_top_level_package_outside_the_repository(tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, reconciler.serve.templating, reconciler.nodeconfig.files;"
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
    # every template and every file of the node tree, under reconciler/
    for package, folder in MAPPED.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(REPO / folder).as_posix()
                assert f"{package.replace('.', '/')}/{rel}" in names, rel
    for shipped in (
        "reconciler/templates/directory.xml.j2",
        "reconciler/freeswitch_conf/autoload_configs/xml_curl.conf.xml.j2",
        "reconciler/freeswitch_conf/sip_profiles/carriers/00-no-gateways.xml",
        "reconciler/freeswitch_conf/systemd/pbx-reconciler.service",
        "reconciler/nodeconfig/files.py",
        "reconciler/serve/listener.py",
        "specs_schema/tenant.schema.json",
    ):
        assert shipped in names, shipped

    # the unpacked wheel reads its own copies, not the checkout's
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import reconciler, reconciler.serve as s;"
        "from reconciler.shipped_data import NODE_TREE, TEMPLATES, shipped_folder;"
        "from reconciler.nodeconfig.files import iter_sources;"
        f"inside = [str(shipped_folder(n)).startswith({str(unpacked)!r})"
        " for n in (TEMPLATES, NODE_TREE)];"
        f"print(reconciler.__file__.startswith({str(unpacked)!r}), all(inside),"
        " len(list(iter_sources())) > 10, s.load_templates().source)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True True True shipped templates"

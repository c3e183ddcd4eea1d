"""The import-linter contracts are fences that hold: a planted import in a copy of the code
breaks the contract that forbids it (a contract that cannot fail proves nothing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ESL_CONTRACT = "The ESL client is a library: stdlib only"
PSYCOPG_CONTRACT = "psycopg only in the store"
JINJA_CONTRACT = "jinja2 only where XML and pages are rendered"
SERVING_CONTRACT = "Nothing of the store in the serving path"
DATAPLANE_CONTRACT = "The data plane imports nothing of the control plane"


def lint_copy(tmp_path: Path, plant: tuple[str, str] | None) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a copy of the packages, ``plant`` = (module file, import line)."""
    for package in ("reconciler", "specs_schema"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if plant is not None:
        target = tmp_path / plant[0]
        text = target.read_text()
        head, sep, rest = text.partition("\nimport ")
        target.write_text(f"{head}\n{plant[1]}{sep}{rest}")
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def lint_imports_available() -> None:
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed beside this interpreter")


@pytest.mark.usefixtures("lint_imports_available")
@pytest.mark.parametrize(
    "planted",
    ["import reconciler.core", "import aiohttp", "from reconciler.switch import errors"],
)
def test_an_esl_module_that_imports_beyond_the_stdlib_breaks_the_contract(
    tmp_path: Path, planted: str
) -> None:
    result = lint_copy(tmp_path, ("reconciler/esl/frames.py", planted))
    assert result.returncode != 0, result.stdout
    broken = result.stdout.partition("Broken contracts")[2]
    assert ESL_CONTRACT in broken
    assert "reconciler.esl.frames ->" in broken


def broken_contracts(result: subprocess.CompletedProcess[str]) -> str:
    """The report's part after "Broken contracts" (empty when every contract was kept)."""
    assert result.returncode != 0, result.stdout
    return result.stdout.partition("Broken contracts")[2]


@pytest.mark.usefixtures("lint_imports_available")
def test_a_serve_module_that_imports_psycopg_breaks_two_fences(tmp_path: Path) -> None:
    broken = broken_contracts(
        lint_copy(tmp_path, ("reconciler/serve/xmlcurl.py", "import psycopg"))
    )
    assert PSYCOPG_CONTRACT in broken
    assert SERVING_CONTRACT in broken
    assert "reconciler.serve.xmlcurl -> psycopg" in broken


@pytest.mark.usefixtures("lint_imports_available")
def test_the_serving_path_may_not_reach_the_store_even_through_another_module(
    tmp_path: Path,
) -> None:
    """The snapshot module imports core; core importing the store would pull it into serve."""
    planted = ("reconciler/core/served.py", "import reconciler.store.errors")
    broken = broken_contracts(lint_copy(tmp_path, planted))
    assert SERVING_CONTRACT in broken
    assert "reconciler.store.errors" in broken


@pytest.mark.usefixtures("lint_imports_available")
@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("reconciler/sources/specdir.py", "import psycopg", PSYCOPG_CONTRACT),
        ("reconciler/switch/session.py", "import psycopg_pool", PSYCOPG_CONTRACT),
        ("reconciler/reconcile.py", "import jinja2", JINJA_CONTRACT),
    ],
)
def test_a_third_party_outside_its_room_breaks_its_fence(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    broken = broken_contracts(lint_copy(tmp_path, (module, planted)))
    assert contract in broken
    assert module.removesuffix(".py").replace("/", ".") + " ->" in broken


@pytest.mark.usefixtures("lint_imports_available")
@pytest.mark.parametrize(
    "planted",
    [
        "import reconciler.store.errors",
        "import reconciler.web",
        "import reconciler.reconcile",
        "from reconciler.switch import session",
        "import psycopg",
    ],
)
def test_a_dataplane_module_that_reaches_the_control_plane_breaks_its_fence(
    tmp_path: Path, planted: str
) -> None:
    broken = broken_contracts(lint_copy(tmp_path, ("reconciler/dataplane/follower.py", planted)))
    assert DATAPLANE_CONTRACT in broken
    assert "reconciler.dataplane.follower ->" in broken


@pytest.mark.usefixtures("lint_imports_available")
def test_the_unplanted_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_copy(tmp_path, None)
    assert result.returncode == 0, result.stdout

"""A worker's import is on the way of every restart's first answer: it must not load the
spec's pydantic models (half its import time) nor anything of the control plane."""

from __future__ import annotations

import json
import subprocess
import sys


def test_a_worker_imports_no_pydantic_and_no_control_plane() -> None:
    probe = (
        "import json, sys, reconciler.dataplane.worker;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('pydantic', 'psycopg', 'reconciler', 'specs_schema'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "reconciler.dataplane.worker" in loaded  # the probe saw the worker's imports
    unwanted = {
        m
        for m in loaded
        if m.split(".")[0] in ("pydantic", "psycopg")
        or m == "specs_schema.models"
        or m.startswith(("reconciler.store", "reconciler.web", "reconciler.reconcile"))
    }
    assert unwanted == set()

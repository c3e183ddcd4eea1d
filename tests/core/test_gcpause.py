"""The one GC pause: restores what it found; the pass loads specs under it."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import pytest

from reconciler.core.gcpause import gc_paused
from reconciler.reconcile import Reconciler
from tests.conftest import EXAMPLE_TENANTS
from tests.fakes.memory_store import MemoryStore


def test_the_pause_leaves_the_gc_as_it_found_it() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_a_pass_loads_its_specs_with_the_gc_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, tenants)
    reconciler = Reconciler(tenants, MemoryStore())
    seen: list[bool] = []
    load = reconciler.loader.load

    def watched(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reconciler.loader, "load", watched)
    reconciler.plan_pass(full=True)
    assert seen == [False] and gc.isenabled()

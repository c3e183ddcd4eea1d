"""The pass loop against an in-memory store: retries back off, errors are logged once."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from reconciler.core.backoff import Backoff
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.passes import PassLoop
from reconciler.daemon.snapshots import ServedSnapshot
from reconciler.daemon.status import StatusBoard
from reconciler.daemon.switches import SwitchLink
from reconciler.daemon.triggers import Triggers
from reconciler.reconcile import PassGuards, Reconciler
from reconciler.store import MigrationError
from tests.conftest import EXAMPLE_TENANTS
from tests.fakes.memory_store import MemoryStore


def make_loop(tmp_path: Path, store: MemoryStore, *, retry: Backoff) -> PassLoop:
    tenants = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, tenants)
    metrics = Metrics()
    loop = PassLoop(
        triggers=Triggers(interval=3600),
        snapshot=ServedSnapshot(
            tmp_path / "xmlcurl.generation",
            metrics,
            fingerprint="memory",
            probe=lambda timeout: None,
        ),
        live=SwitchLink((), metrics),
        status=StatusBoard(),
        metrics=metrics,
        is_leader=lambda: True,
        database_up=lambda: True,
        retry=retry,
    )
    loop.reconciler = Reconciler(tenants, store)
    return loop


async def run_for(loop: PassLoop, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    loop.triggers.wake()
    await asyncio.wait_for(task, 5)


async def test_a_failing_pass_backs_off_instead_of_retrying_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(down=True)
    loop = make_loop(tmp_path, store, retry=Backoff(base=0.2, cap=0.4, floor=0.2))
    caplog.set_level(logging.INFO)
    await run_for(loop, 2.0)
    attempts = store.calls.count("migrate")
    assert 3 <= attempts <= 11, f"{attempts} attempts in 2 s (a storm would be hundreds)"
    failures = [r for r in caplog.records if r.getMessage() == "reconcile pass failed"]
    assert len(failures) == 1, "the same error is logged once, not per attempt"
    assert loop.status.last_pass["result"] == "error"


async def test_the_loop_recovers_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(down=True)
    loop = make_loop(tmp_path, store, retry=Backoff(base=0.1, cap=0.2, floor=0.1))
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(0.5)
    store.down = False
    for _ in range(100):
        if "acme" in store.state:
            break
        await asyncio.sleep(0.05)
    stop.set()
    loop.triggers.wake()
    await asyncio.wait_for(task, 5)
    assert any(r.getMessage() == "reconcile pass recovered" for r in caplog.records)
    assert loop.snapshot.current is not None and loop.snapshot.current.counts()["users"] > 0


async def test_a_held_shrink_is_decided_when_its_window_ends_not_at_the_interval(
    tmp_path: Path,
) -> None:
    """Nothing else triggers a pass here (interval an hour, no file watcher): the loop itself
    looks again once the file has had its stable window."""
    store = MemoryStore()
    loop = make_loop(tmp_path, store, retry=Backoff(base=0.1, cap=0.2, floor=0.1))
    loop.settle_seconds = 3600.0  # only the window's own timer can bring the next pass
    tenants = tmp_path / "tenants.d"
    loop.reconciler = Reconciler(
        tenants, store, PassGuards(hold_shrinking=True, stable_seconds=0.2)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await loop.wait_passes(1, 30)
        assert store.state["acme"].queues
        acme = tenants / "acme.yaml"
        acme.write_text(acme.read_text().split("agents:")[0])
        loop.triggers.request("files")
        await loop.wait_passes(2, 30)
        assert store.state["acme"].queues, "held on the first read"
        await loop.wait_passes(3, 30)
        assert not store.state["acme"].queues, "applied once the file stayed unchanged"
    finally:
        stop.set()
        loop.triggers.wake()
        await asyncio.wait_for(task, 5)


async def test_a_permanent_error_stalls_until_its_input_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration error fails the same way on every retry: no backoff loop, a ``stalled``
    status, and a new attempt only when something that may fix it arrives."""
    store = MemoryStore()

    def broken() -> None:
        store.calls.append("migrate")
        raise MigrationError("migration 7 of pbx failed: column exists")

    monkeypatch.setattr(store, "migrate", broken)
    loop = make_loop(tmp_path, store, retry=Backoff(base=0.01, cap=0.02, floor=0.01))
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await loop.wait_passes(1, 30)
        assert store.calls.count("migrate") == 1
        assert loop.status.last_pass["result"] == "stalled"
        assert "column exists" in loop.status.last_pass["error"]
        loop.triggers.request("interval", full=True)  # nothing new: no attempt
        await loop.wait_passes(2, 30)
        assert store.calls.count("migrate") == 1, "a permanent error is not retried as is"
        loop.triggers.request("sighup", full=True)  # a person says something changed
        await loop.wait_passes(3, 30)
        assert store.calls.count("migrate") == 2
    finally:
        stop.set()
        loop.triggers.wake()
        await asyncio.wait_for(task, 5)
    stalls = [r for r in caplog.records if r.getMessage() == "reconcile pass stalled"]
    assert len(stalls) == 1, "logged once, when it appears"
    assert not [r for r in caplog.records if r.getMessage() == "reconcile pass failed"]


async def test_a_full_pass_leaves_what_it_read_out_of_later_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a full pass the held state is in the permanent generation: the first edit
    after a start no longer pays a collection walking every tenant's records (the control
    plane writes generations: no in-memory snapshot build freezes it for the pass loop)."""
    import gc

    from reconciler.core.gcpause import gc_paused
    from reconciler.serve import snapshot

    monkeypatch.setattr(snapshot, "gc_paused", lambda freeze=False: gc_paused())
    loop = make_loop(tmp_path, MemoryStore(), retry=Backoff(base=0.1, cap=0.2, floor=0.1))
    gc.unfreeze()
    try:
        await run_for(loop, 1.0)
        assert loop.reconciler is not None and loop.passes >= 1
        held = loop.reconciler.applied.state
        assert held and gc.get_freeze_count() > 0
        tracked = {id(o) for o in gc.get_objects()}
        assert id(held) not in tracked  # frozen: collections skip it
    finally:
        gc.unfreeze()

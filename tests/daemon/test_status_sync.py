"""Tenant sync status built once, typed; ``/status`` serialises it, the portal takes it as
is; the platform scope's last apply is in ``/status`` and ``pbx status``."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from reconciler.cli.status_view import render_status
from reconciler.core.sync import SyncStatus, TenantSync
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.portal_link import DaemonPortalDeps
from reconciler.daemon.status import StatusBoard, tenant_rows, tenant_syncs
from reconciler.daemon.switches import SwitchLink
from reconciler.reconcile import AppliedState, Reconciler
from reconciler.store import RegistryEntry, SpecStatus
from tests.conftest import EXAMPLE_TENANTS
from tests.fakes.memory_store import MemoryStore

AT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def _applied() -> AppliedState:
    entry = RegistryEntry(
        "acme", "tenant_acme", "acme.example.com", "active", "d1", "abc", False, AT,
        "abd", False, AT, "failed", "boom",
    )  # fmt: skip
    invalid = SpecStatus("globex", "tenants.d/globex.yaml", ("globex.yaml:1:1: x: bad",), AT)
    return AppliedState(registry={"acme": entry}, spec_status={"globex": invalid})


def test_the_typed_record_is_what_status_serialises() -> None:
    syncs = tenant_syncs(_applied(), None, {"acme": AT}, {})
    acme = syncs["acme"]
    assert isinstance(acme, TenantSync) and acme.sync is SyncStatus.OUT_OF_SYNC
    assert acme.last_reconcile == AT and acme.domain == "acme.example.com"
    assert syncs["globex"].sync is SyncStatus.INVALID
    rows = tenant_rows(_applied(), None, {"acme": AT}, {})
    assert rows["acme"] == acme.to_dict()
    assert rows["acme"]["last_reconcile"] == "2026-12-07T15:00:00+00:00"
    assert rows["acme"]["sync"] == "out of sync" and rows["acme"]["last_error"] == "boom"
    assert rows["globex"]["invalid_since"] == AT.isoformat()


def test_the_portal_takes_the_typed_records_as_they_are() -> None:
    deps = DaemonPortalDeps(SwitchLink((), Metrics()), lambda: None)
    syncs = tenant_syncs(_applied(), None, {"acme": AT}, {})
    deps.follow(_applied(), syncs)
    assert deps.tenant_sync()["acme"] is syncs["acme"]


def test_status_shows_the_platform_scope_and_a_failing_platform_makes_a_partial_pass(
    tmp_path: Path,
) -> None:
    tenants = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, tenants)
    board = StatusBoard()
    assert board.record_outcome("t", Reconciler(tenants, MemoryStore()).run_pass(full=True)) == (
        "ok"
    )
    assert board.platform["result"] == "applied" and board.platform["error"] is None
    store = MemoryStore(fail_platform=True)
    result = board.record_outcome("t", Reconciler(tenants, store).run_pass(full=True))
    assert result == "partial"
    assert board.platform["result"] == "failed" and "injected" in board.platform["error"]
    text = render_status({"last_pass": board.last_pass, "platform": board.platform})
    assert "platform: failed at " in text and "error=platform: injected failure" in text

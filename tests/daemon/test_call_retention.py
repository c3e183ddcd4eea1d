"""Call retention: each applied tenant's cutoff comes from its spec's ``retention.calls``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from reconciler.daemon.retention import retention_cutoffs
from specs_schema.models import TenantSpec

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def loaded(tenant_id: str, **extra: Any) -> SimpleNamespace:
    spec = TenantSpec.model_validate(
        {"id": tenant_id, "domain": f"{tenant_id}.example.com", "name": tenant_id, **extra}
    )
    return SimpleNamespace(spec=spec)


def test_each_applied_tenant_is_cut_at_its_own_retention() -> None:
    reconciler: Any = SimpleNamespace(
        last_specs=SimpleNamespace(
            tenants={
                "acme": loaded("acme", retention={"calls": "30d"}),
                "globex": loaded("globex"),
                "unapplied": loaded("unapplied"),
            }
        ),
        applied=SimpleNamespace(state={"acme": object(), "globex": object(), "invalid": object()}),
    )
    assert retention_cutoffs(reconciler, NOW) == {
        "acme": NOW - timedelta(days=30),
        "globex": NOW - timedelta(days=400),  # the default
    }


def test_before_any_pass_nothing_is_cut() -> None:
    reconciler: Any = SimpleNamespace(last_specs=None, applied=SimpleNamespace(state={"acme": 1}))
    assert retention_cutoffs(reconciler, NOW) == {}

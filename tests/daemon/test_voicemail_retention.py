"""Voicemail retention: each box keeps its messages for its own ``voicemail.retention``, else
its tenant's, the platform's, or 90 days; the leader deletes older ones through
``vm_delete`` (against the fake switch, which answers as mod_voicemail does), counted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.core.desired import tenant_state_from_spec
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.voicemail_retention import box_days, expire_voicemail
from reconciler.switch.voicemail.engine import VoicemailSwitches
from specs_schema.models import Retention, TenantSpec
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.switch.voicemail_support import connected_voicemail

DAY = 86400


def spec(tenant_id: str, **extra: Any) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "id": tenant_id,
            "domain": f"{tenant_id}.example.com",
            "name": tenant_id,
            "settings": {"voicemail": {"enabled": True}},
            "extensions": [
                {"number": "1001", "name": "One", "voicemail": {"retention": "7d"}},
                {"number": "1002", "name": "Two"},
                {"number": "1003", "name": "Three", "voicemail": {"enabled": False}},
            ],
            **extra,
        }
    )


def reconciler_of(*specs: TenantSpec, platform: Retention | None = None) -> Any:
    return SimpleNamespace(
        last_specs=SimpleNamespace(
            tenants={s.id: SimpleNamespace(spec=s) for s in specs},
            platform=SimpleNamespace(retention=platform) if platform else None,
        ),
        applied=SimpleNamespace(state={s.id: tenant_state_from_spec(s) for s in specs}),
    )


def test_a_box_keeps_its_own_retention_else_the_tenants_else_90_days() -> None:
    kept = box_days(
        reconciler_of(spec("acme", retention={"voicemail": "30d"}), spec("globex")),
    )
    assert kept == {
        ("acme", "acme.example.com", "1001"): 7,
        ("acme", "acme.example.com", "1002"): 30,
        ("globex", "globex.example.com", "1001"): 7,
        ("globex", "globex.example.com", "1002"): 90,
    }  # 1003 has no box
    platform = box_days(reconciler_of(spec("globex"), platform=Retention(voicemail="60d")))
    assert platform[("globex", "globex.example.com", "1002")] == 60


@pytest.fixture
async def fs() -> AsyncIterator[FakeFreeSwitch]:
    async with FakeFreeSwitch() as switch:
        yield switch


@pytest.fixture
async def boxes(fs: FakeFreeSwitch) -> AsyncIterator[VoicemailSwitches]:
    async with connected_voicemail(fs) as switches:
        yield switches


async def test_the_leader_deletes_what_is_older_through_vm_delete(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    now = int(time.time())
    domain = "acme.example.com"
    old = fs.voicemail.leave("1001", domain, "/v/acme/1001/a.wav", created=now - 8 * DAY)
    fresh = fs.voicemail.leave("1001", domain, "/v/acme/1001/b.wav", created=now - 6 * DAY)
    other = fs.voicemail.leave("1002", domain, "/v/acme/1002/c.wav", created=now - 8 * DAY)
    metrics = Metrics()
    kept = {("acme", domain, "1001"): 7, ("acme", domain, "1002"): 30}
    deleted = await expire_voicemail(boxes, kept, datetime.fromtimestamp(now, UTC), metrics)
    assert deleted == {"acme": 1}
    assert set(fs.voicemail.messages) == {fresh.uuid, other.uuid}
    assert f"vm_delete 1001@{domain} {old.uuid}" in fs.api_log
    assert metrics.audio_pruned.labels("voicemail")._value.get() == 1


async def test_a_switch_that_does_not_answer_deletes_nothing(
    fs: FakeFreeSwitch, boxes: VoicemailSwitches
) -> None:
    await fs.go_down()
    kept = {("acme", "acme.example.com", "1001"): 1}
    later = datetime.now(UTC) + timedelta(days=400)
    assert await expire_voicemail(boxes, kept, later, Metrics()) == {}

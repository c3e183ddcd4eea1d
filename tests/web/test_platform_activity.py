"""The platform scope's apply history in the portal: shown to super admins as "platform",
never linked as a tenant, never shown to a tenant's admins."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from reconciler.core.model import PLATFORM
from tests.fakes.portal import SUPER, FakePortalDeps, history_entry
from tests.web.support import login, make_account

ALICE = "alice@acme.example.com"


async def _as(client: TestClient, deps: FakePortalDeps, dsn: str, email: str) -> None:
    await login(client, email, secret=make_account(dsn, deps, email), dsn=dsn)


async def test_platform_rows_show_as_platform_on_the_activity_page_and_api(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    deps.history_rows = [
        history_entry(PLATFORM, 1, "failed", "platform: boom"),
        history_entry("acme", 2),
    ]
    await _as(client, deps, portal_dsn, SUPER)
    page = await (await client.get("/platform/activity")).text()
    assert "platform: boom" in page
    assert f'href="/t/{PLATFORM}"' not in page and '<span class="muted">platform</span>' in page
    rows = (await (await client.get("/api/v1/history")).json())["history"]
    assert [(r["scope"], r["tenant"]) for r in rows] == [("platform", None), ("tenant", "acme")]


async def test_a_tenant_admin_never_sees_platform_rows(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    deps.history_rows = [history_entry(PLATFORM, 1, "failed", "platform: boom")]
    await _as(client, deps, portal_dsn, ALICE)
    page = await (await client.get("/t/acme/activity")).text()
    assert "boom" not in page

"""Activity's audit trail: filters, pages, the CSV export (safe against formula injection)
and the API's ``offset``/``since``; a tenant admin never reaches another tenant's rows,
whatever the filters say."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from reconciler.store import connect
from reconciler.store.accounts import record_audit
from reconciler.web.audit_csv import safe_cell
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.support import login, make_account

ALICE = "alice@acme.example.com"  # acme's admin
GINA = "gina@globex.example.com"  # globex's admin


def _rows(dsn: str) -> None:
    with connect(dsn) as conn:
        for i in range(60):
            record_audit(
                conn, actor=ALICE, action="reveal", result="ok", tenant_id="acme", target=f"n{i}"
            )
        record_audit(
            conn,
            actor='=HYPERLINK("http://evil")',
            action="login",
            result="failed",
            tenant_id="acme",
            detail="+cmd|' /C calc'!A0",
        )
        record_audit(
            conn,
            actor=GINA,
            action="reveal",
            result="ok",
            tenant_id="globex",
            target="globex-secret-row",
        )
        conn.execute("UPDATE pbx.portal_audit SET at = '2026-01-02T10:00:00Z' WHERE target = 'n0'")


async def _as(client: TestClient, deps: FakePortalDeps, dsn: str, email: str) -> None:
    await login(client, email, secret=make_account(dsn, deps, email), dsn=dsn)


async def test_filters_narrow_the_trail_and_pages_walk_it(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    _rows(portal_dsn)
    await _as(client, deps, portal_dsn, SUPER)
    api = await client.get("/api/v1/audit", params={"tenant": "globex"})
    assert [r["target"] for r in (await api.json())["audit"]] == ["globex-secret-row"]
    page1 = (await (await client.get("/api/v1/audit?action=reveal&limit=25")).json())["audit"]
    page2 = (await (await client.get("/api/v1/audit?action=reveal&limit=25&offset=25")).json())[
        "audit"
    ]
    assert len(page1) == len(page2) == 25 and not {r["id"] for r in page1} & {
        r["id"] for r in page2
    }
    old = (await (await client.get("/api/v1/audit?until=2026-01-02")).json())["audit"]
    assert [r["target"] for r in old] == ["n0"]
    since = (
        await (
            await client.get(
                "/api/v1/audit?since=2026-01-03&limit=500&actor=ALICE@acme.example.com"
            )
        ).json()
    )["audit"]
    assert len(since) == 59 and all(r["actor"] == ALICE for r in since)
    assert (await client.get("/api/v1/audit?since=yesterday")).status == 400
    html = await (await client.get("/platform/activity?action=reveal")).text()
    assert "Older" in html and "page=2" in html
    last = await (await client.get("/platform/activity?action=reveal&page=2")).text()
    assert "Newer" in last and "Older" not in last


async def test_a_tenant_admin_never_reaches_another_tenant_even_by_filters_or_csv(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    _rows(portal_dsn)
    await _as(client, deps, portal_dsn, ALICE)
    for url in (
        "/api/v1/tenants/acme/audit?tenant=globex&limit=500",
        "/api/v1/tenants/acme/audit?actor=" + GINA,
        "/t/acme/activity?tenant=globex",
        "/t/acme/activity/audit.csv?tenant=globex",
        "/t/acme/activity/audit.csv",
    ):
        response = await client.get(url)
        assert response.status == 200, url
        assert "globex-secret-row" not in await response.text(), url
    for url in (
        "/api/v1/tenants/globex/audit",
        "/t/globex/activity",
        "/t/globex/activity/audit.csv",
        "/platform/activity/audit.csv",
        "/api/v1/audit",
    ):
        assert (await client.get(url)).status == 404, url


async def test_the_csv_export_is_filtered_and_formula_safe(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    _rows(portal_dsn)
    await _as(client, deps, portal_dsn, ALICE)
    response = await client.get("/t/acme/activity/audit.csv?action=login")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    mine = [r for r in rows if r["result"] == "failed"]
    assert mine and mine[0]["actor"].startswith("'=HYPERLINK")
    assert mine[0]["detail"].startswith("'+cmd")
    assert all(r["action"] == "login" for r in rows)


def test_safe_cell_prefixes_every_formula_start() -> None:
    for start in "=+-@\t\r":
        assert safe_cell(start + "1") == "'" + start + "1"
    assert safe_cell("alice") == "alice" and safe_cell(None) == ""
    assert safe_cell(datetime(2026, 1, 1, tzinfo=UTC)).startswith("2026")

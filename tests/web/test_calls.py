"""Call history in the portal, over HTTP against a real database: each person sees the calls
that are theirs (member: own extensions; agent: also the queue calls they answered; tenant
admin: all, with filters and totals), another tenant's call is 404, a super admin sees
counts and never a number, callers' strings are escaped, and the CSV is formula-safe."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from reconciler.core.call_record import CallRecord, Outcome
from reconciler.core.cdr import read_cdr
from reconciler.store import connect
from reconciler.store.calls import insert_calls
from reconciler.store.migrations import create_tenant_schema
from reconciler.web import calls as calls_feature
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.test_http import ALICE, BOB, CAROL, GINA, as_user

CAPTURED = Path(__file__).resolve().parents[1] / "fakes" / "cdr"
NOW = datetime.now(UTC).replace(microsecond=0)


def call(n: int, **changes: object) -> CallRecord:
    base = read_cdr((CAPTURED / "ext_answered_a.cdr.xml").read_text())
    uuid = f"00000000-0000-0000-0000-{n:012d}"
    at = NOW - timedelta(minutes=n)
    fields = {"uuid": uuid, "call_uuid": uuid, "started_at": at, "ended_at": at + timedelta(seconds=40),
              "from_extension": None, "to_extension": None}  # fmt: skip
    return replace(base, **{**fields, **changes})  # type: ignore[arg-type]


CAROLS = call(1, from_extension="1010", to_extension="1001", from_name="<script>alert(1)</script>")
BOBS_QUEUE = call(2, queue="support", agent="bob", from_number='=HYPERLINK("http://x")')
OTHERS = call(3, from_extension="1001", to_extension="1002", outcome=Outcome.BUSY)
GLOBEX = call(4, from_extension="2001", to_extension="2002")


@pytest.fixture
def history(portal_dsn: str) -> None:
    with connect(portal_dsn) as conn:
        for tenant in ("acme", "globex"):
            with conn.transaction():
                create_tenant_schema(conn, tenant)
        insert_calls(conn, "acme", [CAROLS, BOBS_QUEUE, OTHERS])
        insert_calls(conn, "globex", [GLOBEX])


async def ids(client: TestClient, path: str) -> list[str]:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return [c["id"] for c in (await response.json())["calls"]]


@pytest.mark.usefixtures("history")
async def test_a_member_sees_the_calls_of_their_own_extensions(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, CAROL)
    assert await ids(client, "/api/v1/tenants/acme/calls") == [CAROLS.uuid]
    assert (await client.get(f"/api/v1/tenants/acme/calls/{OTHERS.uuid}")).status == 404
    assert (await client.get(f"/t/acme/calls/{CAROLS.uuid}")).status == 200
    assert (await client.get("/api/v1/tenants/acme/calls/totals")).status == 404


@pytest.mark.usefixtures("history")
async def test_an_agent_also_sees_the_queue_calls_they_answered(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    # bob's own extensions are 1002 and 1003: the busy call to 1002 and alice's answered one
    assert await ids(client, "/api/v1/tenants/acme/calls") == [BOBS_QUEUE.uuid, OTHERS.uuid]


@pytest.mark.usefixtures("history")
async def test_a_tenant_admin_sees_all_filters_and_totals(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    assert await ids(client, "/api/v1/tenants/acme/calls") == [
        CAROLS.uuid,
        BOBS_QUEUE.uuid,
        OTHERS.uuid,
    ]
    assert await ids(client, "/api/v1/tenants/acme/calls?outcome=busy") == [OTHERS.uuid]
    assert await ids(client, "/api/v1/tenants/acme/calls?queue=support") == [BOBS_QUEUE.uuid]
    assert await ids(client, "/api/v1/tenants/acme/calls?extension=1010") == [CAROLS.uuid]
    first = await (await client.get("/api/v1/tenants/acme/calls?limit=2")).json()
    rest = await ids(client, f"/api/v1/tenants/acme/calls?limit=2&after={first['next_after']}")
    assert [c["id"] for c in first["calls"]] + rest == [CAROLS.uuid, BOBS_QUEUE.uuid, OTHERS.uuid]
    totals = await (await client.get("/api/v1/tenants/acme/calls/totals")).json()
    assert (totals["calls"], totals["answered"], totals["missed"]) == (3, 2, 1)
    assert (await client.get("/api/v1/tenants/acme/calls?outcome=nope")).status == 400
    assert (await client.get("/api/v1/tenants/acme/calls?from=yesterday")).status == 400
    page = await client.get("/t/acme/calls?direction=internal")
    assert page.status == 200 and "3</strong> calls" in await page.text()


@pytest.mark.usefixtures("history")
async def test_another_tenants_call_is_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, GINA)
    assert (await client.get("/api/v1/tenants/acme/calls")).status == 404
    assert (await client.get("/t/acme/calls")).status == 404
    assert (await client.get(f"/api/v1/tenants/globex/calls/{CAROLS.uuid}")).status == 404
    assert await ids(client, "/api/v1/tenants/globex/calls") == [GLOBEX.uuid]


@pytest.mark.usefixtures("history")
async def test_a_super_admin_sees_volumes_not_numbers(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, SUPER)
    assert (await client.get("/t/acme/calls")).status == 404
    assert (await client.get(f"/api/v1/tenants/acme/calls/{CAROLS.uuid}")).status == 404
    volumes = (await (await client.get("/api/v1/call-volumes")).json())["volumes"]
    assert {v["tenant"]: v["calls"] for v in volumes}["acme"] == 3
    page = await (await client.get("/platform/calls")).text()
    assert "acme" in page and "1010" not in page and CAROLS.from_number not in page


@pytest.mark.usefixtures("history")
async def test_callers_strings_are_escaped_and_numbers_dial(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    html = await (await client.get("/t/acme/calls")).text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # a tel: link; without a browser phone configured the portal's phone is not offered
    assert f'href="tel:{CAROLS.from_number}"' in html and "data-dial" not in html


@pytest.mark.usefixtures("history")
async def test_the_csv_is_streamed_in_batches_and_formula_safe(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls_feature, "CSV_BATCH", 1)
    await as_user(client, deps, portal_dsn, ALICE)
    response = await client.get("/t/acme/calls.csv")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][0] == "started_at" and len(rows) == 4
    cells = [cell for row in rows[1:] for cell in row]
    assert '\'=HYPERLINK("http://x")' in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)

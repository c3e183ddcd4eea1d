"""Call recordings in the portal, through the real HTTP stack: admins list and filter the
whole tenant, an agent sees the calls their agents answered and their extensions had, a
member sees their own; playing uses Range; what is not yours, gone or hostile is 404."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from html import escape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.core.audio_roots import AudioRoots
from reconciler.core.recording_names import RecordingNames, extension_recording
from reconciler.store import connect
from reconciler.store.calls import insert_calls
from reconciler.store.migrations import create_tenant_schema
from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.context import PORTAL_KEY
from reconciler.web.recording_index import RecordingIndex
from tests.fakes.portal import FakePortalDeps
from tests.web.test_calls import call
from tests.web.test_http import ALICE, BOB, CAROL, GINA, as_user

U1, U2, U3 = (f"{n:08x}-0000-4000-8000-000000000000" for n in (1, 2, 3))
DAY = "2026-12-07"
ALICE_CALL = f"support/{DAY}/{U1}.wav"
BOB_CALL = f"support/{DAY}/{U2}.wav"
TEMPLATE = "support/{date}/{uuid}.wav"
BOB_PHONE = f"extensions/1002/2026-12-06/{U3}.in.wav"
AUDIO = b"RIFF" + bytes(range(256)) * 40


def test_paths_read_back_as_the_template_and_the_dialplan_write_them() -> None:
    names = RecordingNames({"support": TEMPLATE}, "acme.example.com")
    read = names.read(ALICE_CALL, {U1: "alice"})
    assert read is not None
    assert (read.queue, read.agent, read.date, read.uuid) == ("support", "alice", DAY, U1)
    unknown = names.read(BOB_CALL, {U1: "alice"})
    assert unknown is not None and unknown.agent is None
    phone = names.read(BOB_PHONE)
    assert phone is not None and (phone.extension, phone.direction) == ("1002", "in")
    assert names.read(f"support/{DAY}/x/{U1}.wav") is None
    assert names.read("notes.txt") is None
    assert extension_recording("1002", "outbound") == (
        "extensions/1002/${strftime(%Y-%m-%d)}/${uuid}.out.wav"
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "recordings"
    for rel in (ALICE_CALL, BOB_CALL, BOB_PHONE, "notes.txt"):
        (base / "acme" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "acme" / rel).write_bytes(AUDIO)
    os.utime(base / "acme" / BOB_PHONE, (1_700_000_000, 1_700_000_000))
    notes = base / "acme" / ".answered"
    notes.mkdir()
    (notes / f"{U1}.alice").write_text('{"agent": "alice", "queue": "support"}')
    (notes / f"{U2}.bob").write_text('{"agent": "bob", "queue": "support"}')
    (notes / f"{U3}.Not An Agent").write_text("")  # not a note: U3 stays unattributed
    (base / "globex").mkdir()
    (base / "globex" / "secret.wav").write_bytes(AUDIO)
    return base


@pytest.fixture
async def client(
    deps: FakePortalDeps, config: PortalConfig, root: Path
) -> AsyncIterator[TestClient]:
    acme = deps.state["acme"]
    support = replace(acme.queues["support"], record_template=TEMPLATE)
    deps.state["acme"] = replace(acme, queues={**acme.queues, "support": support})
    roots = AudioRoots(recordings=str(root), sounds="/nonexistent/s", voicemail="/nonexistent/v")
    app = make_portal_app(deps, replace(config, audio_roots=roots, recordings_fresh_seconds=0.0))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _paths(client: TestClient, query: str = "") -> list[str]:
    response = await client.get(f"/api/v1/tenants/acme/recordings{query}")
    assert response.status == 200, await response.text()
    return [r["path"] for r in (await response.json())["recordings"]]


async def test_an_admin_lists_and_filters_every_recording(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    assert sorted(await _paths(client)) == sorted([ALICE_CALL, BOB_CALL, BOB_PHONE])
    assert await _paths(client, "?agent=bob") == [BOB_CALL]
    assert await _paths(client, "?extension=1002") == [BOB_PHONE]
    assert sorted(await _paths(client, f"?date={DAY}&queue=support")) == [ALICE_CALL, BOB_CALL]
    assert (await client.get("/api/v1/tenants/acme/recordings?date=yesterday")).status == 400
    page = await client.get("/t/acme/recordings")
    assert page.status == 200 and "<audio controls" in await page.text()


async def test_an_agent_sees_the_calls_they_answered_and_a_member_their_own(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    assert sorted(await _paths(client)) == sorted([BOB_CALL, BOB_PHONE])
    other = await client.get("/api/v1/tenants/acme/recordings/file", params={"path": ALICE_CALL})
    assert other.status == 404
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, CAROL)
    assert await _paths(client) == []


async def test_play_with_range_and_download(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    url = "/api/v1/tenants/acme/recordings/file"
    part = await client.get(url, params={"path": ALICE_CALL}, headers={"Range": "bytes=4-13"})
    assert part.status == 206
    assert await part.read() == AUDIO[4:14]
    assert part.headers["Content-Type"] == "audio/wav"
    assert part.headers["Cache-Control"] == "no-store"
    whole = await client.get(url, params={"path": ALICE_CALL, "download": "true"})
    assert await whole.read() == AUDIO
    assert whole.headers["Content-Disposition"].startswith("attachment;")


async def test_gone_hostile_and_other_tenants_are_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, root: Path
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    url = "/api/v1/tenants/acme/recordings/file"
    (root / "acme" / BOB_CALL).unlink()  # deleted on disk after the list was drawn
    gone = await client.get(url, params={"path": BOB_CALL})
    assert gone.status == 404
    assert "gone" in (await gone.json())["error"]["message"]
    for path in ("../globex/secret.wav", "/etc/passwd", "notes.txt", ""):
        assert (await client.get(url, params={"path": path})).status == 404
    assert (await client.get("/api/v1/tenants/globex/recordings")).status == 404
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, GINA)
    assert (await client.get(url, params={"path": ALICE_CALL})).status == 404


async def test_an_unreadable_or_missing_directory_says_so(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, root: Path
) -> None:
    await as_user(client, deps, portal_dsn, ALICE)
    (root / "acme").rename(root / "elsewhere")
    empty = await (await client.get("/api/v1/tenants/acme/recordings")).json()
    assert empty == {"recordings": [], "total": 0, "problem": None, "indexing": None}
    os.symlink(root / "elsewhere", root / "acme")
    linked = await (await client.get("/api/v1/tenants/acme/recordings")).json()
    assert linked["recordings"] == [] and "link" in linked["problem"]


async def test_the_call_history_links_a_call_to_its_recording_for_who_may_hear_it(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, root: Path
) -> None:
    """The recording is named after the call's a leg: its row in the history plays it,
    for those allowed to see that recording; a file deleted on disk drops its link."""
    with connect(portal_dsn) as conn:
        with conn.transaction():
            create_tenant_schema(conn, "acme")
        insert_calls(conn, "acme", [call(1, call_uuid=U1, uuid=U1, queue="support", agent="alice"),
                                    call(2, call_uuid=U2, uuid=U2, queue="support", agent="bob")])  # fmt: skip
    alice_url = "/api/v1/tenants/acme/recordings/file?" + urlencode({"path": ALICE_CALL})
    bob_url = "/api/v1/tenants/acme/recordings/file?" + urlencode({"path": BOB_CALL})
    await as_user(client, deps, portal_dsn, ALICE)
    page = await (await client.get("/t/acme/calls")).text()
    assert escape(alice_url) in page and escape(bob_url) in page
    (root / "acme" / ALICE_CALL).unlink()
    page = await (await client.get("/t/acme/calls")).text()
    assert escape(alice_url) not in page and escape(bob_url) in page
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, BOB)
    page = await (await client.get("/t/acme/calls")).text()
    assert escape(bob_url) in page


async def test_the_calls_api_links_each_call_to_the_recordings_its_reader_may_hear(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, root: Path
) -> None:
    """The API carries the page's links under the page's rule: bob sees the call his own
    extension made to the queue, but alice (another agent) answered and recorded it: no
    link for him; another tenant's person sees neither call nor link."""
    u4 = f"{4:08x}-0000-4000-8000-000000000000"
    queue_call = f"support/{DAY}/{u4}.wav"
    (root / "acme" / queue_call).write_bytes(AUDIO)
    (root / "acme" / ".answered" / f"{u4}.alice").write_text("")
    with connect(portal_dsn) as conn:
        with conn.transaction():
            create_tenant_schema(conn, "acme")
        insert_calls(conn, "acme", [
            call(1, call_uuid=U1, uuid=U1, queue="support", agent="alice"),
            call(2, call_uuid=U2, uuid=U2, queue="support", agent="bob"),
            call(3, call_uuid=u4, uuid=u4, from_extension="1002", queue="support", agent="alice"),
        ])  # fmt: skip

    def url(path: str) -> str:
        return "/api/v1/tenants/acme/recordings/file?" + urlencode({"path": path})

    async def links(path: str = "") -> dict[str, list[str]]:
        response = await client.get("/api/v1/tenants/acme/calls" + path)
        assert response.status == 200, await response.text()
        body = await response.json()
        return {leg["id"]: leg["recordings"] for leg in body.get("calls", body.get("legs"))}

    await as_user(client, deps, portal_dsn, ALICE)
    assert await links() == {U1: [url(ALICE_CALL)], U2: [url(BOB_CALL)], u4: [url(queue_call)]}
    assert await links(f"/{U1}") == {U1: [url(ALICE_CALL)]}
    (root / "acme" / ALICE_CALL).unlink()
    assert (await links())[U1] == []  # gone on disk: no link
    assert (await client.get(url(queue_call))).status == 200
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, BOB)
    assert await links() == {U2: [url(BOB_CALL)], u4: []}
    assert await links(f"/{u4}") == {u4: []}
    assert (await client.get(url(queue_call))).status == 404  # the same rule as the file
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, GINA)
    assert (await client.get("/api/v1/tenants/acme/calls")).status == 404
    assert (await client.get(f"/api/v1/tenants/acme/calls/{U2}")).status == 404


async def test_the_index_is_warmed_at_start_and_a_first_listing_never_waits_for_it(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, root: Path
) -> None:
    """The portal walks every tenant in the background from its start, before anyone
    asks; a listing that finds its tenant not walked yet answers at once from what is
    indexed so far, saying so, and is whole once the walk is over."""
    portal = client.server.app[PORTAL_KEY]
    index = portal.recording_index
    async with asyncio.timeout(60):
        while index.stats().tenants < 2 or index.stats().indexing:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert index.stats().recordings == 3  # acme's (globex's one file is no recording)
    fresh = RecordingIndex(root, first_wait=0.0)
    fresh._start_walker = lambda: None  # type: ignore[method-assign]  # walked below
    portal.recording_index = fresh
    await as_user(client, deps, portal_dsn, ALICE)
    partial = await (await client.get("/api/v1/tenants/acme/recordings")).json()
    assert partial["indexing"] and "still indexing" in partial["indexing"]
    assert partial["recordings"] == []  # only the tenant's own directory, a step
    page = await (await client.get("/t/acme/recordings")).text()
    assert "still indexing" in page
    await asyncio.to_thread(fresh._walk_all)
    whole = await (await client.get("/api/v1/tenants/acme/recordings")).json()
    assert whole["indexing"] is None and len(whole["recordings"]) == 3

"""Voicemail in the portal, through the real HTTP stack and the real ESL engine against the
fake switch (which answers ``vm_*`` as FreeSWITCH 1.10.12 does): each person sees the boxes
of their own extensions, admins the tenant's; play with Range, download, heard, delete (all
through mod_voicemail's API, audited); another's box or message is 404; the caller's name is
escaped; a new message reaches an open page without a reload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.core.audio_roots import AudioRoots
from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.ports import VOICEMAIL
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.switch.voicemail_support import connected_voicemail
from tests.web.test_http import ALICE, CAROL, GINA, as_user, audit_rows

ACME = "acme.example.com"
AUDIO = b"RIFF" + bytes(range(256)) * 40
API = "/api/v1/tenants/acme/voicemail"


@pytest.fixture
async def fs() -> AsyncIterator[FakeFreeSwitch]:
    async with FakeFreeSwitch() as switch:
        yield switch


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "voicemail"


def leave(fs: FakeFreeSwitch, root: Path, box: str, *, tenant: str = "acme", **kw: str) -> str:
    """A message as mod_voicemail leaves it: the file in the box's folder, the row, events."""
    domain = f"{tenant}.example.com"
    folder = root / tenant / box
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"msg_{len(fs.voicemail.messages)}.wav"
    path.write_bytes(AUDIO)
    return fs.voicemail.leave(box, domain, str(path), **kw).uuid  # type: ignore[arg-type]


@pytest.fixture
async def client(
    deps: FakePortalDeps, config: PortalConfig, fs: FakeFreeSwitch, root: Path
) -> AsyncIterator[TestClient]:
    for tenant in ("acme", "globex"):
        ts = deps.state[tenant]
        boxes = {n: replace(e, voicemail_enabled=True) for n, e in ts.extensions.items()}
        deps.state[tenant] = replace(ts, extensions=boxes)
    roots = AudioRoots(recordings="/nonexistent/r", sounds="/nonexistent/s", voicemail=str(root))
    async with connected_voicemail(fs) as switches:
        app = make_portal_app(deps, replace(config, audio_roots=roots), ports={VOICEMAIL: switches})
        async with TestClient(TestServer(app)) as test_client:
            yield test_client


async def _listed(client: TestClient, query: str = "") -> list[tuple[str, str]]:
    response = await client.get(API + query)
    assert response.status == 200, await response.text()
    return [(m["box"], m["caller_number"]) for m in (await response.json())["messages"]]


async def test_an_admin_sees_every_box_a_member_their_own(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    leave(fs, root, "1001", caller_number="111")
    leave(fs, root, "1002", caller_number="222")
    leave(fs, root, "1010", caller_number="333")
    leave(fs, root, "2001", tenant="globex", caller_number="444")
    await as_user(client, deps, portal_dsn, ALICE)
    assert sorted(await _listed(client)) == [("1001", "111"), ("1002", "222"), ("1010", "333")]
    assert await _listed(client, "?box=1002") == [("1002", "222")]
    assert (await client.get(API + "?box=2001")).status == 404  # globex's box
    assert (await client.get("/api/v1/tenants/globex/voicemail")).status == 404
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, CAROL)
    assert await _listed(client) == [("1010", "333")]
    assert (await client.get(API + "?box=1001")).status == 404


async def test_play_with_range_download_and_the_caller_escaped(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    uuid = leave(fs, root, "1010", caller_name="<script>alert(1)</script>", caller_number="5")
    await as_user(client, deps, portal_dsn, CAROL)
    url = f"{API}/1010/{uuid}/audio"
    part = await client.get(url, headers={"Range": "bytes=4-13"})
    assert part.status == 206 and await part.read() == AUDIO[4:14]
    assert part.headers["Content-Type"] == "audio/wav"
    assert part.headers["Cache-Control"] == "no-store"
    whole = await client.get(url, params={"download": "true"})
    assert await whole.read() == AUDIO
    assert whole.headers["Content-Disposition"].startswith("attachment;")
    page = await (await client.get("/t/acme/voicemail")).text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and url in page


async def test_another_persons_or_tenants_message_is_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    alices = leave(fs, root, "1001")
    globex = leave(fs, root, "2001", tenant="globex")
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    for path in (f"{API}/1001/{alices}/audio", f"{API}/1010/{globex}/audio"):
        assert (await client.get(path)).status == 404
    # an id of another box named under one's own box: unknown there, never changed
    gone = await client.delete(f"{API}/1010/{alices}", headers={"X-CSRF-Token": csrf})
    assert gone.status == 404
    assert len(fs.voicemail.messages) == 2
    await client.post("/logout")
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, GINA)
    assert (await client.get(f"{API}/1001/{alices}/audio")).status == 404


async def test_a_file_outside_the_box_folder_is_never_served(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    secret = root / "globex" / "2001" / "msg_x.wav"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(AUDIO)
    # a switch row pointing elsewhere (a root the daemon does not share, a forged path)
    uuid = fs.voicemail.leave("1010", ACME, str(secret)).uuid
    link = root / "acme" / "1010" / "msg_link.wav"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    linked = fs.voicemail.leave("1010", ACME, str(link)).uuid
    await as_user(client, deps, portal_dsn, CAROL)
    for message in (uuid, linked):
        assert (await client.get(f"{API}/1010/{message}/audio")).status == 404


async def test_heard_and_delete_go_through_mod_voicemail_and_are_audited(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    uuid = leave(fs, root, "1010")
    headers = {"X-CSRF-Token": await as_user(client, deps, portal_dsn, CAROL)}
    assert (await client.post(f"{API}/1010/{uuid}/heard")).status == 403  # no CSRF token
    heard = await client.post(f"{API}/1010/{uuid}/heard", headers=headers)
    assert heard.status == 200 and (await heard.json())["new"] is False
    assert fs.voicemail.messages[uuid].read
    [message] = (await (await client.get(API)).json())["messages"]
    assert message["new"] is False and message["heard_at"]
    again = await client.post(f"{API}/1010/{uuid}/new", headers=headers)
    assert again.status == 200 and not fs.voicemail.messages[uuid].read
    deleted = await client.delete(f"{API}/1010/{uuid}", headers=headers)
    assert deleted.status == 200
    assert fs.voicemail.messages == {}
    assert f"vm_delete 1010@{ACME} {uuid}" in fs.api_log
    rows = audit_rows(portal_dsn)
    for action in ("voicemail_heard", "voicemail_new", "voicemail_delete"):
        assert (CAROL, action, "ok", f"1010 {uuid}") in rows


async def test_a_super_admin_listens_but_changes_nothing(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    uuid = leave(fs, root, "1010")
    csrf = await as_user(client, deps, portal_dsn, SUPER)
    assert await _listed(client) == [("1010", "1000")]
    refused = await client.delete(f"{API}/1010/{uuid}", headers={"X-CSRF-Token": csrf})
    assert refused.status == 403
    assert uuid in fs.voicemail.messages
    assert (SUPER, "voicemail_delete", "denied", f"1010 {uuid}") in audit_rows(portal_dsn)


async def test_page_forms_mark_heard_and_delete(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    uuid = leave(fs, root, "1010")
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    base = f"/t/acme/voicemail/1010/{uuid}"
    marked = await client.post(base + "/heard", data={"csrf": csrf}, allow_redirects=False)
    assert marked.status == 303 and fs.voicemail.messages[uuid].read
    gone = await client.post(base + "/delete", data={"csrf": csrf}, allow_redirects=False)
    assert gone.status == 303 and uuid not in fs.voicemail.messages


async def test_a_person_removed_from_git_loses_access_at_the_next_request(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    leave(fs, root, "1010")
    await as_user(client, deps, portal_dsn, CAROL)
    assert len(await _listed(client)) == 1
    acme = deps.state["acme"]
    deps.state["acme"] = replace(acme, users={e: u for e, u in acme.users.items() if e != CAROL})
    assert (await client.get(API)).status in (401, 404)


async def test_a_new_message_reaches_an_open_page_without_a_reload(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    await as_user(client, deps, portal_dsn, CAROL)
    stream = await client.get("/t/acme/voicemail/live")
    assert stream.status == 200
    first = await _next_fragment(stream)
    assert "No message." in first
    leave(fs, root, "1010", caller_number="4242")
    async with asyncio.timeout(10):
        while "4242" not in (html := await _next_fragment(stream)):
            pass
    assert "new" in html
    stream.close()


async def test_no_switch_answering_says_so(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch
) -> None:
    await as_user(client, deps, portal_dsn, CAROL)
    await fs.go_down()
    async with asyncio.timeout(5):
        while (body := await (await client.get(API)).json())["problem"] is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert body["messages"] == [] and "no switch" in body["problem"]


async def _next_fragment(stream: object) -> str:
    """The html of the next ``fragment`` event of a server-sent stream."""
    content = stream.content  # type: ignore[attr-defined]
    while True:
        line = (await content.readline()).decode()
        if line.startswith("data: ") and '"html"' in line:
            return str(json.loads(line[6:])["html"])


async def test_a_tenant_admin_pages_through_every_box_newest_first(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, fs: FakeFreeSwitch, root: Path
) -> None:
    for n, box in enumerate(["1001", "1002", "1010", "1002", "1001"]):
        leave(fs, root, box, caller_number=str(n), created=1_800_000_000 + n)  # type: ignore[arg-type]
    await as_user(client, deps, portal_dsn, ALICE)
    page = await (await client.get(API, params={"limit": "2", "offset": "1"})).json()
    assert page["total"] == 5
    assert [m["caller_number"] for m in page["messages"]] == ["3", "2"]
    last = await (await client.get(API, params={"limit": "2", "offset": "4"})).json()
    assert [m["caller_number"] for m in last["messages"]] == ["0"]
    assert (await client.get(API, params={"limit": "0"})).status == 400
    html = await (await client.get("/t/acme/voicemail", params={"limit": "2"})).text()
    assert "1 to 2 of 5 message(s)" in html
    assert 'href="/t/acme/voicemail?limit=2&amp;offset=2" rel="next"' in html
    assert 'rel="prev"' not in html
    before = fs.api_log.count("vm_list 1001@acme.example.com")
    await client.get(API)
    assert fs.api_log.count("vm_list 1001@acme.example.com") == before  # from the cache

"""Opening and serving a tenant's audio file: hostile paths, links, ranges, streaming."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import tenant_files
from reconciler.web.errors import NotFound
from reconciler.web.tenant_files import byte_range, disposition, open_tenant_file, safe_parts

BODY = bytes(range(256)) * 1000  # 256,000 bytes: several chunks


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "recordings"
    (base / "acme" / "support" / "2026-12-07").mkdir(parents=True)
    (base / "acme" / "support" / "2026-12-07" / "call.wav").write_bytes(BODY)
    (base / "acme" / "note.mp3").write_bytes(b"ID3")
    (base / "globex").mkdir()
    (base / "globex" / "secret.wav").write_bytes(b"globex audio")
    # links planted below the root: a file link, a directory link, a link out of the tree
    os.symlink(base / "globex" / "secret.wav", base / "acme" / "link.wav")
    os.symlink(base / "globex", base / "acme" / "other")
    os.symlink("/etc", base / "acme" / "etc")
    (base / "acme" / "adir").mkdir()
    os.mkfifo(base / "acme" / "pipe.wav")
    return base


HOSTILE = [
    "",
    "/etc/passwd",
    "../globex/secret.wav",
    "support/../../globex/secret.wav",
    "./note.mp3",
    "support//2026-12-07/call.wav",
    "note.mp3/",
    "note.mp3\x00.wav",
    "..",
    "support\\2026-12-07\\call.wav",
    "a" * 2000,
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_shapes_are_refused_before_any_lookup(path: str) -> None:
    assert safe_parts(path) is None


@pytest.mark.parametrize(
    "path",
    [
        *HOSTILE,
        "link.wav",  # a link to another tenant's file
        "other/secret.wav",  # through a linked directory
        "etc/passwd",  # a link out of the tree
        "adir",  # a directory
        "pipe.wav",  # a FIFO: refused without hanging
        "missing.wav",
        "support/2026-12-07/missing.wav",
        "note.mp3/more",
    ],
)
def test_refusals_are_all_not_found(root: Path, path: str) -> None:
    with pytest.raises(NotFound):
        open_tenant_file(root, "acme", path)


def test_another_tenant_and_an_unknown_tenant_look_the_same(root: Path) -> None:
    with pytest.raises(NotFound):
        open_tenant_file(root, "acme", "secret.wav")
    for tenant in ("nobody", "../globex", "Globex", ""):
        with pytest.raises(NotFound):
            open_tenant_file(root, tenant, "secret.wav")


def test_a_link_replacing_the_tenant_directory_is_not_followed(tmp_path: Path) -> None:
    base = tmp_path / "r"
    (base / "globex").mkdir(parents=True)
    (base / "globex" / "x.wav").write_bytes(b"x")
    os.symlink(base / "globex", base / "acme")
    with pytest.raises(NotFound):
        open_tenant_file(base, "acme", "x.wav")


def test_a_regular_file_opens_with_its_size(root: Path) -> None:
    opened = open_tenant_file(root, "acme", "support/2026-12-07/call.wav")
    try:
        assert (opened.name, opened.size) == ("call.wav", len(BODY))
    finally:
        opened.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=1000-", False),
        ("bytes=-0", False),
        ("bytes=5-1", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_range_header(header: str | None, expected: object) -> None:
    assert byte_range(header, 1000) == expected


def test_disposition_keeps_an_ascii_fallback() -> None:
    assert disposition("call.wav", True) == (
        "attachment; filename=\"call.wav\"; filename*=UTF-8''call.wav"
    )
    header = disposition('a "b"\r\n é.wav', False)
    assert header.startswith('inline; filename="a__b_____.wav"')
    assert "\r" not in header and "\n" not in header


@pytest.fixture
async def client(root: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        try:
            tenant, path = request.match_info["tenant"], request.query["p"]
            opened = tenant_files.open_tenant_file(root, tenant, path)
        except NotFound:
            raise web.HTTPNotFound() from None
        download = request.query.get("download") == "1"
        return await tenant_files.file_response(request, opened, download=download)

    app = web.Application()
    app.router.add_get("/f/{tenant}", serve)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_whole_file_streams_with_headers(client: TestClient[web.Request, web.Application]):
    response = await client.get("/f/acme", params={"p": "support/2026-12-07/call.wav"})
    assert response.status == 200
    assert await response.read() == BODY
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"].startswith("inline;")
    download = await client.get("/f/acme", params={"p": "note.mp3", "download": "1"})
    assert download.headers["Content-Type"] == "audio/mpeg"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="note.mp3"')


async def test_range_answers_206_and_416(client: TestClient[web.Request, web.Application]):
    params = {"p": "support/2026-12-07/call.wav"}
    part = await client.get("/f/acme", params=params, headers={"Range": "bytes=70000-70009"})
    assert part.status == 206
    assert await part.read() == BODY[70000:70010]
    assert part.headers["Content-Range"] == f"bytes 70000-70009/{len(BODY)}"
    tail = await client.get("/f/acme", params=params, headers={"Range": "bytes=-3"})
    assert await tail.read() == BODY[-3:]
    beyond = await client.get("/f/acme", params=params, headers={"Range": f"bytes={len(BODY)}-"})
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(BODY)}"


async def test_links_and_other_tenants_are_404(client: TestClient[web.Request, web.Application]):
    for tenant, path in [("acme", "link.wav"), ("acme", "../globex/secret.wav"), ("x", "a")]:
        response = await client.get(f"/f/{tenant}", params={"p": path})
        assert response.status == 404


async def test_a_file_truncated_while_streaming_ends_the_body_short(
    root: Path, client: TestClient[web.Request, web.Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size was taken at open; the file shrinks before the copy: the client gets fewer
    bytes than announced (an error on its side), the server goes on serving."""
    target = root / "acme" / "support" / "2026-12-07" / "call.wav"
    real_open = tenant_files.open_tenant_file

    def open_then_truncate(*args: object) -> tenant_files.TenantFile:
        opened = real_open(*args)  # type: ignore[arg-type]
        os.truncate(target, 1000)
        return opened

    monkeypatch.setattr(tenant_files, "open_tenant_file", open_then_truncate)
    response = await client.get("/f/acme", params={"p": "support/2026-12-07/call.wav"})
    with pytest.raises(Exception):  # noqa: B017 - aiohttp's payload error type varies
        await response.read()
    again = await client.get("/f/acme", params={"p": "note.mp3"})
    assert await again.read() == b"ID3"

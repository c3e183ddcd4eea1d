"""The HTTP side: captured POSTs through a real aiohttp server, auth, errors, probes, and
requests meant to hurt (huge, slow, malformed, endlessly varied)."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.daemon.metrics import Metrics
from reconciler.serve.listener import ListenerLimits
from reconciler.serve.persist import PersistStatus
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import Templates, load_templates
from reconciler.serve.xmlcurl import XML_PATH, Result, Section
from reconciler.serve.xmlcurl_app import DIRECTORY_ANSWERS, make_app
from tests.serve.test_xmlcurl_fixtures import (
    CAPTURED_1001_A1,
    a1_hashes_for,
    captured,
    captured_body,
    is_not_found,
    load_state,
    parse_xml,
)

CREDENTIALS = ("freeswitch", "s3cr3t:with:colons")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic(*CREDENTIALS)
FORM = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "freeswitch-xml/1.0"}


@pytest.fixture(scope="module")
def templates() -> Templates:
    return load_templates()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="http-test")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, section: str, result: str, seconds: float) -> None:
        self.calls.append((section, result, seconds))


class Holder:
    """What the daemon does: hold the current snapshot, swap it whole."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot

    def __call__(self) -> Snapshot | None:
        return self.snapshot


@pytest.fixture
def holder(snapshot: Snapshot) -> Holder:
    return Holder(snapshot)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(holder: Holder, templates: Templates, recorder: Recorder) -> AsyncIterator:
    app = make_app(holder, templates, auth=CREDENTIALS, observer=recorder)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def post(client: TestClient, body: str | bytes, headers: dict[str, str] | None = None):
    data = body.encode() if isinstance(body, str) else body
    response = await client.post(XML_PATH, data=data, headers={**FORM, **(headers or AUTH)})
    return response, await response.read()


@pytest.mark.parametrize("name", [n for n, _ in captured()])
async def test_every_captured_post_is_answered_with_xml(client: TestClient, name: str) -> None:
    capture = dict(captured())[name]
    response, body = await post(client, str(capture["body"]))
    assert response.status == 200
    assert response.content_type == "text/xml"
    root = parse_xml(body)
    assert root.tag == "document"
    assert b"password" not in body


async def test_sip_auth_over_http_returns_the_a1_hash(client: TestClient) -> None:
    _response, body = await post(client, captured_body("11-"))
    root = parse_xml(body)
    assert root.find(".//param[@name='a1-hash']").get("value") == CAPTURED_1001_A1
    assert root.find(".//variable[@name='user_context']").get("value") == "acme.example.com"


async def test_dialplan_over_http_names_the_hunt_context(client: TestClient) -> None:
    _, body = await post(client, captured_body("19-"))
    root = parse_xml(body)
    assert [c.get("name") for c in root.iter("context")] == ["acme.example.com"]


async def test_queue_load_over_http(client: TestClient) -> None:
    _, body = await post(client, captured_body("07-"))
    root = parse_xml(body)
    assert [q.get("name") for q in root.iter("queue")] == ["support@acme.example.com"]
    assert root.find(".//agents") is None and root.find(".//tiers") is None


async def test_loopback_conf_over_http_is_not_found(client: TestClient) -> None:
    _, body = await post(client, captured_body("04-"))
    assert is_not_found(parse_xml(body))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("freeswitch", "wrong"),
        basic("someone", CREDENTIALS[1]),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic"},
    ],
    ids=["missing", "wrong-password", "wrong-user", "other-scheme", "bad-base64", "empty"],
)
async def test_bad_credentials_get_401_with_a_challenge(
    client: TestClient, recorder: Recorder, headers: dict[str, str]
) -> None:
    response = await client.post(
        XML_PATH, data=captured_body("11-").encode(), headers={**FORM, **headers}
    )
    body = await response.read()
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert CAPTURED_1001_A1.encode() not in body
    assert recorder.calls[-1][:2] == ("other", "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\xfd garbage \x00",
        b"hostname=fs1&tag_name=domain&key_name=name&key_value=acme.example.com&user=1001",
        b"hostname=fs1&section=directory&tag_name=domain&key_name=name&key_value=x&user=%G1",
        b"",
    ],
    ids=["garbage-bytes", "missing-section", "bad-percent-encoding", "empty"],
)
async def test_malformed_bodies_get_400(client: TestClient, recorder: Recorder, body) -> None:
    response, answer = await post(client, body)
    assert response.status == 400
    assert b"Traceback" not in answer
    assert recorder.calls[-1][:2] == ("other", "bad_request")


async def test_oversized_body_is_refused(client: TestClient) -> None:
    response, _ = await post(client, b"hostname=fs1&section=directory&x=" + b"a" * 300_000)
    assert response.status == 413


async def test_internal_error_answers_not_found_without_a_traceback(
    holder: Holder, templates: Templates, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Snapshot:
        raise RuntimeError("boom")

    app = make_app(broken, templates, auth=None, observer=recorder)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post(XML_PATH, data=captured_body("11-").encode(), headers=FORM)
        body = await response.read()
    assert response.status == 200
    assert is_not_found(parse_xml(body))
    assert b"boom" not in body and b"Traceback" not in body
    assert recorder.calls[-1][:2] == ("directory", "error")
    assert "boom" in caplog.text


async def test_a_failing_observer_does_not_break_the_answer(
    holder: Holder, templates: Templates
) -> None:
    def observer(section: str, result: str, seconds: float) -> None:
        raise ValueError("metrics down")

    app = make_app(holder, templates, auth=None, observer=observer)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post(XML_PATH, data=captured_body("11-").encode(), headers=FORM)
        body = await response.read()
    assert response.status == 200
    assert CAPTURED_1001_A1.encode() in body


async def test_observer_sees_section_result_and_time(client: TestClient, recorder: Recorder):
    await post(client, captured_body("11-"))
    await post(client, captured_body("14-"))
    await post(client, captured_body("19-"))
    section, result, seconds = recorder.calls[0]
    assert (section, result) == ("directory", "found")
    assert 0 <= seconds < 1
    assert recorder.calls[1][:2] == ("directory", "not_found")
    assert recorder.calls[2][:2] == ("dialplan", "found")


async def test_no_auth_configured_accepts_any_request(holder: Holder, templates: Templates) -> None:
    app = make_app(holder, templates, auth=None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post(XML_PATH, data=captured_body("11-").encode(), headers=FORM)
        assert response.status == 200


async def test_snapshot_swap_takes_effect_on_the_next_request(
    client: TestClient, holder: Holder
) -> None:
    _, before = await post(client, captured_body("11-"))
    assert CAPTURED_1001_A1.encode() in before
    holder.snapshot = Snapshot(generation="empty")
    _, after = await post(client, captured_body("11-"))
    assert is_not_found(parse_xml(after))


async def test_healthz(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200


async def test_readyz_only_with_a_snapshot(client: TestClient, holder: Holder) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["generation"] == "http-test"
    holder.snapshot = None
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "ready": False,
        "generation": None,
        "detail": "no snapshot loaded",
    }


async def test_readyz_reports_an_unpersisted_snapshot_but_stays_ready(
    holder: Holder, templates: Templates
) -> None:
    status = PersistStatus(True, 1700000000.0, "written")

    def current() -> PersistStatus:
        return status

    app = make_app(holder, templates, auth=None, persist_status=current)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        ready = await (await client.get("/readyz")).json()
        assert ready["snapshot_persisted"] is True and "detail" not in ready
        status = status.failed("snapshot not written to /var/lib/x: No space left on device")
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 200
        assert body["ready"] is True
        assert body["snapshot_persisted"] is False
        assert body["snapshot_persisted_at"] == 1700000000.0
        assert body["detail"].startswith("serving, but the snapshot is not persisted:")
        assert "No space left" in body["detail"]
        served = await post(client, captured_body("11-"), {})
        assert CAPTURED_1001_A1.encode() in served[1]


async def test_without_snapshot_every_request_is_not_found(
    client: TestClient, holder: Holder
) -> None:
    holder.snapshot = None
    for _, capture in captured():
        response, body = await post(client, str(capture["body"]))
        assert response.status == 200
        assert is_not_found(parse_xml(body))


async def test_get_is_not_allowed_on_the_xml_path(client: TestClient) -> None:
    response = await client.get(XML_PATH, headers=AUTH)
    assert response.status == 405


async def test_templates_dir_override_is_used_by_the_app(tmp_path: Path, holder: Holder) -> None:
    (tmp_path / "not_found.xml.j2").write_text(
        '<document type="freeswitch/xml"><section name="result">'
        '<result status="not found"/></section><!-- override --></document>'
    )
    app = make_app(holder, load_templates(tmp_path), auth=None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post(XML_PATH, data=captured_body("14-").encode(), headers=FORM)
        assert b"<!-- override -->" in await response.read()


# --- hostile requests ----------------------------------------------------------------------

SLOW = ListenerLimits(body_timeout=0.3)


def with_user(user: str) -> str:
    return captured_body("11-").replace("&user=1001&", f"&user={user}&")


async def raw_exchange(port: int, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send bytes as they are on a new connection; the response head that comes back (the
    server then lingers a little for the unread body: see listener.start_server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(wait):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def request_head(length: int) -> bytes:
    return (
        f"POST {XML_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        f"\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def test_a_body_over_64_kib_is_refused_with_413(client: TestClient, recorder: Recorder):
    body = captured_body("11-") + "&padding=" + "a" * (64 * 1024)
    response, _ = await post(client, body)
    assert response.status == 413
    assert recorder.calls[-1][:2] == ("other", "too_large")


async def test_a_declared_huge_body_is_refused_before_it_arrives(
    holder: Holder, templates: Templates
) -> None:
    app = make_app(holder, templates, auth=None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        # only 12 of the 10,000,000 declared bytes are ever sent: the answer cannot wait for them
        reply = await raw_exchange(client.port, request_head(10_000_000), b"hostname=fs1", wait=3)
    assert reply.startswith(b"HTTP/1.1 413")


async def test_a_body_that_trickles_in_gets_408(holder: Holder, templates: Templates) -> None:
    recorder = Recorder()
    app = make_app(holder, templates, auth=None, observer=recorder, limits=SLOW)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        reply = await raw_exchange(client.port, request_head(100), b"hostname=fs1", wait=3)
    assert reply.startswith(b"HTTP/1.1 408")
    assert recorder.calls[-1][:2] == ("other", "timeout")


async def test_unknown_users_never_grow_the_answer_cache(
    holder: Holder, templates: Templates
) -> None:
    app = make_app(holder, templates, auth=None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for i in range(200):
            response, _ = await post(client, with_user(f"{i:06d}" + "x" * 500), {})
            assert response.status == 200
        assert len(app[DIRECTORY_ANSWERS]) == 0
        for body in (captured_body("11-"), captured_body("11-").replace(".com", ".COM")):
            _, answer = await post(client, body, {})
            assert CAPTURED_1001_A1.encode() in answer
        assert len(app[DIRECTORY_ANSWERS]) == 1  # one user, whatever the spelling


async def test_unique_user_values_do_not_grow_memory(holder: Holder, templates: Templates) -> None:
    app = make_app(holder, templates, auth=None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for i in range(10):  # warm up aiohttp's own buffers
            await post(client, with_user(f"warm{i}"), {})
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(150):
                await post(client, with_user(f"{i:06d}" + "x" * 40_000), {})
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 2_000_000, f"{grown} bytes kept after 150 x 40 KB unknown users"


async def test_metric_labels_come_from_fixed_sets(client: TestClient, recorder: Recorder) -> None:
    for i in range(30):
        await post(client, f"hostname=fs1&section=bogus{i}&tag_name=&key_name=&key_value=")
    await post(client, b"\xff garbage")
    await post(client, captured_body("11-"), {"Authorization": "Basic AAAA"})
    await post(client, captured_body("11-"))
    assert {c[0] for c in recorder.calls} <= {s.value for s in Section}
    assert {c[1] for c in recorder.calls} <= {r.value for r in Result}
    assert {c[0] for c in recorder.calls} == {"other", "directory"}


async def test_metrics_stay_small_whatever_the_sections(
    holder: Holder, templates: Templates
) -> None:
    metrics = Metrics()
    app = make_app(holder, templates, auth=None, observer=metrics.observe_xmlcurl)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for i in range(200):
            section = f"{i:04d}" + "s" * 1000
            await post(client, f"hostname=fs1&section={section}&tag_name=&key_name=", {})
    assert len(metrics.render()) < 20_000


async def test_malformed_requests_are_logged_a_few_times_then_summarized(
    holder: Holder, templates: Templates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.serve.xmlcurl_app")
    app = make_app(holder, templates, auth=None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for _ in range(60):
            response, _ = await post(client, b"\x00 not a form", {})
            assert response.status == 400
        logged = [r for r in caplog.records if r.name == "reconciler.serve.xmlcurl_app"]
        assert len(logged) == 10
    summary = [r.getMessage() for r in caplog.records if "were not logged" in r.getMessage()]
    assert summary == ["50 more malformed xml_curl requests in the last 60 s were not logged"]

"""The portal's listener is the bounded one xml_curl uses, inside its own share of the file
descriptors: nothing a portal client does makes a SIP lookup fail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from reconciler.serve import ListenerLimits, bound_port, start_server
from reconciler.serve.listener import GuardedSite, ListenerUnavailable, connection_caps
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl_app import make_app
from reconciler.web import PortalConfig, PortalServer
from reconciler.web.server import PORTAL_LIMITS
from tests.fakes.portal import FakePortalDeps
from tests.serve.test_listener import (
    SILENT_ATTACKER,
    few_file_descriptors,  # noqa: F401 - a fixture
    lookups_from_another_process,
)
from tests.serve.test_xmlcurl_fixtures import a1_hashes_for, load_state


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="portal-listener-test")


@contextlib.asynccontextmanager
async def both_listeners(snapshot: Snapshot) -> AsyncIterator[tuple[int, PortalServer]]:
    """xml_curl and the portal in this process, as the daemon runs them."""
    limits = ListenerLimits()
    app = make_app(lambda: snapshot, load_templates(), auth=None, limits=limits)
    runner = await start_server(app, "127.0.0.1", 0, limits)
    portal = PortalServer(
        FakePortalDeps(dsn=None), PortalConfig(listen_port=0, public_url="http://127.0.0.1")
    )
    await portal.start()
    try:
        port = bound_port(runner)
        assert port is not None
        yield port, portal
    finally:
        await portal.stop()
        await runner.cleanup()


def portal_guard(portal: PortalServer) -> object:
    runner = portal._runner
    assert runner is not None
    (site,) = runner.sites
    assert isinstance(site, GuardedSite) and site.guard is not None
    return site.guard


async def test_idle_portal_sockets_never_fail_a_sip_lookup(
    snapshot: Snapshot,
    few_file_descriptors: int,  # noqa: F811 - the fixture
) -> None:
    """More silent sockets on the portal than the process has descriptors: every lookup on
    xml_curl is answered and the process can still open files (a pass needs some)."""
    async with both_listeners(snapshot) as (xml_port, portal):
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SILENT_ATTACKER, str(portal.port), str(2 * few_file_descriptors)
        )
        try:
            await asyncio.sleep(1.5)  # the attacker fills the portal's share
            answered = await lookups_from_another_process(xml_port, 30)
            files = [open(os.devnull, "rb") for _ in range(24)]  # noqa: SIM115, ASYNC230
            for file in files:
                file.close()
            guard = portal_guard(portal)
        finally:
            attacker.kill()
            await attacker.wait()
    assert answered == 30
    assert guard.open_count <= guard.hard_cap  # type: ignore[attr-defined]


def test_the_portal_holds_a_quarter_of_the_descriptors_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    for soft in (256, 1024, 4096, 65536):
        monkeypatch.setattr(resource, "getrlimit", lambda _kind, soft=soft: (soft, soft))
        portal = connection_caps(PORTAL_LIMITS)
        xml_curl = connection_caps(ListenerLimits())
        assert portal.hard + portal.backlog <= soft // 4
        assert xml_curl.hard + xml_curl.backlog <= soft // 2
        assert portal.hard + portal.backlog + xml_curl.hard + xml_curl.backlog <= soft * 3 // 4


async def test_a_taken_portal_port_is_one_line_naming_the_flag() -> None:
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    portal = PortalServer(
        FakePortalDeps(dsn=None),
        PortalConfig(listen_port=port, public_url="http://127.0.0.1", listen_host="127.0.0.1"),
    )
    try:
        with pytest.raises(ListenerUnavailable) as raised:
            await portal.start()
    finally:
        holder.close()
        await holder.wait_closed()
        await portal.stop()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("portal listener (--portal-listen / PBX_PORTAL_LISTEN)")
    assert f"127.0.0.1:{port}" in message


BAD_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"


async def send_bad_requests(port: int, count: int) -> None:
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(BAD_HEAD)
        await reader.read()
        writer.close()


async def test_error_handling_request_lines_are_throttled_on_both_listeners(
    snapshot: Snapshot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with both_listeners(snapshot) as (xml_port, portal):
        await send_bad_requests(xml_port, 30)
        await send_bad_requests(portal.port, 30)
    lines = [r for r in caplog.records if "Error handling request" in r.getMessage()]
    assert 0 < len(lines) <= 20  # the first 10 of each listener, then a summary
    assert not any(r.exc_info for r in lines), "a client's bad HTTP has no traceback"
    assert any("more errors handling requests" in r.getMessage() for r in caplog.records)


async def test_event_streams_outlive_the_idle_timeout() -> None:
    """A connection whose answer is still streaming is not idle: the sweep leaves it."""
    limits = ListenerLimits(header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.3)
    limits = ListenerLimits(**{**_fields(limits), "long_requests": True})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(15):
            await response.write(b"data: tick\n\n")
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/events", stream)
    runner = await start_server(app, "127.0.0.1", 0, limits)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(runner))
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await runner.cleanup()
    assert body.count(b"data: tick") == 15  # 1.5 s of stream, five idle timeouts long


async def test_a_body_that_trickles_in_is_cut_off() -> None:
    limits = ListenerLimits(body_timeout=0.3, long_requests=True)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/", echo)
    runner = await start_server(app, "127.0.0.1", 0, limits)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(runner))
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await runner.cleanup()
    assert reply.startswith(b"HTTP/1.1 408")


def _fields(limits: ListenerLimits) -> dict[str, object]:
    return {name: getattr(limits, name) for name in ListenerLimits.__dataclass_fields__}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_handshakes_run_inside_the_guard(certificate: tuple[Path, Path]) -> None:
    """A connection that never finishes its handshake is counted and timed out like one
    that never sends a head; a real client gets its page."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    limits = ListenerLimits(header_timeout=0.3, long_requests=True)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"secure={request.secure}")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = await start_server(app, "127.0.0.1", 0, limits, ssl_context=context)
    (site,) = runner.sites
    assert isinstance(site, GuardedSite) and site.guard is not None
    port = bound_port(runner)
    try:
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert site.guard.open_count == 5  # counted before any handshake
        closed = await asyncio.gather(*(r.read() for r, _ in silent))
        assert closed == [b""] * 5  # closed by the header timeout
        client_context = ssl.create_default_context(cafile=str(cert))
        client_context.check_hostname = False
        url = f"https://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as session, session.get(url, ssl=client_context) as r:
            assert r.status == 200
            assert await r.text() == "secure=True"
    finally:
        for _, writer in silent:
            writer.close()
        await runner.cleanup()


async def test_one_address_cannot_take_every_connection() -> None:
    limits = ListenerLimits(max_connections=64, max_per_address=8, header_timeout=30.0)
    app = web.Application()
    runner = await start_server(app, "127.0.0.1", 0, limits)
    (site,) = runner.sites
    assert isinstance(site, GuardedSite) and site.guard is not None
    try:
        streams = [
            await asyncio.open_connection("127.0.0.1", bound_port(runner)) for _ in range(20)
        ]
        closed = await asyncio.gather(*(r.read() for r, _ in streams[8:]))
        assert closed == [b""] * 12  # refused: the address already holds 8
        assert site.guard.open_count == 8
        for _, writer in streams[:4]:
            writer.close()
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(runner))
        writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 404")  # room again
        writer.close()
    finally:
        for _, w in streams:
            w.close()
        await runner.cleanup()


FREESWITCH_DEFAULT_PORTS = {5060, 5061, 5066, 5080, 5081, 7443, 8021, 8080, 8081, 8082, 8090}


def test_the_default_portal_port_is_no_freeswitch_default() -> None:
    from reconciler.cli.settings import SETTINGS
    from reconciler.web.config import DEFAULT_LISTEN, config_from_settings

    port = DEFAULT_LISTEN[1]
    assert port not in FREESWITCH_DEFAULT_PORTS and not 16384 <= port <= 32768
    assert SETTINGS["portal_listen"].default == f"127.0.0.1:{port}"
    assert config_from_settings().listen_port == PortalConfig().listen_port == port
    assert PortalConfig().public_url == f"http://127.0.0.1:{port}"

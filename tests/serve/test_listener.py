"""The listener under silent, slow and numerous connections: FreeSWITCH still gets answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from reconciler.serve import listener
from reconciler.serve.app import make_app
from reconciler.serve.listener import (
    GuardedSite,
    ListenerLimits,
    bound_port,
    connection_cap,
    start_server,
)
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import XML_PATH
from tests.serve.test_xmlcurl_fixtures import (
    CAPTURED_1001_A1,
    a1_hashes_for,
    captured_body,
    load_state,
)

QUICK = ListenerLimits(header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.3)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="listener-test")


@contextlib.asynccontextmanager
async def serving(snapshot: Snapshot, limits: ListenerLimits) -> AsyncIterator[web.AppRunner]:
    app = make_app(lambda: snapshot, load_templates(), auth=None, limits=limits)
    runner = await start_server(app, "127.0.0.1", 0, limits)
    try:
        yield runner
    finally:
        await runner.cleanup()


def port_of(runner: web.AppRunner) -> int:
    port = bound_port(runner)
    assert port is not None
    return port


def guard_of(runner: web.AppRunner) -> listener.ConnectionGuard:
    (site,) = runner.sites
    assert isinstance(site, GuardedSite) and site.guard is not None
    return site.guard


def sip_auth_request(keep_alive: bool = False) -> bytes:
    body = captured_body("11-").encode()
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"POST {XML_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        f"\r\nConnection: {connection}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def lookup(port: int) -> bool:
    """One FreeSWITCH-like fetch on a new connection (2 s at most): True when the user came
    back."""
    try:
        async with asyncio.timeout(2.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(sip_auth_request())
                reply = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return reply.startswith(b"HTTP/1.1 200") and CAPTURED_1001_A1.encode() in reply


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes (or resets) the connection within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass  # the rest of an answer
            return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_silent_connections_are_closed_after_the_header_timeout(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        port = port_of(runner)
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        started = time.monotonic()
        results = await asyncio.gather(*(closed_by_server(r, 3.0) for r, _ in streams))
        assert all(results)
        assert time.monotonic() - started < 2.0
        assert guard_of(runner).open_count == 0
        for _, writer in streams:
            writer.close()


async def test_a_head_sent_byte_by_byte_is_cut_off(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(runner))
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in b"POST /freeswitch/xml HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaa":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
        assert await closed_by_server(reader, 2.0)
        assert time.monotonic() - started < 2.5
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(runner))
        writer.write(sip_auth_request(keep_alive=True))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader, 3.0)
        writer.close()


async def test_lookups_pass_while_idle_sockets_exceed_the_cap(snapshot: Snapshot) -> None:
    limits = ListenerLimits(header_timeout=30.0, max_connections=50)
    async with serving(snapshot, limits) as runner:
        port = port_of(runner)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
        results = [await lookup(port) for _ in range(30)]
        guard = guard_of(runner)
        assert all(results), results.count(False)
        assert guard.open_count <= guard.cap == 50
        assert guard.evicted >= 150
        for _, writer in idle:
            writer.close()


async def test_at_the_cap_busy_connections_are_kept_and_the_newcomer_refused(
    snapshot: Snapshot,
) -> None:
    limits = ListenerLimits(max_connections=16)
    async with serving(snapshot, limits) as runner:
        port = port_of(runner)
        busy = []
        for _ in range(16):  # kept-alive connections that just had a request answered
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(sip_auth_request(keep_alive=True))
            await reader.readuntil(b"\r\n\r\n")
            busy.append((reader, writer))
        newcomer, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_by_server(newcomer, 1.0) or newcomer.at_eof()
        assert guard_of(runner).refused >= 1
        writer.close()
        await asyncio.sleep(listener.EVICT_IDLE + 0.2)
        assert await lookup(port)  # now the least recently active one makes room
        for _, w in busy:
            w.close()


def test_the_cap_leaves_half_the_file_descriptors_to_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (1024, 1024))
    assert connection_cap(ListenerLimits(max_connections=2048)) == 512
    assert connection_cap(ListenerLimits(max_connections=100)) == 100
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (resource.RLIM_INFINITY,) * 2)
    assert connection_cap(ListenerLimits(max_connections=2048)) == 2048


async def test_cleanup_stops_listening(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        port = port_of(runner)
        assert await lookup(port)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)

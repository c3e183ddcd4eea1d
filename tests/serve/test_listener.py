"""The listener under silent, slow and numerous connections: FreeSWITCH still gets answers."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from reconciler.serve import listener
from reconciler.serve.listener import (
    GuardedSite,
    ListenerLimits,
    bound_port,
    connection_caps,
    start_server,
)
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import XML_PATH
from reconciler.serve.xmlcurl_app import make_app
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
        # closed by the server (not by our 3 s patience): the header timeout is far shorter
        results = await asyncio.gather(*(closed_by_server(r, 3.0) for r, _ in streams))
        assert all(results)
        assert guard_of(runner).open_count == 0
        for _, writer in streams:
            writer.close()


async def test_a_head_sent_byte_by_byte_is_cut_off(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(runner))
        with contextlib.suppress(OSError):
            for byte in b"POST /freeswitch/xml HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaa":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
        assert await closed_by_server(reader, 2.0)
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(runner))
        writer.write(sip_auth_request(keep_alive=True))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader, 3.0)
        writer.close()


SILENT_ATTACKER = """
import asyncio, resource, sys

_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

async def hold(port):
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        await reader.read()  # until the server closes it; then straight back
        writer.close()

async def main(port, count):
    await asyncio.gather(*(hold(port) for _ in range(count)))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


LOOKUP_CLIENT = """
import socket, sys

port, count, expected = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
request = sys.stdin.buffer.read()
answered = 0
for _ in range(count):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        answered += reply.startswith(b"HTTP/1.1 200") and expected in reply
    except OSError:
        pass
print(answered)
"""


async def lookups_from_another_process(port: int, count: int) -> int:
    """FreeSWITCH's side: sequential lookups, each on a new connection, 2 s at most."""
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOOKUP_CLIENT,
        str(port),
        str(count),
        CAPTURED_1001_A1,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await client.communicate(sip_auth_request())
    return int(out)


@pytest.fixture
def few_file_descriptors() -> Iterator[int]:
    """This process may open only 256 files, as a service without LimitNOFILE may 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        yield 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_lookups_pass_while_silent_sockets_outnumber_the_file_descriptors(
    snapshot: Snapshot, few_file_descriptors: int
) -> None:
    async with serving(snapshot, ListenerLimits(header_timeout=30.0)) as runner:
        port = port_of(runner)
        guard = guard_of(runner)
        assert guard.hard_cap + connection_caps(ListenerLimits()).backlog <= 128
        # processes of their own, as the attacker and FreeSWITCH are
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SILENT_ATTACKER, str(port), str(2 * few_file_descriptors)
        )
        try:
            await asyncio.sleep(1.5)  # the attacker fills the listener
            assert guard.open_count >= guard.cap
            answered = await lookups_from_another_process(port, 30)
            assert guard.open_count <= guard.hard_cap
        finally:
            attacker.kill()
            await attacker.wait()
        assert answered == 30
        assert guard.evicted > 0


async def test_at_the_hard_cap_busy_connections_are_kept_and_the_newcomer_refused(
    snapshot: Snapshot,
) -> None:
    limits = ListenerLimits(max_connections=16)
    async with serving(snapshot, limits) as runner:
        port = port_of(runner)
        guard = guard_of(runner)
        assert (guard.cap, guard.hard_cap) == (16, 24)
        busy = []
        for _ in range(24):  # kept-alive connections that just had a request answered
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(sip_auth_request(keep_alive=True))
            await reader.readuntil(b"\r\n\r\n")
            busy.append((reader, writer))
        newcomer, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_by_server(newcomer, 1.0)
        assert guard.refused >= 1 and guard.evicted == 0
        writer.close()
        await asyncio.sleep(listener.EVICT_IDLE + 0.3)
        assert guard.open_count <= guard.cap  # idle ones trimmed back to the cap
        assert await lookup(port)
        for _, w in busy:
            w.close()


def test_caps_leave_half_the_file_descriptors_to_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (1024, 1024))
    assert connection_caps(ListenerLimits(max_connections=512)) == (256, 384, 128)
    assert connection_caps(ListenerLimits(max_connections=100)) == (100, 150, 128)
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (65536, 65536))
    assert connection_caps(ListenerLimits(max_connections=512)) == (512, 768, 1024)
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (resource.RLIM_INFINITY,) * 2)
    assert connection_caps(ListenerLimits(max_connections=512)) == (512, 768, 1024)
    for soft in (64, 256, 1024, 4096, 65536):
        monkeypatch.setattr(resource, "getrlimit", lambda _kind, soft=soft: (soft, soft))
        caps = connection_caps(ListenerLimits())
        assert caps.cap <= caps.hard and caps.hard + caps.backlog <= max(64, soft // 2)


async def test_cleanup_stops_listening(snapshot: Snapshot) -> None:
    async with serving(snapshot, QUICK) as runner:
        port = port_of(runner)
        assert await lookup(port)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)

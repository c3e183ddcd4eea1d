"""A byte-level ESL peer for tests: sends exact bytes, reads exact frames back."""

from __future__ import annotations

import asyncio

from tests.fakes.freeswitch.wire import BANNER, reply_frame


class RawEsl:
    """A byte-level ESL peer for tests: sends exact bytes, reads exact frames back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, *, login: str | None = None) -> RawEsl:
        """Connect; with ``login`` read the banner and authenticate with that password."""
        reader, writer = await asyncio.open_connection(host, port)
        raw = cls(reader, writer)
        if login is not None:
            banner = await raw.read_frame()
            assert banner == BANNER, banner
            await raw.send(f"auth {login}\n\n")
            reply = await raw.read_frame()
            assert reply == reply_frame("+OK accepted"), reply
        return raw

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def read_frame(self, timeout: float = 2.0) -> bytes:  # noqa: ASYNC109
        """One whole frame (header block + Content-Length body), as raw bytes."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\n\n")
            length = 0
            for line in head.decode().split("\n"):
                if line.startswith("Content-Length:"):
                    length = int(line.split(":", 1)[1])
            body = await self.reader.readexactly(length) if length else b""
        return head + body

    async def read_frames(self, count: int, timeout: float = 2.0) -> bytes:  # noqa: ASYNC109
        return b"".join([await self.read_frame(timeout) for _ in range(count)])

    async def read_until_eof(self, timeout: float = 2.0) -> bytes:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            return await self.reader.read()

    async def request(self, data: bytes | str, frames: int = 1) -> bytes:
        await self.send(data)
        return await self.read_frames(frames)

    async def api(self, command: str) -> bytes:
        return await self.request(f"api {command}\n\n")

    async def close(self) -> None:
        self.writer.transport.abort()

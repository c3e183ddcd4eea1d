"""Serving a tenant's audio files (recordings, voicemail, sounds) to the portal safely.

A request names a file by a path relative to ``<root>/<tenant_id>/``. That path came from a
browser, so it is checked twice: by shape (no ``..``, no absolute path, no NUL, no empty or
``.`` component) and by walking the directories one ``openat`` at a time with
``O_NOFOLLOW``, so a symbolic link anywhere below the root (planted by the switch's user,
or by a rename racing the check) is refused rather than followed. Only a regular file is
served; anything else, like another tenant's file or an unknown one, is ``NotFound``.

The answer streams the open descriptor with ``sendfile`` (else in chunks with ``pread``;
never the whole file in memory), honours a single ``Range`` (206, 416, ``Content-Range``), names its content type
from the extension and is never cached (``no-store``: private audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from reconciler.web.errors import NotFound

CHUNK = 64 * 1024
MAX_PATH = 1024
# a tenant id as the spec contract allows it: nothing else can name a directory under a root
_TENANT_ID = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".webm": "audio/webm",
    ".m4a": "audio/mp4",
    ".json": "application/json",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class TenantFile:
    """An open regular file; the caller owns ``fd`` (``close`` or let a response do it)."""

    fd: int
    name: str
    size: int
    mtime: float

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def safe_parts(relative: str) -> tuple[str, ...] | None:
    """The components of ``relative`` when it is a plain relative path, else ``None``."""
    if not relative or len(relative) > MAX_PATH or "\x00" in relative or "\\" in relative:
        return None
    if relative.startswith("/"):
        return None
    parts = tuple(relative.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        return None
    return parts


def open_tenant_file(root: Path, tenant_id: str, relative: str) -> TenantFile:
    """Open ``<root>/<tenant_id>/<relative>`` without following any link below ``root``.

    Raises ``NotFound`` for every refusal alike (bad shape, missing, link, not a regular
    file, unreadable), so a caller cannot tell another tenant's file from an unknown one.
    """
    parts = safe_parts(relative)
    if parts is None or not _TENANT_ID.match(tenant_id):
        raise NotFound()
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise NotFound() from None
    try:
        for name in (tenant_id, *parts[:-1]):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            next_fd = os.open(name, flags, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        # O_NONBLOCK: a FIFO planted in the tree must not hang the open
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
            raise
        raise NotFound() from None
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotFound()
    return TenantFile(fd=fd, name=parts[-1], size=info.st_size, mtime=info.st_mtime)


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The inclusive ``(first, last)`` a ``Range`` header asks for, ``None`` for the whole
    file (no header, several ranges or a malformed one: RFC 9110 lets a server ignore it),
    or ``False`` when it cannot be satisfied (416)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            return False
        return (max(0, size - suffix), size - 1)
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        return False
    return (first, min(last, size - 1))


def disposition(name: str, download: bool) -> str:
    """``attachment`` (download) or ``inline`` (play), with an ASCII fallback name and the
    exact one in RFC 5987 form."""
    kind = "attachment" if download else "inline"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "audio"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def file_response(
    request: web.Request, opened: TenantFile, *, download: bool = False
) -> web.StreamResponse:
    """Stream ``opened`` as the answer to ``request`` and close it, whatever happens."""
    try:
        return await _stream(request, opened, download)
    finally:
        opened.close()


async def _stream(request: web.Request, opened: TenantFile, download: bool) -> web.StreamResponse:
    wanted = byte_range(request.headers.get("Range"), opened.size)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": disposition(opened.name, download),
    }
    if wanted is False:
        headers["Content-Range"] = f"bytes */{opened.size}"
        return web.Response(status=416, headers=headers)
    first, last = wanted if isinstance(wanted, tuple) else (0, opened.size - 1)
    response = web.StreamResponse(status=206 if isinstance(wanted, tuple) else 200)
    response.headers.update(headers)
    response.content_type = content_type(opened.name)
    response.content_length = last - first + 1
    if isinstance(wanted, tuple):
        response.headers["Content-Range"] = f"bytes {first}-{last}/{opened.size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    await _copy(request, response, opened.fd, first, last + 1)
    return response


async def _copy(
    request: web.Request, response: web.StreamResponse, fd: int, start: int, end: int
) -> None:
    """Copy ``[start, end)`` of ``fd``: with ``sendfile`` (the kernel copies, as nginx does;
    a tenth of the CPU per byte in ``bench/bench_recordings.py stream``), else in chunks
    read off the event loop. A file truncated while it streams ends the connection early:
    the client sees a short body, not a hang."""
    transport = request.transport
    loop = asyncio.get_running_loop()
    if transport is not None and getattr(loop, "sendfile", None) is not None:
        with os.fdopen(fd, "rb", closefd=False) as source:  # wraps the open fd: no I/O
            try:
                sent = await loop.sendfile(transport, source, start, end - start)
            except NotImplementedError:
                pass  # a transport sendfile cannot drive (TLS): the chunked copy below
            else:
                if sent < end - start:
                    transport.close()
                    return
                await response.write_eof()
                return
    offset = start
    while offset < end:
        chunk = await loop.run_in_executor(None, os.pread, fd, min(CHUNK, end - offset), offset)
        if not chunk:
            if request.transport is not None:
                request.transport.close()
            return
        await response.write(chunk)
        offset += len(chunk)
    await response.write_eof()

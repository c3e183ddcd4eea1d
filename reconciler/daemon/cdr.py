"""Call records from the switches into each tenant's schema: mod_xml_cdr's posts, and the
records a node kept on disk while it could not post.

Where: ``POST /freeswitch/cdr`` on the control plane's listener (the xml_curl listener when
the daemon answers xml_curl in process, the ``--status-listen`` one with workers). Workers
stay lookup-only (no store, their contract), and a CDR handler is a route of its own that
decodes and reads each post in a thread (about a millisecond of CPU: ``form_value``,
``read_cdr``) and writes in a thread pool of its own (``cdr`` connections), so a post
never waits behind a lookup nor a lookup behind PostgreSQL.

Nothing is lost: a record is acknowledged (2xx) only once it is committed, or quarantined
on disk when its domain is no served tenant's or it cannot be read (counted, never written
to a shared table).
While PostgreSQL is down, or before the first pass told the daemon which tenants exist, the
answer is 503: mod_xml_cdr retries, then writes ``[a_]<uuid>.cdr.xml`` into its
``err-log-dir``; ``--cdr-spool-dir`` names that folder on this host and the collector files
and deletes those records once the store is back. Filing is idempotent by the leg's uuid,
so a record that arrives twice (a retry after a lost answer, several daemons) is kept once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qs, unquote

from aiohttp import web

from reconciler.core.call_record import CallRecord
from reconciler.core.cdr import MAX_CDR_BYTES, CdrError, read_cdr
from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.serve import basic_auth_matches
from reconciler.store import StoreUnavailable
from reconciler.store.calls import file_calls
from reconciler.store.runner import ConnectionRunner

log = logging.getLogger(__name__)

CDR_PATH = "/freeswitch/cdr"
ERROR_FILE_SUFFIX = ".cdr.xml"
BODY_TIMEOUT = 10.0
BATCH = 500  # records per transaction at most
SETTLE_SECONDS = 2.0  # an error file younger than this may still be being written


class Filed(StrEnum):
    """What became of one record (the ``result`` label of ``pbx_cdr_records_total``)."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    REFUSED = "refused"  # unreadable: kept in quarantine too


class NotYet(Exception):
    """The record cannot be filed now (no database, no applied state): ask for a retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CdrIntake:
    """Files records: parse, resolve the tenant by domain, insert; or quarantine."""

    def __init__(
        self,
        dsn: Callable[[], str | None],
        domains: Callable[[], Mapping[str, str] | None],
        quarantine_dir: Path,
        metrics: Metrics,
    ) -> None:
        self._runner = ConnectionRunner(dsn, size=2, name="cdr")
        self._domains = domains  # {domain: tenant id} of the applied state; None before it
        self.quarantine_dir = quarantine_dir
        self._metrics = metrics
        self._pending: list[tuple[str, CallRecord, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def file(self, text: str) -> Filed:
        """File one record; raises ``NotYet`` when it must be offered again later."""
        # off the loop: a 20 KB document is a millisecond the loop's other requests need
        return await self._file(text, await asyncio.to_thread(_read, text))

    async def file_post(self, body: bytes, content_type: str) -> Filed:
        """File one post's record (decoded and read in one trip off the loop)."""
        text, read = await asyncio.to_thread(_decode_and_read, body, content_type)
        return await self._file(text, read)

    async def _file(self, text: str, read: CallRecord | CdrError) -> Filed:
        if isinstance(read, CdrError):
            event(log, "call record refused", level=logging.WARNING, reason=str(read))
            name = hashlib.sha256(text.encode()).hexdigest()[:32]
            await asyncio.to_thread(self._keep, f"unreadable-{name}", text)
            return self._count(Filed.REFUSED)
        record = read
        domains = self._domains()
        if domains is None:
            raise NotYet("no applied state yet")
        tenant_id = domains.get(record.domain)
        if tenant_id is None:
            await asyncio.to_thread(self._keep, record.uuid, text)
            event(log, "call record quarantined", level=logging.WARNING, domain=record.domain)
            return self._count(Filed.QUARANTINED)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((tenant_id, record, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="cdr-writer")
        added = await future
        return self._count(Filed.STORED if added else Filed.DUPLICATE)

    async def _write_pending(self) -> None:
        """Group commit: every record waiting when the previous batch committed goes in one
        transaction, so the rate follows the switches' concurrency, not one fsync a post."""
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            by_tenant: dict[str, list[CallRecord]] = {}
            for tenant_id, record, _ in batch:
                by_tenant.setdefault(tenant_id, []).append(record)
            try:
                new = await self._runner.run(file_calls, by_tenant)
            except StoreUnavailable as exc:
                failure = NotYet(f"database unavailable: {exc}")
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, record, future in batch:
                if not future.done():
                    future.set_result(record.uuid in new)

    def _count(self, filed: Filed) -> Filed:
        self._metrics.cdr_records.labels(filed.value).inc()
        return filed

    def _keep(self, name: str, text: str) -> None:
        """Keep a record in quarantine (no tenant's, or unreadable): an operator looks;
        it never reaches a table."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.quarantine_dir, prefix=".cdr.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, self.quarantine_dir / f"{name}{ERROR_FILE_SUFFIX}")

    async def close(self) -> None:
        await self._runner.close()


def cdr_handler(
    intake: CdrIntake, credentials: tuple[str, str] | None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``POST /freeswitch/cdr``: mod_xml_cdr's document (``encode=textxml``, what the node
    config sets) or its form ``cdr=<url-encoded xml>`` (``encode=true``), with the xml_curl
    credentials when the daemon has them."""
    expected = f"{credentials[0]}:{credentials[1]}".encode() if credentials else None

    async def handle(request: web.Request) -> web.StreamResponse:
        if expected is not None and not basic_auth_matches(
            request.headers.get("Authorization", ""), expected
        ):
            return web.Response(
                status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Basic"}
            )
        body = await _read_limited(request)
        if body is None:
            return web.Response(status=413, text="record too large\n")
        try:
            filed = await intake.file_post(body, request.content_type)
        except NotYet as exc:
            return web.Response(status=503, text=f"not filed now: {exc.reason}\n")
        return web.Response(text=f"{filed.value}\n")

    return handle


async def _read_limited(request: web.Request) -> bytes | None:
    if request.content_length is not None and request.content_length > 3 * MAX_CDR_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(BODY_TIMEOUT):
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > 3 * MAX_CDR_BYTES:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def _read(text: str) -> CallRecord | CdrError:
    try:
        return read_cdr(text)
    except CdrError as exc:
        return exc


def _decode_and_read(body: bytes, content_type: str) -> tuple[str, CallRecord | CdrError]:
    text = _document(body, content_type)
    return text, _read(text)


def _document(body: bytes, content_type: str) -> str:
    """The XML of a post: the body itself (encode=textxml) or form field ``cdr`` (encode=true)."""
    if content_type == "application/x-www-form-urlencoded":
        if body.startswith(b"cdr=") and b"&" not in body:
            return form_value(body[4:])
        text = body.decode("utf-8", errors="replace")
        return parse_qs(text, max_num_fields=8).get("cdr", [""])[0]
    return body.decode("utf-8", errors="replace")


def form_value(value: bytes) -> str:
    """One url-encoded form value, decoded by C codecs: each ``%XX`` becomes a ``\\xXX``
    escape that ``unicode_escape`` turns into that byte, then the bytes are read as UTF-8.
    About ten times faster than ``parse_qs`` on a record (thousands of escapes, mod_xml_cdr
    encodes every ``<``, ``>``, space and quote). Only when the value holds no backslash of its
    own (mod_xml_cdr encodes them: ``%5C``) and every escape is well formed; else, and for
    bytes that are not UTF-8, ``unquote_plus`` as ``parse_qs`` would."""
    plus = value.replace(b"+", b" ")
    if b"\\" not in value:
        try:
            raw = plus.replace(b"%", b"\\x").decode("unicode_escape").encode("latin-1")
            return raw.decode("utf-8")
        except UnicodeError:
            pass
    return unquote(plus.decode("utf-8", errors="replace"), errors="replace")


def spooled_document(text: str) -> str:
    """An error-directory file: the url-encoded body the node could not post (encode=true),
    or a raw document (encode=false, or a file put there by hand)."""
    return text if text.lstrip().startswith("<") else unquote(text)


async def collect_spool(intake: CdrIntake, folder: Path) -> int:
    """File every record a node kept in ``folder`` (its err-log-dir, any depth) and delete
    it; stops at the first one that cannot be filed yet. Returns how many were filed."""
    files = await asyncio.to_thread(_settled_files, folder, time.time())
    filed = 0
    for path in files:
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue  # another daemon on this host took it
        await intake.file(spooled_document(text))  # NotYet: the file stays for next round
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)
        filed += 1
    return filed


def _settled_files(folder: Path, now: float) -> list[Path]:
    """The error files of ``folder``, leaving those written in the last ``SETTLE_SECONDS``
    (the switch may still be writing one: half a record would read as unreadable)."""
    settled = []
    for path in sorted(folder.rglob(f"*{ERROR_FILE_SUFFIX}")):
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime >= SETTLE_SECONDS:
                settled.append(path)
    return settled


async def run_collector(
    intake: CdrIntake, folders: tuple[Path, ...], interval: float, stop: asyncio.Event
) -> None:
    """Collect every ``interval`` seconds until ``stop``."""
    while not stop.is_set():
        for folder in folders:
            try:
                filed = await collect_spool(intake, folder)
            except NotYet as exc:
                event(log, "call records wait on disk", folder=str(folder), reason=exc.reason)
                continue
            except OSError as exc:
                event(log, "call record folder unreadable", level=logging.WARNING,
                      folder=str(folder), error=str(exc))  # fmt: skip
                continue
            if filed:
                event(log, "call records collected", folder=str(folder), count=filed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)

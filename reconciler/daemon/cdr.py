"""Call records from the switches into each tenant's schema: mod_xml_cdr's posts, and the
records a node kept on disk while it could not post.

Where: ``POST /freeswitch/cdr`` on the control plane's listener (the xml_curl listener when
the daemon answers xml_curl in process, the ``--status-listen`` one with workers). Workers
stay lookup-only (no store, their contract).

Two steps, so a post never waits on PostgreSQL and a lookup never on a post's parsing: the
handler appends the post as it came to the journal (``daemon.cdr_journal``: on disk and
synced, one ``fdatasync`` for every post that arrived meanwhile) and answers 200; the
filer reads the journal in batches, decodes and reads them in reader processes at a low
priority (``daemon.cdr_reading``: the GIL and the cores stay the loop's and the lookups'),
and files each batch in one transaction (``store.calls.file_calls``: one
statement a tenant, the daily rollup folded in it), then checkpoints. A record whose domain
is no served tenant's, or that cannot be read, is kept in quarantine on disk (counted,
never written to a shared table).

Nothing is lost: a post is acknowledged only once it is synced to the journal, and the
journal is filed from its checkpoint after a restart. Filing is idempotent by the leg's
uuid, so a batch replayed after a crash before its checkpoint, a retried post or a record
from several daemons is kept once.

While PostgreSQL is away posts are still taken: the journal is as durable as the switch's
error directory and is filed, in order, once the database is back; a 503 would only hold
the switch's hang-up thread through its retries and then put the record in that
directory for the collector anyway. The answer is 503 (mod_xml_cdr retries, then writes
``[a_]<uuid>.cdr.xml`` into its ``err-log-dir``) only when the journal cannot take it: it
holds ``MAX_BACKLOG_BYTES`` unfiled, its disk is unwritable, another daemon on the same
state dir holds its lock, or the daemon has not yet learnt its database and tenants
(start-up). ``--cdr-spool-dir`` names that error folder on this host; the collector
journals its records (one sync a batch) and deletes them once the journal takes them.

Why a locked journal is a 503 and not a refusal to start: the daemon's first duty is the
switches' lookups, which a second daemon on one state dir does not harm; the records
wait at the switch, this daemon retries the lock (``LOCK_RETRY_SECONDS``) and takes the
journal over when the other one exits (an overlapping restart heals alone), and the log
and ``/status`` (``call_records.journal``) say why meanwhile.

The reader processes die with the daemon, even when it is SIGKILLed
(``cdr_reading.reader_started``: the parent-death signal), so none is left parsing for a
daemon that is gone.
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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from enum import StrEnum
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from reconciler.core.call_record import CallRecord
from reconciler.core.cdr import MAX_CDR_BYTES, CdrError
from reconciler.core.logs import event
from reconciler.daemon.cdr_journal import Journal, JournalBusy, Position
from reconciler.daemon.cdr_reading import (
    FORM,
    FORM_TYPE,
    XML,
    form_value,
    payload_document,
    post_document,
    read_payloads,
    reader_started,
)
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
MAX_BACKLOG_BYTES = 512 * 1024 * 1024  # journaled, not filed: beyond it the switch keeps them
READERS = 2  # processes parsing a batch's halves: parsing is most of a record's CPU
READER_NICENESS = 10  # filing can lag (the journal holds it); lookups on the cores cannot
LOCK_RETRY_SECONDS = 1.0  # how often a daemon without the journal's lock tries again
RETRY_SECONDS = (0.2, 5.0)  # the filer's wait after a failed batch: first, cap
Read = tuple[bytes, CallRecord | CdrError]  # a journal payload and what it reads as


class Filed(StrEnum):
    """What became of one record (the ``result`` label of ``pbx_cdr_records_total``)."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    REFUSED = "refused"  # unreadable: kept in quarantine too


class NotYet(Exception):
    """The record cannot be taken now (no database, no applied state): ask for a retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CdrIntake:
    """Takes records into the journal and files them from it: read, resolve the tenant by
    domain, insert; or quarantine."""

    def __init__(
        self,
        dsn: Callable[[], str | None],
        domains: Callable[[], Mapping[str, str] | None],
        quarantine_dir: Path,
        metrics: Metrics,
        journal_dir: Path | None = None,
    ) -> None:
        self._runner = ConnectionRunner(dsn, size=1, name="cdr")
        self._dsn = dsn
        self._domains = domains  # {domain: tenant id} of the applied state; None before it
        self.quarantine_dir = quarantine_dir
        self._metrics = metrics
        self._journal_dir = journal_dir or quarantine_dir.parent / "cdr-journal"
        self._journal: Journal | None = None
        self._busy: str | None = None  # why the journal could not be opened
        self._tried = 0.0  # monotonic time of the last try
        self._open_journal()
        self._filer: asyncio.Task[None] | None = None
        self._reader: ProcessPoolExecutor | None = None
        self._store_down: str | None = None  # why the last batch could not be filed
        self._caught_up = asyncio.Event()

    # -- taking ---------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        """The open journal (only while this process holds its lock)."""
        if self._journal is None:
            raise RuntimeError(f"the call record journal is not open: {self._busy}")
        return self._journal

    def _open_journal(self) -> Journal | None:
        """The journal, opened when its lock is free (tried at most every
        ``LOCK_RETRY_SECONDS`` while another process holds it)."""
        if self._journal is not None:
            return self._journal
        now = time.monotonic()
        if self._busy is not None and now - self._tried < LOCK_RETRY_SECONDS:
            return None
        self._tried = now
        try:
            self._journal = Journal(self._journal_dir)
        except JournalBusy as exc:
            if self._busy is None:
                event(log, "call record journal held by another daemon: posts answered 503",
                      level=logging.ERROR, folder=str(self._journal_dir), error=str(exc))  # fmt: skip
            self._busy = str(exc)
            return None
        if self._busy is not None:
            event(log, "call record journal taken over", folder=str(self._journal_dir))
        self._busy = None
        return self._journal

    async def file(self, text: str) -> None:
        """Take one record's document (an error-directory file); ``NotYet`` when it must
        be offered again later."""
        await self.file_many([text])

    async def file_many(self, texts: list[str]) -> None:
        """Take records' documents with one journal sync for all; ``NotYet`` for all."""
        await self._take([XML + text.encode("utf-8", errors="replace") for text in texts])

    async def file_post(self, body: bytes, content_type: str) -> None:
        """Take one post's body as it came (decoded when it is filed)."""
        kind = FORM if content_type == FORM_TYPE else XML
        await self._take([kind + body])

    def refusal(self) -> str | None:
        """Why a record cannot be taken now, or None. PostgreSQL being away is no reason:
        the journal keeps the record until it is back (see the module's docstring)."""
        journal = self._open_journal()
        if journal is None:
            return f"the journal is held by another daemon ({self._busy})"
        if self._domains() is None:
            return "no applied state yet"
        if self._dsn() is None:
            return "database unavailable: not resolved yet"
        if journal.backlog_bytes > MAX_BACKLOG_BYTES:
            return "the journal is full"
        return None

    def status(self) -> dict[str, object]:
        """The ``call_records`` entry of ``/status``."""
        journal = self._journal
        return {
            "journal": "open" if journal is not None else f"not open: {self._busy}",
            "backlog_bytes": journal.backlog_bytes if journal is not None else None,
            "filing": "ok" if self._store_down is None else f"waiting: {self._store_down}",
            "refusal": self.refusal(),
        }

    async def _take(self, payloads: list[bytes]) -> None:
        reason = self.refusal()
        if reason is not None:
            raise NotYet(reason)
        await self.journal.append_many(payloads)
        self.start()

    # -- filing ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run the filer (from the daemon's start: a journal left by the last run is filed
        with no post to wake it); while another daemon holds the journal, it waits for
        the lock first."""
        if self._filer is None or self._filer.done():
            self._filer = asyncio.create_task(self._file_journal(), name="cdr-filer")

    async def settled(self) -> None:
        """Returns once everything journaled so far is filed (tests, benchmarks)."""
        self.start()
        while self.journal.filed < self.journal.synced:
            self._caught_up.clear()
            await self._caught_up.wait()

    async def _file_journal(self) -> None:
        """File the journal from its checkpoint, forever: a batch a transaction, the next
        batch read and parsed (in this process) while the last one is inserted (in
        PostgreSQL's), checkpointed in order."""
        while True:  # a flock has no waiting that can be cancelled: poll it
            if self._open_journal() is not None:  # else another daemon's: wait for its exit
                break
            await asyncio.sleep(LOCK_RETRY_SECONDS)
        parsed: asyncio.Queue[tuple[list[Read], Position]] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(self._read_journal(parsed), name="cdr-reader")
        try:
            while True:
                read, end = await parsed.get()
                await self._file_until_done(read)
                await asyncio.to_thread(self.journal.mark_filed, end)
                self._caught_up.set()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read_journal(self, parsed: asyncio.Queue[tuple[list[Read], Position]]) -> None:
        at = self.journal.filed
        while True:
            self.journal.appended.clear()
            read, end = await self._read_batch(at)
            if end == at:
                await self.journal.appended.wait()
                continue
            await parsed.put((read, end))
            at = end

    async def _read_batch(self, start: Position) -> tuple[list[Read], Position]:
        """The next batch after ``start``, parsed in the reader processes (in a thread of
        this one for a batch when one died; new ones are started for the next)."""
        payloads, end = await asyncio.to_thread(self.journal.read, start, BATCH)
        if not payloads:
            return [], end
        if self._reader is None:
            self._reader = reader_pool()
        loop = asyncio.get_running_loop()
        share = -(-len(payloads) // READERS)
        parts = [payloads[i : i + share] for i in range(0, len(payloads), share)]
        try:
            read = [loop.run_in_executor(self._reader, read_payloads, part) for part in parts]
            records = [record for part in await asyncio.gather(*read) for record in part]
        except BrokenProcessPool:
            event(log, "call record reader died", level=logging.WARNING)
            self._reader = None
            records = await asyncio.to_thread(read_payloads, payloads)
        return list(zip(payloads, records, strict=True)), end

    async def _file_until_done(self, read: list[Read]) -> None:
        """File one batch, retrying with a growing wait while the database is away (new
        posts are still journaled meanwhile, up to ``MAX_BACKLOG_BYTES``)."""
        wait = RETRY_SECONDS[0]
        while True:
            try:
                await self._file_batch(read)
            except StoreUnavailable as exc:
                self._store_down = str(exc)
                event(log, "call records wait in the journal", level=logging.WARNING,
                      reason=str(exc), retry_in=wait)  # fmt: skip
                await asyncio.sleep(wait)
                wait = min(RETRY_SECONDS[1], wait * 2)
                continue
            self._store_down = None
            return

    async def _file_batch(self, read: list[Read]) -> None:
        domains = self._domains()
        if domains is None:
            raise StoreUnavailable("no applied state yet")
        by_tenant: dict[str, list[CallRecord]] = {}
        keep: list[tuple[str, str, Filed]] = []
        for payload, record in read:
            if isinstance(record, CdrError):
                text = payload_document(payload)
                event(log, "call record refused", level=logging.WARNING, reason=str(record))
                name = hashlib.sha256(text.encode()).hexdigest()[:32]
                keep.append((f"unreadable-{name}", text, Filed.REFUSED))
            elif (tenant_id := domains.get(record.domain)) is None:
                event(log, "call record quarantined", level=logging.WARNING,
                      domain=record.domain)  # fmt: skip
                keep.append((record.uuid, payload_document(payload), Filed.QUARANTINED))
            else:
                by_tenant.setdefault(tenant_id, []).append(record)
        new, failed = await self._insert(by_tenant)
        payloads = {r.uuid: p for p, r in read if isinstance(r, CallRecord)}
        for tenant_id in failed:
            for record in by_tenant.pop(tenant_id):
                text = payload_document(payloads[record.uuid])
                keep.append((f"failed-{record.uuid}", text, Filed.QUARANTINED))
        if keep:
            await asyncio.to_thread(self._keep_all, [(n, t) for n, t, _ in keep])
        for _, _, filed in keep:
            self._count(filed)
        for records in by_tenant.values():
            for record in records:
                self._count(Filed.STORED if record.uuid in new else Filed.DUPLICATE)

    async def _insert(self, by_tenant: dict[str, list[CallRecord]]) -> tuple[set[str], list[str]]:
        """The uuids filed new, in one transaction for the batch; when that fails for
        another reason than the database being away, tenant by tenant, and the tenants
        whose filing still fails (their records go to quarantine: one bad record must not
        hold every later one back)."""
        if not by_tenant:
            return set(), []
        try:
            return await self._runner.run(file_calls, by_tenant), []
        except StoreUnavailable:
            raise
        except Exception as exc:  # isolated below
            event(log, "call record batch failed", level=logging.WARNING, error=str(exc))
        new: set[str] = set()
        failed: list[str] = []
        for tenant_id, records in sorted(by_tenant.items()):
            try:
                new |= await self._runner.run(file_calls, {tenant_id: records})
            except StoreUnavailable:
                raise
            except Exception as exc:  # kept on disk, an operator looks
                event(log, "call records kept: their tenant's filing failed",
                      level=logging.ERROR, tenant=tenant_id, error=str(exc))  # fmt: skip
                failed.append(tenant_id)
        return new, failed

    def _count(self, filed: Filed) -> Filed:
        self._metrics.cdr_records.labels(filed.value).inc()
        return filed

    def _keep_all(self, kept: list[tuple[str, str]]) -> None:
        for name, text in kept:
            self._keep(name, text)

    def _keep(self, name: str, text: str) -> None:
        """Keep a record in quarantine (no tenant's, or unreadable): an operator looks;
        it never reaches a table."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.quarantine_dir, prefix=".cdr.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, self.quarantine_dir / f"{name}{ERROR_FILE_SUFFIX}")

    async def close(self) -> None:
        if self._filer is not None:
            self._filer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filer
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
        if self._journal is not None:
            await self._journal.close()
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
            await intake.file_post(body, request.content_type)
        except NotYet as exc:
            return web.Response(status=503, text=f"not taken now: {exc.reason}\n")
        except OSError as exc:  # the journal's disk: the switch keeps the record
            event(log, "call record journal unwritable", level=logging.ERROR, error=str(exc))
            return web.Response(status=503, text="not taken now: the journal is unwritable\n")
        return web.Response(text="accepted\n")

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


def spooled_document(text: str) -> str:
    """An error-directory file: the url-encoded body the node could not post (encode=true),
    or a raw document (encode=false, or a file put there by hand)."""
    return text if text.lstrip().startswith("<") else unquote(text)


async def collect_spool(intake: CdrIntake, folder: Path) -> int:
    """Take every record a node kept in ``folder`` (its err-log-dir, any depth) into the
    journal and delete it; stops at the first one that cannot be taken yet. Returns how
    many were taken."""
    files = await asyncio.to_thread(_settled_files, folder, time.time())
    filed = 0
    for start in range(0, len(files), BATCH):  # a journal sync a batch, not a file
        texts = await asyncio.to_thread(_read_files, files[start : start + BATCH])
        if not texts:
            continue
        await intake.file_many([spooled_document(t) for _, t in texts])  # NotYet: they stay
        await asyncio.to_thread(_unlink_all, [path for path, _ in texts])
        filed += len(texts)
    return filed


def reader_pool() -> ProcessPoolExecutor:
    """The reader processes: spawned (no copy of the loop's state), niced, and bound to
    die with this process."""
    return ProcessPoolExecutor(
        READERS, mp_context=get_context("spawn"), initializer=reader_started,
        initargs=(os.getpid(), READER_NICENESS),
    )  # fmt: skip


def _read_files(paths: list[Path]) -> list[tuple[Path, str]]:
    texts = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # another daemon on this host took it
            texts.append((path, path.read_text(encoding="utf-8", errors="replace")))
    return texts


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


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


_document = post_document  # the name bench/bench_calls.py's CPU probe reads in every tree
__all__ = ["form_value"]

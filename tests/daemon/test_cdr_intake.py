"""The daemon's side of mod_xml_cdr, over HTTP against a real database: a post is
acknowledged once it is in the journal, then filed once in its tenant's schema; no
credentials 401; a domain of no tenant is kept in quarantine, never filed; no database or no
applied state yet 503 (the switch retries, then keeps the record in its error directory);
the error directory's url-encoded files are collected and deleted; what the journal holds
is filed after a restart, once, even when the daemon died between a batch's commit and its
checkpoint."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from reconciler.daemon import cdr
from reconciler.daemon.cdr import (
    CDR_PATH,
    READERS,
    CdrIntake,
    NotYet,
    cdr_handler,
    collect_spool,
    form_value,
)
from reconciler.daemon.metrics import Metrics
from reconciler.store import connect
from reconciler.store.runner import ConnectionRunner
from tests.daemon.test_daemon import ACME as DAEMON_ACME
from tests.daemon.test_daemon import free_port, spawn_daemon, wait_first_pass
from tests.store.test_support import converge, desired_of, make_spec

CAPTURED = Path(__file__).resolve().parents[1] / "fakes" / "cdr"
AUTH = ("freeswitch", "cdr-test-Secret")
ACME_A = CAPTURED / "ext_answered_a.cdr.xml"
A_UUID = "12568f90-3095-43b4-9d13-5be69e5deb22"


@pytest.fixture
def dsn(pg_dsn: str) -> Iterator[str]:
    with connect(pg_dsn) as conn:
        converge(conn, desired_of([make_spec("acme"), make_spec("globex", did_prefix="212")]))
    yield pg_dsn


class Setup:
    def __init__(self, dsn: str, tmp_path: Path) -> None:
        self.dsn: str | None = dsn
        self.domains: dict[str, str] | None = {
            "acme.example.com": "acme",
            "globex.example.com": "globex",
        }
        self.metrics = Metrics()
        self.intake = CdrIntake(
            lambda: self.dsn, lambda: self.domains, tmp_path / "q", self.metrics
        )

    def rows(self, schema: str) -> list[str]:
        assert self.dsn is not None
        with psycopg.connect(self.dsn) as conn:
            return [u for (u,) in conn.execute(f"SELECT uuid FROM {schema}.calls ORDER BY uuid")]

    def counted(self, result: str) -> float:
        return self.metrics.cdr_records.labels(result)._value.get()  # type: ignore[attr-defined]


@pytest.fixture
async def setup(dsn: str, tmp_path: Path) -> AsyncIterator[Setup]:
    s = Setup(dsn, tmp_path)
    yield s
    await s.intake.close()


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[TestClient]:
    app = web.Application()
    app.router.add_post(CDR_PATH, cdr_handler(setup.intake, AUTH))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def form(text: str) -> tuple[str, dict[str, str]]:
    """What mod_xml_cdr sends with encode=true and cred=USER:PASS."""
    token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return "cdr=" + quote(text, safe=""), headers


async def test_a_post_is_filed_once_in_its_tenants_schema(client: TestClient, setup: Setup) -> None:
    body, headers = form(ACME_A.read_text())
    for _ in range(2):  # a retry after a lost answer
        response = await client.post(f"{CDR_PATH}?uuid=a_{A_UUID}", data=body, headers=headers)
        assert (response.status, await response.text()) == (200, "accepted\n")
    await setup.intake.settled()
    assert setup.rows("tenant_acme") == [A_UUID]
    assert setup.rows("tenant_globex") == []
    assert (setup.counted("stored"), setup.counted("duplicate")) == (1, 1)


async def test_without_credentials_nothing_is_filed(client: TestClient, setup: Setup) -> None:
    body, headers = form(ACME_A.read_text())
    headers["Authorization"] = "Basic " + base64.b64encode(b"freeswitch:wrong").decode()
    assert (await client.post(CDR_PATH, data=body, headers=headers)).status == 401
    assert setup.rows("tenant_acme") == []


async def test_a_domain_of_no_tenant_is_quarantined_not_filed(
    client: TestClient, setup: Setup, tmp_path: Path
) -> None:
    setup.domains = {"globex.example.com": "globex"}
    body, headers = form(ACME_A.read_text())
    response = await client.post(CDR_PATH, data=body, headers=headers)
    assert (response.status, await response.text()) == (200, "accepted\n")
    await setup.intake.settled()
    assert (tmp_path / "q" / f"{A_UUID}.cdr.xml").read_text() == ACME_A.read_text()
    assert setup.rows("tenant_globex") == [] and setup.counted("quarantined") == 1


async def test_an_unreadable_post_is_kept_in_quarantine(
    client: TestClient, setup: Setup, tmp_path: Path
) -> None:
    body, headers = form("<cdr><oops/></cdr>")
    response = await client.post(CDR_PATH, data=body, headers=headers)
    assert (response.status, await response.text()) == (200, "accepted\n")
    await setup.intake.settled()
    assert setup.counted("refused") == 1
    assert [p.read_text() for p in (tmp_path / "q").iterdir()] == ["<cdr><oops/></cdr>"]


async def test_no_database_or_no_applied_state_asks_the_switch_to_retry(
    client: TestClient, setup: Setup
) -> None:
    body, headers = form(ACME_A.read_text())
    setup.domains = None
    assert (await client.post(CDR_PATH, data=body, headers=headers)).status == 503
    setup.domains, dsn, setup.dsn = {"acme.example.com": "acme"}, setup.dsn, None
    assert (await client.post(CDR_PATH, data=body, headers=headers)).status == 503
    setup.dsn = dsn
    assert setup.rows("tenant_acme") == []


async def test_the_error_directory_is_collected_and_emptied(setup: Setup, tmp_path: Path) -> None:
    spool = tmp_path / "xml_cdr"
    spool.mkdir()
    # what the node writes after its retries: the url-encoded body, named [a_]<uuid>.cdr.xml
    (spool / f"a_{A_UUID}.cdr.xml").write_text(quote(ACME_A.read_text(), safe=""))
    (spool / "b.cdr.xml").write_text((CAPTURED / "ext_answered_b.cdr.xml").read_text())
    for path in spool.iterdir():  # written a while ago: settled
        os.utime(path, (time.time() - 60, time.time() - 60))
    (spool / "writing.cdr.xml").write_text("<cdr><variab")  # the switch is still writing
    setup.domains = None
    with pytest.raises(NotYet):
        await collect_spool(setup.intake, spool)
    assert len(list(spool.iterdir())) == 3  # kept until it can be filed
    setup.domains = {"acme.example.com": "acme"}
    assert await collect_spool(setup.intake, spool) == 2
    assert [p.name for p in spool.iterdir()] == ["writing.cdr.xml"]  # left for next round
    await setup.intake.settled()
    assert len(setup.rows("tenant_acme")) == 2


async def test_the_shipped_text_xml_post_is_filed(client: TestClient, setup: Setup) -> None:
    _, headers = form("")
    headers["Content-Type"] = "text/xml"  # encode=textxml, what pbx node-config sets
    response = await client.post(CDR_PATH, data=ACME_A.read_bytes(), headers=headers)
    assert (response.status, await response.text()) == (200, "accepted\n")
    await setup.intake.settled()
    assert setup.rows("tenant_acme") == [A_UUID]


@given(st.text())
def test_a_form_value_decodes_what_mod_xml_cdr_encodes(text: str) -> None:
    """mod_xml_cdr (switch_url_encode) escapes every byte outside printable ASCII and its
    unsafe set; quote(safe="") escapes more: both decode to the document."""
    assert form_value(quote(text, safe="").encode()) == text
    assert form_value(quote(text, safe="<>/ ").replace(" ", "+").encode()) == text


@given(st.binary().filter(lambda b: b"&" not in b) | st.from_regex(rb"\A[%0-9a-fA-F+\\x]*\Z"))
def test_the_fast_form_decoding_is_parse_qs(value: bytes) -> None:
    body = b"cdr=" + value
    expected = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    assert form_value(value) == expected.get("cdr", [""])[0]


def uuids(count: int) -> list[str]:
    return [f"{n:08x}-3095-43b4-9d13-5be69e5deb22" for n in range(count)]


def acme_record(uuid: str) -> bytes:
    return ACME_A.read_text().replace(A_UUID, uuid).encode()


def daily_calls(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(sum(calls), 0) FROM tenant_acme.calls_daily")
        return int(row.fetchone()[0])  # type: ignore[index]


async def test_a_journaled_post_is_filed_after_a_restart(setup: Setup, tmp_path: Path) -> None:
    """Acknowledged, then the daemon stops before filing: the next one files it."""
    setup.intake.start = lambda: None  # type: ignore[method-assign]  # dies before filing
    await setup.intake.file_post(acme_record(A_UUID), "text/xml")
    await setup.intake.close()
    assert setup.rows("tenant_acme") == []
    setup.intake = CdrIntake(lambda: setup.dsn, lambda: setup.domains, tmp_path / "q", Metrics())
    await setup.intake.settled()
    assert setup.rows("tenant_acme") == [A_UUID]


async def test_a_batch_committed_but_not_checkpointed_is_filed_once(
    setup: Setup, tmp_path: Path
) -> None:
    """The crash window of batching: the transaction committed, the daemon died before the
    journal's checkpoint moved; the replay files nothing twice, the rollup counts once."""
    await setup.intake.close()  # the journal is one daemon's at a time
    first = CdrIntake(lambda: setup.dsn, lambda: setup.domains, tmp_path / "q", Metrics())
    checkpoints: list[object] = []
    first.journal.mark_filed = checkpoints.append  # type: ignore[method-assign]  # dies here
    await asyncio.gather(*(first.file_post(acme_record(u), "text/xml") for u in uuids(40)))
    await wait_until(lambda: bool(checkpoints))  # committed, and the checkpoint lost
    assert len(setup.rows("tenant_acme")) == 40 and first.journal.filed.offset == 0
    await first.close()
    again = CdrIntake(lambda: setup.dsn, lambda: setup.domains, tmp_path / "q", setup.metrics)
    setup.intake = again
    await again.settled()
    assert setup.rows("tenant_acme") == sorted(uuids(40))
    assert daily_calls(setup.dsn or "") == 40
    assert (setup.counted("stored"), setup.counted("duplicate")) == (0, 40)
    assert again.journal.filed == again.journal.synced


async def test_a_torn_journal_tail_is_cut_and_the_rest_filed(setup: Setup, tmp_path: Path) -> None:
    """A crash mid-append (never acknowledged) leaves half a frame: it is cut, the whole
    frames before it are filed."""
    setup.intake.start = lambda: None  # type: ignore[method-assign]
    for uuid in uuids(3):
        await setup.intake.file_post(acme_record(uuid), "text/xml")
    await setup.intake.close()
    (segment,) = (tmp_path / "cdr-journal").glob("*.journal")
    with segment.open("ab") as handle:
        handle.write(b"CDR1\x00\x00\x10\x00half a record")
    setup.intake = CdrIntake(lambda: setup.dsn, lambda: setup.domains, tmp_path / "q", Metrics())
    await setup.intake.settled()
    assert setup.rows("tenant_acme") == sorted(uuids(3))
    await setup.intake.file_post(acme_record(A_UUID), "text/xml")  # appends after the cut
    await setup.intake.settled()
    assert len(setup.rows("tenant_acme")) == 4


async def test_records_wait_in_the_journal_while_the_database_is_away(
    client: TestClient, setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that cannot be committed stays in the journal and is retried; meanwhile new
    posts are still journaled (200) until the journal's cap, then 503 (the switch keeps
    them); nothing is lost."""
    body, headers = form(ACME_A.read_text())
    dsn = setup.dsn
    setup.dsn = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=1"
    assert (await client.post(CDR_PATH, data=body, headers=headers)).status == 200
    await wait_until(lambda: setup.intake.status()["filing"] != "ok")
    second, _ = form(acme_record(uuids(1)[0]).decode())
    response = await client.post(CDR_PATH, data=second, headers=headers)
    assert (response.status, await response.text()) == (200, "accepted\n")
    monkeypatch.setattr(cdr, "MAX_BACKLOG_BYTES", 1)
    response = await client.post(CDR_PATH, data=body, headers=headers)
    assert (response.status, await response.text()) == (503, "not taken now: the journal is full\n")
    monkeypatch.undo()
    setup.dsn = dsn
    away, setup.intake._runner = (
        setup.intake._runner,
        ConnectionRunner(lambda: dsn, size=1, name="cdr"),
    )  # back (a runner keeps the DSN it first opened)
    await away.close()
    await setup.intake.settled()
    assert setup.rows("tenant_acme") == sorted([A_UUID, uuids(1)[0]])
    assert setup.intake.refusal() is None and setup.intake.status()["filing"] == "ok"


async def test_a_second_daemon_on_the_state_dir_answers_503_then_takes_over(
    client: TestClient, setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons sharing a state dir: the second neither appends to nor files (nor cuts)
    the first one's journal; it answers 503 and says why, and takes the journal over once
    the first is gone, filing what it left with no post to wake it."""
    monkeypatch.setattr(cdr, "LOCK_RETRY_SECONDS", 0.05)
    second = CdrIntake(lambda: setup.dsn, lambda: setup.domains, tmp_path / "q", Metrics())
    second.start()  # the daemon's start
    try:
        app = web.Application()
        app.router.add_post(CDR_PATH, cdr_handler(second, AUTH))
        body, headers = form(ACME_A.read_text())
        async with TestClient(TestServer(app)) as other:
            response = await other.post(CDR_PATH, data=body, headers=headers)
            assert response.status == 503
            assert "the journal is held by another daemon" in await response.text()
        assert str(second.status()["journal"]).startswith("not open:")
        setup.intake.start = lambda: None  # type: ignore[method-assign]  # journals, no filing
        assert (await client.post(CDR_PATH, data=body, headers=headers)).status == 200
        await asyncio.sleep(0.3)
        assert setup.rows("tenant_acme") == []  # the second did not file the first's journal
        await setup.intake.close()
        await wait_until(lambda: setup.rows("tenant_acme") == [A_UUID])
        assert second.refusal() is None and second.status()["journal"] == "open"
        await second.file_post(acme_record(uuids(1)[0]), "text/xml")
        await second.settled()
        assert setup.rows("tenant_acme") == sorted([A_UUID, uuids(1)[0]])
    finally:
        await second.close()


def test_the_readers_exit_when_the_daemon_is_killed() -> None:
    """SIGKILL runs no shutdown: the reader processes must notice and go."""
    script = (
        "import time\n"
        "from reconciler.daemon.cdr import reader_pool\n"
        "pool = reader_pool()\n"
        "for f in [pool.submit(time.sleep, 0.3) for _ in range(4)]: f.result()\n"
        "print(' '.join(map(str, pool._processes)), flush=True)\n"
        "time.sleep(120)\n"
    )
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        readers = [int(pid) for pid in daemon.stdout.readline().split()]
        assert len(readers) == READERS and all(alive(pid) for pid in readers)
    finally:
        daemon.kill()
        daemon.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in readers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in readers if alive(pid)]


@pytest.mark.usefixtures("default_ports_taken")
def test_a_killed_daemons_readers_exit(tmp_path: Path, pg_dsn: str) -> None:
    """`pbx run` itself: a post starts the readers; SIGKILL the daemon, they go."""
    tenants = tmp_path / "tenants.d"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(DAEMON_ACME)
    port = free_port()
    daemon = spawn_daemon(tmp_path, tenants, pg_dsn, port)
    try:
        wait_first_pass(port)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{CDR_PATH}", data=ACME_A.read_bytes(),
            headers={"Content-Type": "text/xml"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        deadline = time.monotonic() + 60
        while len(readers := niced_children(daemon.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert readers, "no reader process started"
    finally:
        daemon.kill()
        daemon.wait()
    try:
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in readers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in readers if alive(pid)]
    finally:  # the xml_curl workers outlive a SIGKILL by design; readers left by a failure
        workers = tmp_path / "state" / "xmlcurl-workers.pid"
        pids = [int(p) for p in workers.read_text().split()] if workers.exists() else []
        for pid in [*pids, *readers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def niced_children(parent: int) -> list[int]:
    """The children of ``parent`` at the readers' niceness (the xml_curl workers are not)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and int(fields[16]) == cdr.READER_NICENESS:
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_collecting_the_error_directory_syncs_once_a_batch(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "xml_cdr"
    spool.mkdir()
    for uuid in uuids(30):
        (spool / f"a_{uuid}.cdr.xml").write_bytes(acme_record(uuid))
        os.utime(spool / f"a_{uuid}.cdr.xml", (time.time() - 60, time.time() - 60))
    syncs: list[int] = []
    fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), fdatasync(fd))[1])
    assert await collect_spool(setup.intake, spool) == 30
    assert len(syncs) == 1 and list(spool.iterdir()) == []
    monkeypatch.undo()
    await setup.intake.settled()
    assert setup.rows("tenant_acme") == sorted(uuids(30))


async def wait_until(condition: Callable[[], bool]) -> None:
    """Polls ``condition`` for up to 30 s (filing runs behind the answer)."""
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")

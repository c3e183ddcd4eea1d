"""A real xml_curl worker process on an inherited socket: the same bytes as the in-process
answer for every captured request, the same auth and body bounds, /readyz, a new generation
served after it is written, its heartbeat and counts on the board, SIGTERM exits 0."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.dataplane.board import Board, WorkerCounts
from reconciler.serve.generation import write_generation
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import answer, parse_form
from tests.dataplane.test_generation import IDENTITY
from tests.serve.test_xmlcurl_fixtures import a1_hashes_for, captured, load_state

CREDENTIALS = ("freeswitch", "s3cr3t:with:colons")
AUTH = "Basic " + base64.b64encode(":".join(CREDENTIALS).encode()).decode()
FORM = "application/x-www-form-urlencoded"


class Worker:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], path: Path, board: Board) -> None:
        self.port, self.proc, self.generation_path, self.board = port, proc, path, board

    def post(self, body: bytes, auth: str = AUTH) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/freeswitch/xml",
            data=body,
            headers={"Authorization": auth, "Content-Type": FORM},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="w1")


def start_worker(path: Path) -> Worker:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    board = Board.create(1)
    settings = {"fd": sock.fileno(), "generation_path": str(path), "dsn_fingerprint": "fp",
                "auth": list(CREDENTIALS), "templates_dir": None, "board_fd": board.fd,
                "slot": 0}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.dataplane.worker"],
        stdin=subprocess.PIPE,
        pass_fds=(sock.fileno(), board.fd),
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(settings).encode() + b"\n")
    proc.stdin.close()
    port = sock.getsockname()[1]
    sock.close()  # the worker holds its own copy
    worker = Worker(port, proc, path, board)
    eventually(lambda: worker.get("/healthz")[0] == 200, "the worker listening")
    return worker


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for: {what}")


@pytest.fixture
def worker(tmp_path: Path, snapshot: Snapshot) -> Iterator[Worker]:
    path = tmp_path / "xmlcurl.generation"
    write_generation(snapshot, path, identity=IDENTITY, dsn_fingerprint="fp")
    running = start_worker(path)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
        running.board.close()


def test_every_captured_post_gets_the_in_process_bytes(worker: Worker, snapshot: Snapshot) -> None:
    templates = load_templates()
    for name, capture in captured():
        body = str(capture["body"]).encode()
        expected = answer(snapshot, parse_form(body), templates)
        assert worker.post(body) == (expected.status, expected.body.encode()), name


def test_auth_and_body_bounds_hold_in_the_worker(worker: Worker) -> None:
    body = str(next(iter(captured()))[1]["body"]).encode()
    assert worker.post(body, auth="Basic " + base64.b64encode(b"freeswitch:no").decode())[0] == 401
    assert worker.post(b"section=directory&" + b"x" * (64 * 1024))[0] == 413
    assert worker.post(b"\x00garbage")[0] == 400


def test_readyz_names_the_generation_and_a_new_one_is_served(
    worker: Worker, snapshot: Snapshot
) -> None:
    status, payload = worker.get("/readyz")
    assert status == 200 and json.loads(payload)["generation"] == "w1"
    sip_auth = b"section=directory&tag_name=domain&key_name=name&key_value=globex.example.com&user=1001&domain=globex.example.com"
    assert b'<user id="1001"' in worker.post(sip_auth)[1]
    without_globex = Snapshot(
        generation="w2",
        tenants={d: t for d, t in snapshot.tenants.items() if t.id != "globex"},
        dids=snapshot.dids,
        queues=snapshot.queues,
    )
    write_generation(without_globex, worker.generation_path, identity=IDENTITY,
                     dsn_fingerprint="fp")  # fmt: skip
    eventually(lambda: json.loads(worker.get("/readyz")[1])["generation"] == "w2", "w2")
    assert b'<user id="1001"' not in worker.post(sip_auth)[1]
    worker.generation_path.unlink()  # withdrawn: fail closed
    eventually(lambda: worker.get("/readyz")[0] == 503, "not ready without a generation")
    assert b'<user id="1001"' not in worker.post(sip_auth)[1]


def test_the_worker_publishes_a_heartbeat_and_its_requests(
    worker: Worker, snapshot: Snapshot
) -> None:
    body = str(next(iter(captured()))[1]["body"]).encode()
    answered = answer(snapshot, parse_form(body), load_templates())
    for _ in range(5):
        worker.post(body)
    worker.post(b"\x00garbage")
    first = worker.board.read(0).heartbeat
    eventually(lambda: worker.board.read(0).heartbeat > first, "the heartbeat moves")
    reading = worker.board.read(0)
    assert reading.pid == worker.proc.pid
    expected = WorkerCounts()
    for _ in range(5):
        expected.observe(answered.section, answered.result, 0.0)
    expected.observe("other", "bad_request", 0.0)
    assert reading.counts.requests == expected.requests
    assert sum(map(sum, reading.counts.buckets)) == 6


def test_sigterm_exits_zero(worker: Worker) -> None:
    worker.proc.terminate()
    assert worker.proc.wait(timeout=20) == 0


def test_workers_log_in_the_daemons_format() -> None:
    """The daemon hands its log format to its workers (one format in the journal)."""
    import logging

    from reconciler.core import logs

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logs.configure("json")
        assert logs.current_format() == "json"
        logs.configure("text")
        assert logs.current_format() == "text"
    finally:  # leave the process's logging as it was (other tests read caplog)
        root.handlers[:] = handlers
        root.setLevel(level)

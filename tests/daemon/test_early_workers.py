"""The xml_curl workers come first (``daemon.early``): ``pbx run`` answers from its persisted
generation while PostgreSQL is unreachable, refuses a generation of another database, and
the worker process never loads the control plane. Nothing here asserts a duration."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.identity import DatabaseIdentity
from reconciler.daemon.early import check_persisted
from reconciler.serve.generation import write_generation
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.store.errors import StoreUnavailable
from reconciler.store.identity import dsn_fingerprint
from tests.daemon.test_daemon import free_port, sip_auth_form
from tests.daemon.test_workers import alive, eventually, worker_pids
from tests.dataplane.test_generation import IDENTITY
from tests.serve.test_xmlcurl_fixtures import a1_hashes_for, load_state

AUTH = ("freeswitch", "early-secret")
OTHER = DatabaseIdentity("7000000000000000002", "pbx", "1b6f3f9e-5d1c-4f7a-9a55-2f1e0c3d4b5a")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    state = load_state(tmp_path_factory.mktemp("tenants"))
    return build_snapshot(state, a1_hashes_for(state), generation="early1")


def unreachable_dsn() -> str:
    """A PostgreSQL address nothing listens on: the connection is refused."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/pbx_absent"


def lookup(port: int, user: str) -> bytes:
    data = urllib.parse.urlencode(sip_auth_form("acme.example.com", user)).encode()
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/freeswitch/xml", data=data,
                                     headers={"Authorization": f"Basic {token}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=2) as response:
        return bytes(response.read())


@contextlib.contextmanager
def pbx_run(tmp_path: Path, dsn: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    (tmp_path / "tenants.d").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {"PBX_DATABASE_URL": dsn, "PBX_XML_CURL_AUTH": ":".join(AUTH), "PBX_INTERVAL": "3600"}
    command = [sys.executable, "-m", "reconciler", "run", "--listen", f"127.0.0.1:{port}",
               "--status-listen", f"127.0.0.1:{free_port()}", "--no-portal",
               "--xml-curl-workers", "2", "--tenants", str(tmp_path / "tenants.d"),
               "--state-dir", str(tmp_path / "state")]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        pids = worker_pids(tmp_path)
        assert not [pid for pid in pids if alive(pid)], "SIGTERM drains the workers"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in worker_pids(tmp_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert AUTH[1] not in stderr
        if proc.stderr:
            proc.stderr.close()


def test_pbx_run_answers_from_its_generation_while_postgresql_is_unreachable(
    tmp_path: Path, snapshot: Snapshot
) -> None:
    dsn = unreachable_dsn()
    (tmp_path / "state").mkdir(mode=0o700)
    write_generation(snapshot, tmp_path / "state" / "xmlcurl.generation", identity=IDENTITY,
                     dsn_fingerprint=dsn_fingerprint(dsn))  # fmt: skip
    port = free_port()
    with pbx_run(tmp_path, dsn, port):
        eventually(lambda: b'<user id="1001"' in lookup(port, "1001"), "served from the file")
        assert all(b'<user id="1001"' in lookup(port, "1001") for _ in range(8)), "every worker"
        assert b'<user id="1999"' not in lookup(port, "1999")


def test_a_generation_of_another_database_is_never_served(
    tmp_path: Path, snapshot: Snapshot
) -> None:
    dsn = unreachable_dsn()
    (tmp_path / "state").mkdir(mode=0o700)
    other = f"postgresql://postgres@127.0.0.1:{free_port()}/pbx_other"
    write_generation(snapshot, tmp_path / "state" / "xmlcurl.generation", identity=IDENTITY,
                     dsn_fingerprint=dsn_fingerprint(other))  # fmt: skip
    port = free_port()
    with pbx_run(tmp_path, dsn, port):
        eventually(lambda: bool(lookup(port, "1001")), "the workers answer")
        assert all(b'<user id="1001"' not in lookup(port, "1001") for _ in range(8))
    assert not (tmp_path / "state" / "xmlcurl.generation").exists(), "withdrawn"


def _write(path: Path, snapshot: Snapshot, fingerprint: str = "fp") -> Path:
    write_generation(snapshot, path, identity=IDENTITY, dsn_fingerprint=fingerprint)
    return path


def _down(timeout: float) -> DatabaseIdentity | None:
    raise StoreUnavailable("refused")


def test_check_persisted_follows_the_database_it_can_ask(
    tmp_path: Path, snapshot: Snapshot
) -> None:
    path = _write(tmp_path / "g", snapshot)
    mapped = check_persisted(path, "fp", _down)  # unreachable: the fingerprint decides
    assert mapped is not None and mapped.generation == "early1"
    mapped.close()
    mapped = check_persisted(path, "fp", lambda timeout: IDENTITY)
    assert mapped is not None
    mapped.close()
    assert check_persisted(path, "another", _down) is None
    assert not path.exists(), "another DSN's file is withdrawn"
    path = _write(tmp_path / "g", snapshot)
    assert check_persisted(path, "fp", lambda timeout: OTHER) is None
    assert not path.exists(), "another database's file is withdrawn"
    path = _write(tmp_path / "g", snapshot)
    assert check_persisted(path, "fp", lambda timeout: None) is None
    assert not path.exists(), "a database never migrated is a new one"
    assert check_persisted(path, "fp", _down) is None


def test_the_worker_process_never_loads_the_control_plane() -> None:
    """What ``python -m reconciler.dataplane.worker`` imports (its lazy imports included:
    the listener and the answer are imported when it serves)."""
    code = (
        "import sys, reconciler.dataplane.worker as w\n"
        "import reconciler.serve.listener, reconciler.serve.xmlcurl_app, uvloop\n"
        "bad = ('reconciler.store', 'reconciler.web', 'reconciler.reconcile', 'reconciler.daemon',"
        " 'reconciler.switch', 'reconciler.cli', 'psycopg', 'psycopg_pool')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)), len(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded, _, count = done.stdout.strip().rpartition(" ")
    assert int(count) > 100, "it did import the worker and its listener"
    assert loaded == "[]", f"the worker loaded: {loaded}"

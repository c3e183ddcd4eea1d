"""Shared fixtures: a real PostgreSQL database per test, paths to the shared transcripts.

The server at 127.0.0.1:5432 (trust auth) is used when reachable, else an embedded pgserver
instance started once per session. Every test that asks for ``pg_dsn`` gets a database of
its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

# CI runs must be repeatable: a red run does not land, so property tests draw the same
# examples every time. `HYPOTHESIS_PROFILE=explore` draws fresh ones (run it before a change
# to a property's subject).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PBX_SHARED_DIR", REPO.parent / "shared"))
TRANSCRIPTS = SHARED / "freeswitch" / "transcripts"
EXAMPLE_TENANTS = REPO / "tenants.d"

_LOCAL_SERVER = os.environ.get(
    "PBX_TEST_SERVER_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a maintenance database on a server where tests may create databases."""
    if _reachable(_LOCAL_SERVER):
        yield _LOCAL_SERVER
        return
    import pgserver

    datadir = Path(tempfile.mkdtemp(prefix="pbx-test-pg-"))
    server = pgserver.get_server(datadir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server_dsn: str, prefix: str = "pbx_test") -> Iterator[str]:
    """A uniquely named database on the test server, dropped (with its connections) after:
    the one way every suite gets a database of its own."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(server_dsn)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A fresh, uniquely named database; dropped (with its connections) after the test."""
    with fresh_database(pg_server_dsn) as dsn:
        yield dsn


@pytest.fixture
def transcripts() -> Path:
    if not TRANSCRIPTS.is_dir():
        pytest.fail(f"FreeSWITCH transcripts not found at {TRANSCRIPTS} (set PBX_SHARED_DIR)")
    return TRANSCRIPTS


@pytest.fixture
def default_ports_taken() -> Iterator[None]:
    """Something holds the default portal and xml_curl ports (as a FreeSWITCH's mod_verto
    held the old portal default): a test that spawns `pbx run` must choose its own."""
    import socket

    from reconciler.daemon.config import DEFAULT_STATUS_LISTEN
    from reconciler.web.config import DEFAULT_LISTEN

    held = []
    for port in (DEFAULT_LISTEN[1], 8080, DEFAULT_STATUS_LISTEN[1]):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:  # already held by something else: just as good
            sock.close()
            continue
        held.append(sock)
    try:
        yield
    finally:
        for sock in held:
            sock.close()

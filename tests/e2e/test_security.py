"""Security checks over a whole scenario: a SIP password leaves the database only through
`pbx credentials show`, and the xml_curl endpoint gives nothing to the wrong caller.

One recorded run (module scope) plays the scenario of test_scenario.py plus the CLI around it
(plan, apply as a subprocess, rotate, render, an error) and keeps everything an attacker or a
log collector could read: every log record at DEBUG, every xml_curl answer (ours and the
switch's own callcenter.conf fetches), every CLI output, /status and /metrics, the persisted
snapshot. The tests below then search all of it for every password the database ever held.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import shutil
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from click.testing import Result

from reconciler.core.logs import JsonFormatter, KeyValueFormatter
from tests.conftest import EXAMPLE_TENANTS
from tests.e2e.conftest import (
    ACME,
    AUTH,
    ESL_PASSWORD,
    GLOBEX,
    World,
    a1_hash,
    all_passwords,
    database,
    dialplan_answer,
    directory_users,
    eventually,
    is_not_found,
    parse_xml,
    pbx,
    replace_once,
    served_queues,
    start_world,
    write_atomic,
)
from tests.e2e.test_scenario import (
    add_extension,
    change_tier,
    delete_queue,
    initial_state,
    move_agent_to_another_queue,
    suspend_tenant,
)

A1_HASH = re.compile(r"^[0-9a-f]{32}$")


class _Capture(logging.Handler):
    """Every log record of the run, whatever its logger or level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _render(record: logging.LogRecord) -> str:
    """Every way a record can reach a reader: both production formats (text and JSON), the
    bare message and the raw attributes (a secret in any field counts, masked or not)."""
    return "\n".join(
        (
            KeyValueFormatter().format(record),
            JsonFormatter().format(record),
            record.getMessage(),
            repr(vars(record)),
        )
    )


@dataclass
class Recording:
    passwords: set[str] = field(default_factory=set)
    logs: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)  # every xml_curl response body
    http: dict[str, str] = field(default_factory=dict)  # /status, /metrics
    snapshot_text: str = ""
    snapshot_mode: int = 0


def _output(result: Result) -> str:
    return f"exit={result.exit_code}\n{result.stdout}\n{result.stderr}"


async def _subprocess_pbx(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return f"{out.decode()}\n{err.decode()}"


async def _get(world: World, path: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{world.port}{path}") as response,
    ):
        assert response.status == 200
        return await response.text()


async def _record(dsn: str, tmp: Path) -> Recording:
    rec = Recording()
    cli_tenants = tmp / "cli-tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, cli_tenants)
    db = ("--database-url", dsn)
    rec.outputs["plan, everything new"] = _output(
        pbx("plan", "--tenants", str(cli_tenants), *db, "--no-live")
    )
    rec.outputs["plan json"] = _output(
        pbx("plan", "--tenants", str(cli_tenants), *db, "--no-live", "--output", "json")
    )
    # the first apply creates every password: as a real process, stderr included
    rec.outputs["pbx apply (process)"] = await _subprocess_pbx(
        "apply", "--yes", "--tenants", str(cli_tenants), *db
    )
    rec.passwords |= all_passwords(dsn)

    async with start_world(tmp, dsn) as world:
        await initial_state(world)
        await add_extension(world)
        await change_tier(world)
        await move_agent_to_another_queue(world)
        await delete_queue(world)
        await suspend_tenant(world)
        rec.passwords |= all_passwords(dsn)

        rotated = pbx("credentials", "rotate", "acme", "1002", *db)
        assert rotated.exit_code == 0, rotated.output
        rec.outputs["credentials rotate"] = _output(rotated)
        new_hash = a1_hash("1002", ACME, world.password("acme", "1002"))

        async def rotation_served() -> bool:
            users = directory_users(await world.xml.register(ACME, "1002"))
            return [u.params.get("a1-hash") for u in users] == [new_hash]

        await eventually(rotation_served, "the rotated a1-hash served")
        rec.passwords |= all_passwords(dsn)

        rec.outputs["credentials show, unknown extension"] = _output(
            pbx("credentials", "show", "acme", "9999", *db)
        )
        rec.outputs["render directory"] = _output(
            pbx("render", "--section", "directory", "--domain", ACME, "--user", "1001", *db)
        )
        rec.outputs["render callcenter"] = _output(pbx("render", "--section", "configuration", *db))
        # a pending change, planned with the live preview of the switch (not applied)
        path = cli_tenants / "acme.yaml"
        write_atomic(
            path,
            replace_once(path.read_text(), ("    call_timeout: 20\n", "    call_timeout: 21\n")),
        )
        node = f"{world.fs.host}:{world.fs.port}:{ESL_PASSWORD}"
        for label, extra in (("plan live", ()), ("plan live json", ("--output", "json"))):
            result = await asyncio.to_thread(
                pbx, "plan", "--tenants", str(cli_tenants), *db, "--freeswitch", node, *extra
            )
            rec.outputs[label] = _output(result)
        rec.http["/status"] = await _get(world, "/status")
        rec.http["/metrics"] = await _get(world, "/metrics")
        rec.answers = [e.response for e in world.xml.exchanges]
        fetches = world.fs.fetch_history + world.fs.xml_curl_log
        assert fetches, "the switch fetched callcenter.conf"
        rec.answers += [r.response or "" for r in fetches]
        snapshot = world.state_dir / "xmlcurl.generation"
    persisted = [snapshot, *snapshot.parent.glob(f"{snapshot.name}.*.data")]  # index, data
    rec.snapshot_text = b"".join(p.read_bytes() for p in persisted).decode("latin-1")  # binary
    rec.snapshot_mode = max(stat.S_IMODE(p.stat().st_mode) for p in persisted)
    rec.passwords |= all_passwords(dsn)
    return rec


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recording(
    pg_server_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Recording]:
    capture = _Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        with database(pg_server_dsn) as dsn:
            rec = await _record(dsn, tmp_path_factory.mktemp("security"))
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
    rec.logs = [_render(r) for r in capture.records]
    yield rec


def _leaks(texts: dict[str, str], secrets: set[str]) -> list[str]:
    return [
        f"{where} holds a secret"
        for where, text in texts.items()
        if any(s in text for s in secrets)
    ]


def test_the_recording_is_not_empty(recording: Recording) -> None:
    """Guards every test below against passing on nothing."""
    assert len(recording.passwords) >= 10, "passwords of two tenants, a new extension, a rotation"
    for event in ("change applied", "snapshot swapped", "live drift repaired", "esl connected"):
        assert any(event in r for r in recording.logs), f"no {event!r} record captured"
    assert len(recording.answers) > 50
    assert all(recording.outputs.values())


def test_no_password_in_any_xml_answer(recording: Recording) -> None:
    texts = {f"answer #{i}": a for i, a in enumerate(recording.answers)}
    assert _leaks(texts, recording.passwords) == []


def test_no_password_in_any_log_record(recording: Recording) -> None:
    texts = {f"log record #{i}": r for i, r in enumerate(recording.logs)}
    assert _leaks(texts, recording.passwords) == []


def test_no_transport_secret_in_any_log_record(recording: Recording) -> None:
    """The ESL password and the xml_curl credentials are secrets too."""
    texts = {f"log record #{i}": r for i, r in enumerate(recording.logs)}
    assert _leaks(texts, {ESL_PASSWORD, AUTH[1]}) == []


def test_no_password_in_cli_output_or_errors(recording: Recording) -> None:
    """Plans that create every extension, the apply that generates the passwords (a real
    process, stderr included), a rotation, renders and an error: none prints a password."""
    outputs = recording.outputs
    assert "1001" in outputs["plan, everything new"] and "1001" in outputs["plan json"]
    assert "a1-hash" in outputs["render directory"]
    assert outputs["credentials show, unknown extension"].startswith("exit=1")
    assert "call_timeout" in outputs["plan live"], "the pending change was planned"
    assert _leaks(recording.outputs, recording.passwords | {ESL_PASSWORD}) == []


def test_no_password_in_status_or_metrics(recording: Recording) -> None:
    assert json.loads(recording.http["/status"])["database_up"] is True
    assert _leaks(recording.http, recording.passwords | {ESL_PASSWORD, AUTH[1]}) == []


def test_every_directory_user_has_an_a1_hash_and_no_password(recording: Recording) -> None:
    """A <user> with neither password nor a1-hash is let in WITHOUT a password check
    (allow-empty-password defaults to true): every served user must carry exactly one."""
    users = 0
    for answer in recording.answers:
        assert '<param name="password"' not in answer
        if is_not_found(answer):
            continue
        root = parse_xml(answer)
        names = {p.get("name") for p in root.iter("param")} | {
            v.get("name") for v in root.iter("variable")
        }
        assert not {n for n in names if n and "password" in n.lower()}, answer
        for user in directory_users(answer):
            users += 1
            hashes = [v for name, v in user.raw_params if name == "a1-hash"]
            assert len(hashes) == 1 and A1_HASH.match(hashes[0]), answer
    assert users > 10


def test_snapshot_file_is_private_and_holds_no_password(recording: Recording) -> None:
    assert recording.snapshot_mode == 0o600
    assert "1001" in recording.snapshot_text, "the snapshot was read"
    assert "password" not in recording.snapshot_text.lower()
    assert _leaks({"xmlcurl.generation": recording.snapshot_text}, recording.passwords) == []


# --- the endpoint -----------------------------------------------------------------------------


async def test_xml_curl_refuses_missing_or_wrong_credentials(world: World) -> None:
    body = world.xml.form("11-directory-register-a1hash").retarget(user="1001", domain=ACME)
    user, password = AUTH
    refused: dict[str, dict[str, object]] = {
        "no credentials": {"auth": None},
        "wrong password": {"auth": (user, password + "x")},
        "wrong user": {"auth": ("admin", password)},
        "password only": {"authorization": "Basic " + _b64(password)},
        "the ESL password": {"auth": (user, ESL_PASSWORD)},
        "not base64": {"authorization": "Basic !!!"},
        "empty basic": {"authorization": "Basic "},
        "bearer token": {"authorization": f"Bearer {password}"},
    }
    for label, how in refused.items():
        status, text = await world.xml.post(body, **how)
        assert status == 401, label
        assert "a1-hash" not in text and ACME not in text, label
    # the same body with the right credentials is answered (the refusals were about auth)
    status, text = await world.xml.post(body)
    assert status == 200 and [u.id for u in directory_users(text)] == ["1001"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_one_tenants_users_are_not_found_under_another_domain(world: World) -> None:
    xml = world.xml
    register = xml.form("11-directory-register-a1hash")
    for number in ("1001", "1002", "1004", "1010"):
        assert is_not_found(await xml.register(GLOBEX, number)), f"acme {number} under globex"
        assert is_not_found(await xml.user_call(GLOBEX, number))
    for number in ("2001", "2002"):
        assert is_not_found(await xml.register(ACME, number)), f"globex {number} under acme"
    # the looked-up domain and the user's domain disagree: refused either way round
    mixed = (
        register.retarget(user="1001", domain=ACME, fields={"key_value": GLOBEX}),
        register.retarget(user="1001", domain=GLOBEX, fields={"key_value": ACME}),
        register.retarget(user="1001", domain=GLOBEX, fields={"domain": ACME}),
    )
    for body in mixed:
        assert is_not_found(await xml.ok(body))
    # a call in globex's context never reaches acme's extension or queue
    bridged = dialplan_answer(await xml.dialplan(GLOBEX, "1001", "1002"))
    assert bridged.context == GLOBEX and bridged.app("bridge") == []
    assert dialplan_answer(await xml.dialplan(GLOBEX, "2001", "7000")).app("callcenter") == []
    assert served_queues(await xml.callcenter(f"support@{GLOBEX}")) == {}

"""The scripted end-to-end scenario: specs in git -> PostgreSQL -> what FreeSWITCH is served
(the captured xml_curl forms, replayed) and what its mod_callcenter holds (the fake ESL peer).

Each spec edit is checked on both sides, because either alone can look right while the other
is wrong: a queue can vanish from callcenter.conf yet stay loaded on the switch, or be unloaded
while still served (and then silently come back on the next lazy load).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.conftest import EXAMPLE_TENANTS
from tests.e2e.conftest import (
    ACME,
    AUTH,
    ESL_PASSWORD,
    GLOBEX,
    INITECH,
    ProbingSwitch,
    World,
    XmlCurl,
    a1_hash,
    declared_live,
    dialplan_answer,
    directory_users,
    eventually,
    is_not_found,
    mutating_commands,
    served_queues,
    switch_drift,
)

CC = "callcenter_config"
ENABLED = {"acme": ("1001", "1002", "1004", "1010"), "globex": ("2001", "2002", "2003", "2099")}
DOMAIN = {"acme": ACME, "globex": GLOBEX}
SUPPORT, SALES, GLOBEX_SALES = f"support@{ACME}", f"sales@{ACME}", f"sales@{GLOBEX}"


def agent(name: str, domain: str = ACME) -> str:
    return f"{name}@{domain}"


async def assert_registers(world: World, tenant: str, number: str) -> None:
    """A REGISTER's sip_auth lookup answers exactly one user, whose a1-hash is the digest of
    the password a phone would be provisioned with, and no password."""
    domain = DOMAIN[tenant]
    password = world.password(tenant, number)
    users = directory_users(await world.xml.register(domain, number))
    assert [(u.domain, u.id) for u in users] == [(domain, number)]
    (user,) = users
    assert user.params["a1-hash"] == a1_hash(number, domain, password)
    assert "password" not in user.params
    assert user.variables["user_context"] == domain, "calls must land in the tenant's context"


async def assert_not_registered(world: World, domain: str, number: str) -> None:
    assert is_not_found(await world.xml.register(domain, number)), f"{number}@{domain} is served"


async def test_scenario(world: World) -> None:
    """One tenant tree through its life: served, extended, re-tiered, a queue deleted, a
    tenant suspended; after each step the XML answers and the switch agree with the specs."""
    await initial_state(world)
    await add_extension(world)
    await change_tier(world)
    await move_agent_to_another_queue(world)
    await delete_queue(world)
    await suspend_tenant(world)
    assert world.fs.unload_probes, "the scenario unloads queues"
    assert all(not served for _, served in world.fs.unload_probes), world.fs.unload_probes


async def initial_state(world: World) -> None:
    xml, fs = world.xml, world.fs
    for tenant, numbers in ENABLED.items():
        for number in numbers:
            await assert_registers(world, tenant, number)
    await assert_not_registered(world, ACME, "1003")  # enabled: false
    for number in ("301", "302"):  # initech is suspended
        await assert_not_registered(world, INITECH, number)

    # bridging to a user needs the dial-string (domain level) and the same a1-hash
    (callee,) = directory_users(await xml.user_call(ACME, "1002"))
    assert "sofia_contact" in callee.params["dial-string"]
    assert callee.params["a1-hash"] == a1_hash("1002", ACME, world.password("acme", "1002"))

    # calls: Hunt-Context is the caller's tenant domain
    call = dialplan_answer(await xml.dialplan(ACME, "1001", "1002"))
    assert call.context == ACME
    assert call.app("bridge") == [f"user/1002@{ACME}"]
    queue_call = dialplan_answer(await xml.dialplan(ACME, "1001", "7000"))
    assert queue_call.app("callcenter") == [SUPPORT]
    globex_call = dialplan_answer(await xml.dialplan(GLOBEX, "2001", "6000"))
    assert (globex_call.context, globex_call.app("callcenter")) == (GLOBEX, [GLOBEX_SALES])
    cross = dialplan_answer(await xml.dialplan(ACME, "1001", "2001"))
    assert cross.app("bridge") == [] and cross.app("hangup") == ["UNALLOCATED_NUMBER"]
    did = dialplan_answer(await xml.did("+14155550100"))
    assert (did.context, did.app("transfer")) == ("public", [f"7000 XML {ACME}"])
    on_break = dialplan_answer(await xml.dialplan(ACME, "1001", "*23"))
    assert any(f"agent set status {agent('alice')} 'On Break'" in d for d in on_break.app("set"))

    # callcenter.conf: one queue per queue load, every served queue at module load
    support = served_queues(await xml.callcenter(SUPPORT))
    assert list(support) == [SUPPORT]
    assert support[SUPPORT]["max-wait-time"] == "300"
    assert support[SUPPORT]["moh-sound"] == "local_stream://moh"
    assert set(served_queues(await xml.callcenter(None))) == {SUPPORT, SALES, GLOBEX_SALES}
    assert served_queues(await xml.callcenter(f"helpdesk@{INITECH}")) == {}

    # the switch: its own queue loads fetched those queues from us
    loads = {r.queue: r for r in fs.xml_curl_log}
    assert set(loads) >= {SUPPORT, SALES, GLOBEX_SALES}
    assert all(loads[q].status == 200 for q in (SUPPORT, SALES, GLOBEX_SALES))
    assert fs.queues[SUPPORT].max_wait_time == 300
    assert fs.agents[agent("alice")].status == "Available", "initial_status on creation"
    assert fs.agents[agent("bob")].status == "Logged Out"
    assert fs.agents[agent("frank", GLOBEX)].status == "Available"
    assert fs.agents[agent("overflow", GLOBEX)].contact == (
        "sofia/gateway/answering_service/+442071838799"
    )
    assert fs.agents[agent("carol")].contact == f"user/1004@{ACME}"
    assert fs.tiers[(SUPPORT, agent("bob"))].level == 2
    assert not [n for n in fs.agents if n.endswith(INITECH)], "a suspended tenant is not pushed"
    assert world.drift() == []


async def add_extension(world: World) -> None:
    world.edit(
        "acme.yaml",
        (
            '    caller_id: {name: "Acme <Front Desk>"}\n',
            '    caller_id: {name: "Acme <Front Desk>"}\n  - number: "1005"\n    name: Dave New\n',
        ),
        ("    wrap_up_time: 15\n", '    wrap_up_time: 15\n  - name: dave\n    extension: "1005"\n'),
        (
            "      - {agent: bob, level: 2, position: 1}\n",
            "      - {agent: bob, level: 2, position: 1}\n"
            "      - {agent: dave, level: 3, position: 1}\n",
        ),
    )
    await eventually(lambda: world.xml.user_found(ACME, "1005"), "1005 served")
    await assert_registers(world, "acme", "1005")
    call = dialplan_answer(await world.xml.dialplan(ACME, "1001", "1005"))
    assert call.app("bridge") == [f"user/1005@{ACME}"]
    await world.converged("dave pushed to the switch")
    assert world.fs.agents[agent("dave")].contact == f"user/1005@{ACME}"
    assert world.fs.tiers[(SUPPORT, agent("dave"))].level == 3


async def change_tier(world: World) -> None:
    """level/position of an existing tier: `tier set`, never del+add (that would drop the
    tier's runtime state and briefly take the agent out of the queue)."""
    fs = world.fs
    fs.reset_logs()
    world.edit(
        "acme.yaml",
        (
            "      - {agent: bob, level: 2, position: 1}\n",
            "      - {agent: bob, level: 1, position: 3}\n",
        ),
    )
    await world.converged("bob's support tier moved")
    tier = fs.tiers[(SUPPORT, agent("bob"))]
    assert (tier.level, tier.position) == (1, 3)
    bob = f"{SUPPORT} {agent('bob')}"
    assert sorted(mutating_commands(fs)) == [
        f"{CC} tier set level {bob} 1",
        f"{CC} tier set position {bob} 3",
    ]
    # tiers are never served in callcenter.conf (a queue load would re-import them)
    assert list(served_queues(await world.xml.callcenter(SUPPORT))) == [SUPPORT]


async def move_agent_to_another_queue(world: World) -> None:
    fs = world.fs
    fs.reset_logs()
    world.edit(
        "acme.yaml",
        ("      - {agent: carol, level: 1, position: 2}\n", ""),
        (
            "    strategy: ring-all\n    tiers:\n      - {agent: bob, level: 1, position: 1}\n",
            "    strategy: ring-all\n    tiers:\n      - {agent: bob, level: 1, position: 1}\n"
            "      - {agent: carol, level: 1, position: 2}\n",
        ),
    )
    await world.converged("carol moved from support to sales")
    assert (SUPPORT, agent("carol")) not in fs.tiers
    assert (
        fs.tiers[(SALES, agent("carol"))].level,
        fs.tiers[(SALES, agent("carol"))].position,
    ) == (
        1,
        2,
    )
    assert sorted(mutating_commands(fs)) == [
        f"{CC} tier add {SALES} {agent('carol')} 1 2",
        f"{CC} tier del {SUPPORT} {agent('carol')}",
    ]
    assert agent("carol") in fs.agents, "the agent itself is untouched"


async def delete_queue(world: World) -> None:
    """ORDER RULE: callcenter.conf stops serving a queue BEFORE `queue unload` is sent;
    otherwise the dispatcher's next lazy load (every 100 ms per waiting caller) brings it
    back. The probe fetched callcenter.conf at the instant the unload arrived."""
    fs, xml = world.fs, world.xml
    fs.reset_logs()
    fs.unload_probes.clear()
    world.edit(
        "acme.yaml",
        (
            "  - name: sales\n"
            '    number: "7001"\n'
            "    strategy: ring-all\n"
            "    tiers:\n"
            "      - {agent: bob, level: 1, position: 1}\n"
            "      - {agent: carol, level: 1, position: 2}\n",
            "",
        ),
        ('  - number: "+14155550102"\n    destination: {queue: sales}\n', ""),
    )

    async def gone() -> bool:
        return SALES not in fs.queues and is_not_found(await xml.callcenter(SALES))

    await eventually(gone, "sales unloaded and no longer served")
    await world.converged("sales and its tiers removed")
    assert fs.unload_probes == [(SALES, False)], "unloaded while callcenter.conf still served it"
    commands = mutating_commands(fs)
    unload = commands.index(f"{CC} queue unload {SALES}")
    for member in ("bob", "carol"):
        assert commands.index(f"{CC} tier del {SALES} {agent(member)}") < unload
    assert (SALES, agent("bob")) not in fs.tiers

    # after the unload, a lazy load must not bring the queue back
    assert await fs.run_api(f"{CC} queue load {SALES}") == "-ERR Invalid Queue not found!\n"
    assert await fs.run_api(f"{CC} tier add {SALES} {agent('bob')} 1 1") == (
        "-ERR Queue not found!\n"
    )
    assert SALES not in fs.queues

    assert set(served_queues(await xml.callcenter(None))) == {SUPPORT, GLOBEX_SALES}
    gone_number = dialplan_answer(await xml.dialplan(ACME, "1001", "7001"))
    assert gone_number.app("callcenter") == [] and gone_number.app("hangup") == [
        "UNALLOCATED_NUMBER"
    ]
    assert dialplan_answer(await xml.did("+14155550102")).app("transfer") == []
    assert dialplan_answer(await xml.dialplan(ACME, "1001", "7000")).app("callcenter") == [SUPPORT]


async def suspend_tenant(world: World) -> None:
    fs, xml = world.fs, world.xml
    fs.unload_probes.clear()
    world.edit("globex.yaml", ("status: active\n", "status: suspended\n"))

    async def unserved() -> bool:
        return not await xml.user_found(GLOBEX, "2001")

    await eventually(unserved, "globex no longer served")
    for number in ENABLED["globex"]:
        await assert_not_registered(world, GLOBEX, number)
    assert dialplan_answer(await xml.dialplan(GLOBEX, "2001", "2002")).app("bridge") == []
    assert dialplan_answer(await xml.did("+442071838750")).app("transfer") == []
    assert is_not_found(await xml.callcenter(GLOBEX_SALES))
    await world.converged("globex's agents, tiers and queue removed from the switch")
    assert not [n for n in fs.agents if n.endswith(GLOBEX)]
    assert not [k for k in fs.tiers if k[0].endswith(GLOBEX)]
    assert fs.unload_probes == [(GLOBEX_SALES, False)]
    # suspended, not deleted: the data stays, acme is untouched
    with psycopg.connect(world.dsn) as conn:
        (count,) = conn.execute("SELECT count(*) FROM tenant_globex.extensions").fetchone()  # type: ignore[misc]
        (status,) = conn.execute("SELECT status FROM pbx.tenants WHERE id = 'globex'").fetchone()  # type: ignore[misc]
    assert (count, status) == (4, "suspended")
    await assert_registers(world, "acme", "1001")


# --- the real process, with the embedded database -----------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pbx(env: dict[str, str], *args: str) -> tuple[int, str, str]:
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
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.usefixtures("default_ports_taken")
async def test_pbx_run_defaults_to_the_embedded_database(tmp_path: Path) -> None:
    """`pbx run` with no --database-url (and no PBX_DATABASE_URL) starts pgserver in its state
    dir, applies, serves and pushes; `pbx credentials show` with no DSN either finds the
    same embedded database (the daemon's state dir is the CLI's default data dir); SIGTERM
    exits 0, stops the embedded server and no SIP password ever reached stderr."""
    tenants = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, tenants)
    data_home = tmp_path / "xdg-data"
    state_dir = data_home / "pbx-reconciler"  # = platformdirs' user data dir under data_home
    port, status_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env["XDG_DATA_HOME"] = str(data_home)
    async with ProbingSwitch(
        password=ESL_PASSWORD,
        xml_curl_url=f"http://127.0.0.1:{port}/freeswitch/xml",
        xml_curl_credentials=":".join(AUTH),
    ) as fs:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reconciler",
            "run",
            "--listen",
            f"127.0.0.1:{port}",
            "--portal-listen",
            f"127.0.0.1:{_free_port()}",
            "--status-listen",  # the default xml_curl workers own --listen
            f"127.0.0.1:{status_port}",
            "--tenants",
            str(tenants),
            "--state-dir",
            str(state_dir),
            "--freeswitch",
            f"127.0.0.1:{fs.port}:{ESL_PASSWORD}",
            "--xml-curl-auth",
            ":".join(AUTH),
            "--interval",
            "3600",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        stderr_read = asyncio.create_task(proc.stderr.read())
        xml = XmlCurl(port)
        password = ""
        try:

            async def served() -> bool:
                if proc.returncode is not None:
                    pytest.fail(f"pbx run exited with {proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    return await xml.user_found(ACME, "1001")
                return False

            # initdb of the embedded cluster takes a few seconds on a small machine
            await eventually(served, "pbx run serving from its embedded database", timeout=90)
            code, out, err = await _pbx(
                env, "credentials", "show", "acme", "1001", "--output", "json"
            )
            assert code == 0, err
            creds = json.loads(out)
            password = creds["password"]
            (user,) = directory_users(await xml.register(ACME, "1001"))
            assert user.params["a1-hash"] == a1_hash("1001", ACME, password)
            want = declared_live(tenants)
            await eventually(
                lambda: not switch_drift(fs, want),
                "pbx run pushed the tenants to the switch",
                detail=lambda: switch_drift(fs, want),
            )
            assert (state_dir / "postgres" / "PG_VERSION").is_file()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{status_port}/status") as response,
            ):
                status = await response.json()
            assert status["database_up"] is True and status["role"] == "leader"
            assert status["xml_curl_workers"]["configured"] >= 1, "workers by default"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                exit_code = await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                raise
        stderr = (await stderr_read).decode()
    assert exit_code == 0, stderr[-2000:]
    assert "embedded PostgreSQL" in stderr
    assert password and password not in stderr
    assert not (state_dir / "postgres" / "postmaster.pid").exists(), "embedded server left running"

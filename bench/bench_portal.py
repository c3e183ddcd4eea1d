"""Portal read latency at scale: every read page and API call, per role, at 1,000 tenants x
100 extensions (10 people, 10 agents, 5 queues each), with live registrations, agents and
callers in the presence cache and sessions in PostgreSQL.

Target: p99 <= 20 ms for any read.

    python bench/bench_portal.py --tenants 1000 --extensions 100 \
        --dsn postgresql://postgres@127.0.0.1:5432/postgres [--requests 200]

The portal runs in a child process (its own core, uvloop when installed); this process is
the client, one request at a time over a keep-alive connection, so each figure is the
portal's latency, not queueing. Sessions use the real database (cached for
``session_cache_seconds``, 5 s by default: the bench runs long enough to cross that many
times); history comes from memory (the daemon's ``read_history`` runs in its thread pool).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import pyotp

from reconciler.core.model import (
    Agent,
    Extension,
    Queue,
    Tenant,
    TenantState,
    Tier,
    User,
    fs_name,
    user_contact,
)
from reconciler.core.presence import AgentPresence, DomainPresence, QueueMember, Registration
from reconciler.store import connect
from reconciler.web import PortalConfig, PortalServer
from reconciler.web.invitations import activate, invite, pending_invitation
from tests.fakes.portal import PASSWORD, SUPER, FakePortalDeps, FakePresence, history_entry
from tests.web.live_server import scratch_database

ROLES = {"admin": 0, "agent": 1, "member": 6}  # index of a person of that role in a tenant


def tenant_id(n: int) -> str:
    return f"t{n:04d}"


def person(n: int, index: int) -> str:
    return f"user{index}@{tenant_id(n)}.example.net"


def make_tenant(n: int, extensions: int) -> TenantState:
    domain = f"{tenant_id(n)}.example.net"
    numbers = [str(1000 + i) for i in range(extensions)]
    roles = ["admin"] + ["agent"] * 4 + ["member"] * 5
    users = {
        person(n, i): User(person(n, i), f"Person {i}", role, tuple(numbers[i * 2 : i * 2 + 2]))
        for i, role in enumerate(roles)
    }
    agents = {
        f"agent{i}": Agent(f"agent{i}", "Callback", user_contact(numbers[i], domain), numbers[i])
        for i in range(10)
    }
    queues = {f"q{i}": Queue(f"q{i}", str(7000 + i)) for i in range(5)}
    tiers = {f"q{i % 5}/agent{i}": Tier(f"q{i % 5}", f"agent{i}") for i in range(10)}
    return TenantState(
        tenant=Tenant(tenant_id(n), domain, f"Tenant {n}", "active"),
        extensions={x: Extension(x, f"Desk {x}") for x in numbers},
        users=users,
        agents=agents,
        queues=queues,
        tiers=tiers,
    )


def make_presence(state: dict[str, TenantState]) -> FakePresence:
    presence = FakePresence(nodes=("fs1:8021", "fs2:8021"))
    expires = datetime.now(UTC) + timedelta(hours=1)
    for ts in state.values():
        domain = ts.tenant.domain
        regs = tuple(
            Registration(
                "fs1:8021",
                x,
                domain,
                f"<sip:{x}@192.0.2.1:5060>",
                "Yealink T46U",
                "192.0.2.1",
                5060,
                expires,
                "Registered(UDP)",
            )
            for i, x in enumerate(ts.extensions)
            if i % 5 < 3
        )
        agents = {
            fs_name(a, domain): [
                AgentPresence(node, fs_name(a, domain), "Available", "Waiting")
                for node in presence.nodes
            ]
            for a in ts.agents
        }
        members = {
            fs_name(q, domain): [
                QueueMember(
                    "fs1:8021",
                    fs_name(q, domain),
                    f"u{q}{k}",
                    f"+1415555{k:04d}",
                    "",
                    "Waiting",
                    expires,
                )
                for k in range(3)
            ]
            for q in ts.queues
        }
        presence._domains[domain] = DomainPresence(regs, agents, members, 2, 2)
    return presence


def pin(cpu: int) -> None:
    """Client and portal on cores of their own (as bench_xmlcurl puts wrk and the daemon):
    otherwise the tail measures the two processes taking turns on one core."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})


def serve(dsn: str, tenants: int, extensions: int, pipe: Any) -> None:
    """The child: the portal over the whole platform until terminated."""
    pin(1)
    state = {tenant_id(n): make_tenant(n, extensions) for n in range(tenants)}
    deps = FakePortalDeps(dsn=dsn, state=state, presence_view=make_presence(state))
    deps.history_rows = [history_entry(tenant_id(n % tenants), n) for n in range(200)]
    config = PortalConfig(public_url="http://127.0.0.1", listen_port=0)
    # what the daemon does with what it serves (serve.snapshot ``freeze``): ~500k long-lived
    # objects kept out of the cyclic GC, whose full passes would otherwise stall requests
    gc.collect()
    gc.freeze()

    async def main() -> None:
        server = PortalServer(deps, config)
        await server.start()
        pipe.send(server.port)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def make_accounts(dsn: str, tenant: TenantState) -> dict[str, str | None]:
    """Activated accounts for a super admin and one person per tenant role."""
    n = int(tenant.tenant.id[1:])
    emails = {"super": SUPER, **{role: person(n, i) for role, i in ROLES.items()}}
    secrets: dict[str, str | None] = {}
    with connect(dsn) as conn:
        for role, email in emails.items():
            link = invite(
                conn,
                email,
                base_url="http://x",
                state={tenant.tenant.id: tenant},
                admins={SUPER: "Ops"},
            )
            token = link.url.rsplit("/", 1)[1]
            secret = pending_invitation(conn, token).totp_secret
            activate(
                conn,
                token,
                password=PASSWORD,
                confirmation=PASSWORD,
                code=pyotp.TOTP(secret).now() if secret else "",
            )
            conn.execute("UPDATE pbx.portal_accounts SET totp_last_step = NULL")
            secrets[role] = secret
    return {**{f"{r}:email": e for r, e in emails.items()}, **secrets}  # type: ignore[dict-item]


async def logged_in(base: str, email: str, secret: str | None) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    page = await (await session.get(base + "/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    form = {
        "csrf": csrf.group(1),
        "email": email,
        "password": PASSWORD,
        "code": pyotp.TOTP(secret).now() if secret else "",
    }
    response = await session.post(base + "/login", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    return session


def reads(t: str) -> dict[str, list[str]]:
    return {
        "super": [
            "/platform",
            "/platform?page=7",
            "/platform/search?q=t0777",
            "/t/" + t,
            "/api/v1/tenants?limit=100",
            "/api/v1/tenants?offset=900&limit=100",
            "/api/v1/tenants/" + t,
            "/api/v1/nodes",
            "/api/v1/history?limit=50",
            "/api/v1/search?q=user3@t05",
            "/platform/sessions",
            "/platform/activity",
            "/platform/activity?action=login&since=2026-01-01",
            "/api/v1/audit?limit=50&offset=50",
        ],
        "admin": [
            "/t/" + t,
            f"/t/{t}/activity",
            f"/t/{t}/extensions/1050",
            "/api/v1/tenants/" + t,
            f"/api/v1/tenants/{t}/extensions",
            f"/api/v1/tenants/{t}/queues",
            f"/api/v1/tenants/{t}/agents",
            f"/api/v1/tenants/{t}/audit?limit=50",
            f"/t/{t}/activity/audit.csv",
            f"/t/{t}/queues/q0/wallboard",
            f"/api/v1/tenants/{t}/queues/q0/wallboard",
            "/api/v1/me",
        ],
        "agent": [
            "/t/" + t,
            f"/api/v1/tenants/{t}/agents",
            f"/api/v1/tenants/{t}/extensions",
            f"/t/{t}/queues/q2/wallboard",
        ],
        "member": ["/t/" + t, "/api/v1/me", "/account"],
    }


async def measure(
    base: str, accounts: dict[str, Any], t: str, count: int
) -> list[tuple[str, str, list[float]]]:
    results = []
    for role, paths in reads(t).items():
        session = await logged_in(base, accounts[f"{role}:email"], accounts[role])
        try:
            for path in paths:
                for _ in range(10):  # warm up (search index, prepared statements)
                    await (await session.get(base + path)).read()
                samples = []
                for _ in range(count):
                    started = time.perf_counter()
                    response = await session.get(base + path)
                    await response.read()
                    samples.append((time.perf_counter() - started) * 1000)
                    assert response.status == 200, (role, path, response.status)
                results.append((role, path, samples))
        finally:
            await session.close()
    return results


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--extensions", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    target = tenant_id(args.tenants // 2)
    with scratch_database(args.dsn) as dsn:
        accounts = make_accounts(dsn, make_tenant(args.tenants // 2, args.extensions))
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        started = time.perf_counter()
        proc = context.Process(target=serve, args=(dsn, args.tenants, args.extensions, child))
        proc.start()
        try:
            port = parent.recv()
            pin(0)
            print(
                f"portal up with {args.tenants} tenants x {args.extensions} extensions "
                f"in {time.perf_counter() - started:.1f} s"
            )
            results = asyncio.run(
                measure(f"http://127.0.0.1:{port}", accounts, target, args.requests)
            )
        finally:
            proc.terminate()
            proc.join(10)
    print(f"{'role':7} {'read':45} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for role, path, samples in results:
        print(
            f"{role:7} {path:45} {statistics.median(samples):7.2f} {p(samples, 0.99):7.2f} "
            f"{max(samples):7.2f}"
        )
    everything = [s for _, _, samples in results for s in samples]
    worst = max(results, key=lambda r: p(r[2], 0.99))
    print(
        f"all reads: p50 {statistics.median(everything):.2f} ms, p99 {p(everything, 0.99):.2f} ms; "
        f"worst p99 {p(worst[2], 0.99):.2f} ms ({worst[0]} {worst[1]}); target p99 <= 20 ms"
    )


if __name__ == "__main__":
    main()

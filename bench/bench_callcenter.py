"""Live push benchmark: 1,000 agents and 1,000 tiers pushed over ESL to the fake FreeSWITCH
(which fetches every queue from a real xml_curl endpoint serving callcenter.conf), then a
no-op drift check, then the resync after a restart that wiped mod_callcenter's database.

Targets: push <= 10 s, no-op drift check <= 1 s.

    python bench/bench_callcenter.py --tenants 10 --agents 100 --queues 5 [--delay-ms 0]

``--delay-ms`` adds a per-command processing delay at the fake (a slower switch: the switch
runs api commands one after another, so this adds delay x commands whatever we do).
``--rtt-ms`` puts a relay adding that round trip between us and the switch (a WAN hop):
pipelining keeps the push near (phases x commands per change) round trips, not one per
command; ``--concurrency 1`` shows the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.core.model import Agent, Queue, State, Tenant, TenantState, Tier, user_contact
from reconciler.serve import XML_PATH, make_app
from reconciler.serve.snapshot import build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.switch import CallcenterEngine, NodeSession, NodeSpec, desired_live, managed_domains
from tests.fakes.freeswitch import FakeFreeSwitch


def make_state(tenants: int, agents: int, queues: int) -> State:
    """``tenants`` x ``agents`` agents, each in one of the tenant's ``queues`` queues."""
    state: dict[str, TenantState] = {}
    for t in range(tenants):
        tenant_id = f"t{t:04d}"
        domain = f"{tenant_id}.bench.example"
        tenant_agents = {}
        tiers = {}
        for a in range(agents):
            number = str(1000 + a)
            agent = Agent(
                name=f"a{number}",
                type="Callback",
                contact=user_contact(number, domain),
                extension=number,
                initial_status="Available" if a % 2 else None,
            )
            tenant_agents[agent.key] = agent
            tier = Tier(queue=f"q{a % queues}", agent=agent.name, level=1 + a % 3, position=a)
            tiers[tier.key] = tier
        tenant_queues = {
            f"q{q}": Queue(name=f"q{q}", number=str(7000 + q), moh_sound="local_stream://moh")
            for q in range(queues)
        }
        state[tenant_id] = TenantState(
            tenant=Tenant(id=tenant_id, domain=domain, name=f"Tenant {t}", status="active"),
            agents=tenant_agents,
            queues=tenant_queues,
            tiers=tiers,
        )
    return state


class LatencyProxy:
    """TCP relay adding ``rtt/2`` each way, order kept: a WAN hop between us and the switch."""

    def __init__(self, target: tuple[str, int], rtt: float) -> None:
        self.target = target
        self.one_way = rtt / 2
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst), name="bench-latency-pipe")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    dst.close()
                    return
                dst.write(data)

        sender = asyncio.create_task(deliver(), name="bench-latency-deliver")
        try:
            while True:
                data = await src.read(65536)
                chunks.put_nowait((loop.time() + self.one_way, data))
                if not data:
                    await sender
                    return
        finally:
            sender.cancel()


async def run(
    tenants: int, agents: int, queues: int, delay_ms: float, rtt_ms: float, concurrency: int
) -> int:
    state = make_state(tenants, agents, queues)
    snapshot = build_snapshot(state, {})
    desired, domains = desired_live(state), managed_domains(state)
    app = make_app(lambda: snapshot, load_templates(), auth=None)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    failures = 0
    try:
        async with FakeFreeSwitch(xml_curl_url=f"http://{host}:{port}{XML_PATH}") as fs:
            fs.reply_delay = delay_ms / 1000
            proxy = LatencyProxy((fs.host, fs.port), rtt_ms / 1000)
            await proxy.start()
            node = CallcenterEngine(
                NodeSession(NodeSpec("127.0.0.1", proxy.port if rtt_ms else fs.port, fs.password)),
                concurrency=concurrency,
            )
            await node.start()
            await node.client.wait_connected(timeout=5)
            try:
                print(
                    f"declared: {len(desired.agents)} agents, {len(desired.tiers)} tiers, "
                    f"{len(desired.queues)} queues ({tenants} tenants); "
                    f"reply delay {delay_ms} ms, rtt {rtt_ms} ms, concurrency {concurrency}"
                )
                started = time.perf_counter()
                push = await node.reconcile(desired, domains)
                push_s = time.perf_counter() - started
                print(
                    f"push:        {push_s:7.3f} s  {push.commands_sent} commands, "
                    f"{push.applied} changes, {len(fs.xml_curl_log)} xml_curl fetches, "
                    f"errors={len(push.errors)}  (target <= 10 s)"
                )
                mutations = fs.mutation_count
                started = time.perf_counter()
                noop = await node.reconcile(desired, domains)
                noop_s = time.perf_counter() - started
                print(
                    f"no-op check: {noop_s:7.3f} s  {noop.changes} changes, "
                    f"{fs.mutation_count - mutations} mutating commands  (target <= 1 s)"
                )
                passes = node.pass_count
                started = time.perf_counter()
                await fs.restart(wipe=True)
                resync = await node.wait_pass(passes, timeout=60)
                resync_s = time.perf_counter() - started
                print(
                    f"wipe+resync: {resync_s:7.3f} s  ({resync.trigger}, "
                    f"{resync.applied} changes re-applied, errors={len(resync.errors)})"
                )
                passes = node.pass_count
                await fs.restart(wipe=True, down_for=10.0)  # returns once it accepts again
                started = time.perf_counter()
                back = await node.wait_pass(passes, timeout=60)
                back_s = time.perf_counter() - started
                print(
                    f"down 10 s, accepting -> resynced: {back_s:7.3f} s  ({back.trigger}, "
                    f"{back.applied} changes re-applied)  (target <= 2 s)"
                )
                failures += 0 if back.ok and back_s <= 2 else 1
                ok = (
                    push.ok
                    and noop.ok
                    and resync.ok
                    and noop.changes == 0
                    and fs.mutation_count >= mutations
                )
                failures += 0 if ok else 1
                failures += 0 if push_s <= 10 else 1
                failures += 0 if noop_s <= 1 else 1
            finally:
                await node.stop()
                await proxy.stop()
    finally:
        await runner.cleanup()
    print("PASS" if not failures else "FAIL")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--agents", type=int, default=100, help="agents per tenant")
    parser.add_argument("--queues", type=int, default=5, help="queues per tenant")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fake reply delay")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="network round trip")
    parser.add_argument("--concurrency", type=int, default=256, help="changes in flight")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  (log) %(name)s: %(message)s")
    return asyncio.run(
        run(args.tenants, args.agents, args.queues, args.delay_ms, args.rtt_ms, args.concurrency)
    )


if __name__ == "__main__":
    sys.exit(main())

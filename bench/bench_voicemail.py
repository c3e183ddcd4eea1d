"""Voicemail: a tenant admin listing 10,000 messages (100 boxes of 100), the portal's
listing work (``reconciler.web.voicemail.messages``: the switches' answers, merged, one
page) against the fake switch over real ESL, a new message left every ``--arrive-every``
listings (its events must reach the listing). Target: p99 <= 50 ms.

The fake switch runs in a child process (its own core and GIL, as a real switch would: the
figure is the portal's latency, the switch's own work included, not the fake competing with
the portal for one interpreter); its boxes are indexed so it answers a ``vm_list`` in
proportion to the box, as mod_voicemail's SQL does. It runs whatever ``reconciler`` is first
on the path, so the previous release is measured from an export of it:

    git archive <commit> reconciler specs_schema | tar -x -C /tmp/prev
    PYTHONPATH=/tmp/prev:. .venv/bin/python bench/bench_voicemail.py   # previous
    PYTHONPATH=. .venv/bin/python bench/bench_voicemail.py             # this tree

(the previous release lists every message at once: it has no page).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import Any

DOMAIN = "acme.example.com"
ADMIN = "alice@acme.example.com"


def _boxes(count: int) -> list[str]:
    return [str(1001 + n) for n in range(count)]


def _switch(conn: Connection, boxes: int, per_box: int) -> None:
    """The child: a fake switch holding ``boxes`` x ``per_box`` messages; leaves one more
    in box 1001 whenever the parent says ``leave``."""
    from tests.fakes.freeswitch import FakeFreeSwitch
    from tests.fakes.freeswitch.voicemail import FakeMessage, FakeVoicemail

    by_box: dict[tuple[str, str], dict[str, FakeMessage]] = {}
    leave = FakeVoicemail.leave

    def indexed_box(self: FakeVoicemail, box: str, domain: str) -> list[FakeMessage]:
        return list(by_box.get((box, domain), {}).values())

    def indexed_leave(self: FakeVoicemail, box: str, domain: str, path: str, **kw: Any) -> Any:
        message = leave(self, box, domain, path, **kw)
        by_box.setdefault((box, domain), {})[message.uuid] = message
        return message

    FakeVoicemail.box = indexed_box  # type: ignore[method-assign]
    FakeVoicemail.leave = indexed_leave  # type: ignore[method-assign]

    async def serve() -> None:
        async with FakeFreeSwitch() as fs:
            then = int(time.time()) - 86400
            for n, box in enumerate(_boxes(boxes)):
                for m in range(per_box):
                    fs.voicemail.leave(
                        box,
                        DOMAIN,
                        f"/var/lib/pbx/voicemail/acme/{box}/msg_{m}.wav",
                        caller_name=f"Caller {n}:{m}",
                        caller_number=str(5550000 + m),
                        created=then + n * per_box + m,
                    )
            conn.send((fs.host, fs.port, fs.password))
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command != "leave":
                    return
                fs.voicemail.leave("1001", DOMAIN, "/var/lib/pbx/voicemail/acme/1001/new.wav")
                conn.send("left")

    asyncio.run(serve())


def _scope(boxes: int) -> Any:
    from reconciler.web.access import principal_for, tenant_scope
    from tests.fakes.portal import demo_state

    state = demo_state()
    acme = state["acme"]
    template = next(iter(acme.extensions.values()))
    extensions = {
        number: replace(template, number=number, name=f"Box {number}", voicemail_enabled=True)
        for number in _boxes(boxes)
    }
    state["acme"] = replace(acme, extensions=extensions)
    who = principal_for(ADMIN, state, {})
    assert who is not None
    return tenant_scope(who, state, "acme")


async def _bench(args: argparse.Namespace, address: tuple[str, int, str], conn: Connection) -> None:
    from reconciler.switch import NodeSession, NodeSpec
    from reconciler.switch.voicemail.engine import VoicemailSwitches
    from reconciler.web.context import PORTAL_KEY
    from reconciler.web.ports import VOICEMAIL
    from reconciler.web.voicemail import messages

    host, port, password = address
    session = NodeSession(NodeSpec(host, port, password))
    switches = VoicemailSwitches([session])
    await session.start()
    try:
        async with asyncio.timeout(30):
            while not all(node.connected for node in switches.nodes):
                await asyncio.sleep(0.01)
        sc = _scope(args.boxes)
        portal = SimpleNamespace(port=lambda key: switches if key is VOICEMAIL else None)
        pages = [0, 50, 500, 5000]

        def request(offset: int) -> Any:
            query = {"limit": str(args.limit), "offset": str(offset)}
            return SimpleNamespace(app={PORTAL_KEY: portal}, query=query)

        started = time.perf_counter()
        first = await messages(sc, request(0))  # type: ignore[arg-type]
        cold = (time.perf_counter() - started) * 1000
        total = first["total"]
        times: list[float] = []
        cpu: list[float] = []
        for n in range(args.rounds):
            if args.arrive_every and n % args.arrive_every == args.arrive_every - 1:
                before = switches.version
                conn.send("leave")
                await asyncio.get_running_loop().run_in_executor(None, conn.recv)
                await switches.changed(before, timeout=5)  # the portal's live page wakes here
            started, cpu_started = time.perf_counter(), time.thread_time()
            found = await messages(sc, request(pages[n % len(pages)]))  # type: ignore[arg-type]
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - cpu_started) * 1000)
            assert found["problem"] is None and found["total"] >= total, found["problem"]
        times.sort()
        cpu.sort()

        def p99(values: list[float]) -> float:
            return values[min(len(values) - 1, int(0.99 * len(values)))]

        shown = len(first["messages"])
        print(
            f"voicemail listing, {total} messages in {args.boxes} boxes, a tenant admin "
            f"({shown} per page shown, {args.rounds} listings, a new message every "
            f"{args.arrive_every}): p50 {statistics.median(times):.1f} ms, p99 {p99(times):.1f} "
            f"ms, max {times[-1]:.1f} ms; the first listing {cold:.0f} ms; own CPU p50 "
            f"{statistics.median(cpu):.2f} ms, p99 {p99(cpu):.2f} ms; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
    finally:
        await session.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boxes", type=int, default=100)
    parser.add_argument("--per-box", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--arrive-every", type=int, default=20)
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args(argv)
    parent, child = multiprocessing.Pipe()
    switch = multiprocessing.Process(target=_switch, args=(child, args.boxes, args.per_box))
    switch.start()
    try:
        address = parent.recv()
        asyncio.run(_bench(args, address, parent))
    finally:
        parent.send("stop")
        switch.join(timeout=10)
        if switch.is_alive():
            switch.terminate()


if __name__ == "__main__":
    main()

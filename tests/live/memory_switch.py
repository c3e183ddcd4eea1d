"""An in-memory mod_callcenter with the rules the planner depends on, and ``sync``: one
read, plan and apply against it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from reconciler.switch import (
    DesiredLive,
    DesiredQueue,
    LivePlan,
    apply_live,
    next_digests,
    next_owed_statuses,
    plan_live,
    read_live,
)
from tests.live.states import (
    AGENT_HEADER,
    QUEUE_HEADER,
    TIER_HEADER,
)

# --- an in-memory mod_callcenter -------------------------------------------------------


def tokenize(line: str) -> list[str]:
    """switch_separate_string as mod_callcenter uses it: blanks split, '...' groups, \\ escapes."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            current.append(line[i + 1])
            started = True
            i += 2
            continue
        if c == "'":
            quoted = not quoted
            started = True
        elif c == " " and not quoted:
            if started:
                tokens.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if started:
        tokens.append("".join(current))
    return tokens


class MemorySwitch:
    """mod_callcenter reduced to what the planner relies on; replies as captured."""

    def __init__(self, served: dict[str, DesiredQueue]) -> None:
        self.served = served
        self.agents: dict[str, dict[str, object]] = {}
        self.tiers: dict[tuple[str, str], dict[str, object]] = {}
        self.queues: dict[str, dict[str, str]] = {}
        self.loaded_from: dict[str, str] = {}  # queue -> digest of the config it was loaded with
        self.log: list[str] = []
        self.fail: dict[str, str] = {}

    def lazy_queue(self, name: str) -> bool:
        if name not in self.queues and name in self.served:
            self.queues[name] = self.served[name].listed()
            self.loaded_from[name] = self.served[name].digest
        return name in self.queues

    async def api(self, command: str) -> str:
        self.log.append(command)
        await asyncio.sleep(0)
        if command in self.fail:
            return self.fail[command]
        t = tokenize(command)
        assert t[0] == "callcenter_config"
        target, action, args = t[1], t[2], t[3:]
        if (target, action) == ("agent", "list"):
            return self.agent_list()
        if (target, action) == ("tier", "list"):
            return self.tier_list()
        if (target, action) == ("queue", "list"):
            rows = [
                "|".join(
                    [name, *(p[c] for c in QUEUE_HEADER.split("|")[1:14]), "0", "0"]
                    + [p[c] for c in QUEUE_HEADER.split("|")[16:]]
                )
                for name, p in self.queues.items()
            ]
            return "\n".join([QUEUE_HEADER, *rows, "+OK", ""])
        if (target, action) == ("agent", "add"):
            name, typ = args
            if typ.lower() not in ("callback", "uuid-standby"):
                return "-ERR Agent type invalid!\n"
            if name in self.agents:
                return "-ERR Agent already exist!\n"
            self.agents[name] = {
                "type": typ,
                "contact": "",
                "status": "Logged Out",
                "state": "Waiting",
                **dict.fromkeys(
                    [
                        "max_no_answer",
                        "wrap_up_time",
                        "reject_delay_time",
                        "busy_delay_time",
                        "no_answer_delay_time",
                    ],
                    0,
                ),
            }
            return "+OK\n"
        if (target, action) == ("agent", "del"):
            self.agents.pop(args[0], None)
            self.tiers = {k: v for k, v in self.tiers.items() if k[1] != args[0]}
            return "+OK\n"
        if (target, action) == ("agent", "set"):
            key, name, value = args
            if name not in self.agents:
                return "-ERR Agent not found!\n"
            numeric = key.endswith(("_time", "max_no_answer"))
            self.agents[name][key] = int(value) if numeric else value
            return "+OK\n"
        if (target, action) == ("tier", "add"):
            queue, name, level, position = args
            if not self.lazy_queue(queue):
                return "-ERR Queue not found!\n"
            if name not in self.agents:
                return "-ERR Agent not found!\n"
            if (queue, name) in self.tiers:
                return "-ERR Tier already exist!\n"
            self.tiers[(queue, name)] = {
                "level": int(level),
                "position": int(position),
                "state": "Ready",
            }
            return "+OK\n"
        if (target, action) == ("tier", "set"):
            key, queue, name, value = args
            if (queue, name) not in self.tiers:
                return "-ERR Unknown Error!\n"
            if not self.lazy_queue(queue):
                return "-ERR Agent not found!\n"
            self.tiers[(queue, name)][key] = int(value)
            return "+OK\n"
        if (target, action) == ("tier", "del"):
            self.tiers.pop((args[0], args[1]), None)
            return "+OK\n"
        if (target, action) == ("queue", "load"):
            return "+OK\n" if self.lazy_queue(args[0]) else "-ERR Invalid Queue not found!\n"
        if (target, action) == ("queue", "unload"):
            self.queues.pop(args[0], None)
            return "+OK\n"
        if (target, action) == ("queue", "reload"):
            self.queues.pop(args[0], None)
            return "+OK\n" if self.lazy_queue(args[0]) else "-ERR Invalid Queue not found!\n"
        return "-ERR no reply\n"

    def agent_list(self) -> str:
        if not self.agents:
            return "+OK\n"
        rows = []
        for name, a in self.agents.items():
            cells = dict.fromkeys(AGENT_HEADER.split("|"), "0")
            cells.update({k: str(v) for k, v in a.items()}, name=name, instance_id="single_box")
            cells["uuid"] = ""
            rows.append("|".join(cells.values()))
        return "\n".join([AGENT_HEADER, *rows, "+OK", ""])

    def tier_list(self) -> str:
        if not self.tiers:
            return "+OK\n"
        rows = [
            f"{q}|{a}|{t['state']}|{t['level']}|{t['position']}" for (q, a), t in self.tiers.items()
        ]
        return "\n".join([TIER_HEADER, *rows, "+OK", ""])

    def mutations(self) -> list[str]:
        return [c for c in self.log if not c.endswith(" list")]


async def sync(
    switch: MemorySwitch,
    desired: DesiredLive,
    domains: Iterable[str],
    digests: dict[str, str] | None = None,
) -> tuple[LivePlan, dict[str, str]]:
    plan = plan_live(desired, await read_live(switch.api), domains, loaded_digests=digests)
    report = await apply_live(switch.api, plan)
    assert report.ok, report.errors()
    assert next_owed_statuses(plan, report) == frozenset(), "a clean apply owes nothing"
    return plan, next_digests(digests or {}, plan, report)

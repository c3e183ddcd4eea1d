"""Sending a plan: reply handling, failures and skips, pipelining, and what a node still
owes after a cut."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from reconciler.switch import (
    LivePlan,
    LiveState,
    NodeUnreachable,
    apply_live,
    desired_live,
    next_digests,
    next_owed_statuses,
    plan_live,
    read_live,
)
from tests.live.memory_switch import MemorySwitch, sync
from tests.live.states import (
    ACME,
    ALICE,
    ALICE_ADDED_ONLY,
    ALICE_STATUS,
    BOB,
    CC,
    DESIRED,
    FIRST_SYNC,
    SUPPORT,
    SUPPORT_DIGEST,
    agent,
    as_live,
    tenant_state,
    without_agent,
)


@dataclass(frozen=True)
class ApplyOwedCase:
    """One pass's apply, then what the node still owes. ``start``: empty (the plan creates
    alice), ``logged_out`` (synced, alice back to Logged Out, a debt passed in), ``taken``
    (someone adds alice between our listing and our add). ``cut``: the command at which the
    connection dies (``ran``: the switch executed it, the reply was lost)."""

    start: str
    expected: frozenset[str]
    cut: str | None = None
    ran: bool = False
    fail: dict[str, str] = field(default_factory=dict)


ALICE_ADD = f"{CC} agent add {ALICE} Callback"
ALICE_CONTACT = f"{CC} agent set contact {ALICE} user/1001@{ACME}"
OWED = frozenset({ALICE})
NOTHING: frozenset[str] = frozenset()

APPLY_OWED_CASES = {
    "create confirmed to the status set: nothing owed": ApplyOwedCase("empty", NOTHING),
    "create cut after the add: owed": ApplyOwedCase("empty", OWED, cut=ALICE_CONTACT),
    "create cut at the add, which ran: owed (the next pass checks it exists)": ApplyOwedCase(
        "empty", OWED, cut=ALICE_ADD, ran=True
    ),
    "create cut at the add, which never ran: owed, dropped next pass (no agent)": ApplyOwedCase(
        "empty", OWED, cut=ALICE_ADD
    ),
    "create cut at the status set: owed (the next pass sees if it ran)": ApplyOwedCase(
        "empty", OWED, cut=ALICE_STATUS, ran=True
    ),
    "create whose add was refused: nothing owed": ApplyOwedCase(
        "empty", NOTHING, fail={ALICE_ADD: "-ERR Agent type invalid!\n"}
    ),
    "create whose set failed after the add: owed": ApplyOwedCase(
        "empty", OWED, fail={ALICE_CONTACT: "-ERR Agent not found!\n"}
    ),
    "create that found the agent there: not ours, nothing owed": ApplyOwedCase("taken", NOTHING),
    "debt paid: the status set answered +OK, dropped": ApplyOwedCase("logged_out", NOTHING),
    "debt refused: still owed": ApplyOwedCase(
        "logged_out", OWED, fail={ALICE_STATUS: "-ERR Agent not found!\n"}
    ),
    "debt cut at the status set: still owed": ApplyOwedCase("logged_out", OWED, cut=ALICE_STATUS),
}


@pytest.mark.parametrize("case", APPLY_OWED_CASES.values(), ids=APPLY_OWED_CASES.keys())
async def test_next_owed_statuses_after_apply(case: ApplyOwedCase) -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    live, owed = LiveState(), NOTHING
    if case.start == "logged_out":
        await sync(switch, DESIRED, {ACME})
        switch.agents[ALICE]["status"] = "Logged Out"
        live, owed = await read_live(switch.api), OWED
    elif case.start == "taken":
        await switch.api(f"{CC} agent add {ALICE} Callback")
    plan = plan_live(DESIRED, live, {ACME}, owed_statuses=owed)
    assert ALICE in plan.owed_statuses
    switch.fail.update(case.fail)
    switch.log.clear()
    down = False

    async def api(command: str) -> str:
        nonlocal down
        if down or command == case.cut:
            if not down and case.ran:
                await switch.api(command)
            down = True
            raise NodeUnreachable("cut")
        return await switch.api(command)

    report = await apply_live(api, plan)
    assert next_owed_statuses(plan, report) == case.expected
    assert report.ok == (case.cut is None and not case.fail)


def test_a_plan_not_applied_keeps_the_debts_it_carries_and_creates_none() -> None:
    update = plan_live(DESIRED, ALICE_ADDED_ONLY, {ACME}, owed_statuses={ALICE})
    create = plan_live(DESIRED, LiveState(), {ACME})
    assert next_owed_statuses(update, None) == OWED
    assert next_owed_statuses(create, None) == NOTHING
    assert next_owed_statuses(LivePlan(), None) == NOTHING


async def test_a_status_lost_to_a_cut_is_paid_once_on_the_next_pass() -> None:
    """Pass 1 dies right after alice's add; pass 2 (the resync) sets her fields and her
    initial status; pass 3 has nothing to do and owes nothing."""
    switch = MemorySwitch(dict(DESIRED.queues))
    plan = plan_live(DESIRED, LiveState(), {ACME})

    async def cut_after_add(command: str) -> str:
        if command.startswith(f"{CC} agent set") and ALICE in command:
            raise NodeUnreachable("cut")
        return await switch.api(command)

    report = await apply_live(cut_after_add, plan, concurrency=1)
    owed = next_owed_statuses(plan, report)
    assert owed == OWED and switch.agents[ALICE]["status"] == "Logged Out"

    resync = plan_live(DESIRED, await read_live(switch.api), {ACME}, owed_statuses=owed)
    assert ALICE_STATUS in resync.commands()
    report = await apply_live(switch.api, resync)
    assert report.ok, report.errors()
    owed = next_owed_statuses(resync, report)
    assert owed == NOTHING and switch.agents[ALICE]["status"] == "Available"

    switch.agents[ALICE]["status"] = "Logged Out"  # a person logs her out: hers to decide
    again = plan_live(DESIRED, await read_live(switch.api), {ACME}, owed_statuses=owed)
    assert again.empty and next_owed_statuses(again, None) == NOTHING


async def test_read_live_and_apply_first_sync_then_nothing() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    _, digests = await sync(switch, DESIRED, {ACME})
    sent = switch.mutations()
    assert sorted(sent) == sorted(FIRST_SYNC)
    for name in (ALICE, BOB):  # pipelined across agents, in order within one
        assert [c for c in sent if f" {name} " in c] == [c for c in FIRST_SYNC if f" {name} " in c]
    assert sent.index(f"{CC} tier add {SUPPORT} {BOB} 2 1") > sent.index(
        f"{CC} queue load {SUPPORT}"
    )
    assert digests == {SUPPORT: SUPPORT_DIGEST}
    assert switch.agents[ALICE]["status"] == "Available"
    assert switch.agents[BOB]["status"] == "Logged Out"
    switch.log.clear()
    again, _ = await sync(switch, DESIRED, {ACME}, digests)
    assert again.empty
    assert switch.mutations() == []


async def test_add_that_finds_the_agent_there_sets_fields_but_not_status() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    plan = plan_live(DESIRED, LiveState(), {ACME})
    # Someone adds alice between our listing and our add, and puts her on break.
    await switch.api(f"{CC} agent add {ALICE} callback")
    await switch.api(f"{CC} agent set status {ALICE} 'On Break'")
    report = await apply_live(switch.api, plan)
    assert report.ok
    (alice,) = [r for r in report.results if r.change.key == f"agent:{ALICE}"]
    assert alice.existed
    assert switch.agents[ALICE]["status"] == "On Break"
    assert switch.agents[ALICE]["contact"] == f"user/1001@{ACME}"
    assert switch.agents[ALICE]["type"] == "callback"  # fixed by the next pass
    assert plan_live(DESIRED, await read_live(switch.api), {ACME}).commands() == [
        f"{CC} agent set type {ALICE} Callback"
    ]


async def test_tier_add_that_finds_the_tier_sets_level_and_position() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    await sync(switch, DESIRED, {ACME})
    plan = plan_live(DESIRED, without_agent(as_live(DESIRED), BOB), {ACME})
    switch.tiers[(SUPPORT, BOB)]["level"] = 9
    report = await apply_live(switch.api, plan)
    assert report.ok
    assert switch.tiers[(SUPPORT, BOB)]["level"] == 2


async def test_failures_are_recorded_and_dependants_skipped_others_go_on() -> None:
    switch = MemorySwitch({})  # callcenter.conf does not serve the queue
    plan = plan_live(DESIRED, LiveState(), {ACME})
    report = await apply_live(switch.api, plan)
    assert not report.ok
    assert [r.change.key for r in report.failed] == [f"queue:{SUPPORT}"]
    assert "-ERR Invalid Queue not found!" in report.errors()[0]
    assert {r.change.key for r in report.skipped} == {
        f"tier:{SUPPORT} {ALICE}",
        f"tier:{SUPPORT} {BOB}",
    }
    assert set(switch.agents) == {ALICE, BOB}  # independent changes went through
    assert next_digests({}, plan, report) == {}


async def test_an_unexpected_reply_fails_the_change_and_stops_its_commands() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    switch.fail[f"{CC} agent set contact {ALICE} user/1001@{ACME}"] = "-ERR Agent not found!\n"
    report = await apply_live(switch.api, plan_live(DESIRED, LiveState(), {ACME}))
    (failed,) = report.failed
    assert failed.change.key == f"agent:{ALICE}"
    assert f"{CC} agent set max_no_answer {ALICE} 3" not in switch.log
    assert f"{CC} agent set status {ALICE} Available" not in switch.log
    # the tier needing alice is skipped; bob's goes on
    assert [r.change.key for r in report.skipped] == [f"tier:{SUPPORT} {ALICE}"]
    assert (SUPPORT, BOB) in switch.tiers


async def test_lost_connection_skips_the_rest() -> None:
    switch = MemorySwitch(dict(DESIRED.queues))
    calls = 0

    async def api(command: str) -> str:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise NodeUnreachable("gone")
        return await switch.api(command)

    report = await apply_live(api, plan_live(DESIRED, LiveState(), {ACME}), concurrency=1)
    assert not report.ok
    assert len(report.skipped) >= 2
    assert all("connection lost" in e for e in report.errors())
    assert calls <= 5


async def test_independent_changes_are_pipelined() -> None:
    """All changes of a phase are in flight together: 100 agents cost ~ 7 round trips."""
    desired = desired_live(
        {"acme": tenant_state("acme", ACME, agents=[agent(f"a{i}") for i in range(100)])}
    )
    in_flight = peak = 0

    async def api(command: str) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "+OK\n"

    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await apply_live(api, plan_live(desired, LiveState(), {ACME}))
    assert report.ok and report.commands_sent == 700
    assert peak == 100
    assert loop.time() - start < 1.0

"""The second wall: no command that could run code on a switch is ever built, whatever a
desired agent, queue or tier holds (the spec validation is the first wall)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.switch import (
    DesiredLive,
    LiveState,
    UnsafeArgument,
    apply_live,
    plan_live,
)
from reconciler.switch.callcenter import commands as cmd
from reconciler.switch.callcenter.desired import DesiredAgent, DesiredQueue, DesiredTier
from tests.fakes.freeswitch import FakeFreeSwitch

ACME = "acme.example.com"
EVIL = ["$", "{", "}", "${system(id)}", "{api_on_answer=x}", "\x00", "\x07", "\x1b", "\x7f"]
EVIL += ["\x85", "\n", "\r", "\t", "\u2028"]
HOSTILE = st.builds(
    lambda a, bad, b: a + bad + b,
    st.text(max_size=4),
    st.sampled_from(EVIL),
    st.text(max_size=4),
)
BAD_CONTACTS = [
    "user/1001@globex.example.com",  # another tenant's phone
    "user/1001@acme.example.com.evil.net",
    "user/abc@acme.example.com",
    "sofia/internal/sip:1001@198.51.100.7",
    "sofia/gateway/GW/+14155550100",
    "sofia/gateway/gw/14155550100",
    "loopback/9999",
    "error/user_busy",
    "user/1001@acme.example.com user/1002@acme.example.com",
    "",
    "{call_timeout=20}{x=1}sofia/gateway/gw/+14155550100",
    "{call_timeout=${x}}sofia/gateway/gw/+14155550100",
    "{call_timeout=20,api_on_answer=x}sofia/gateway/gw/+14155550100",
]
FIELDS = ["agent", "type", "contact", "status", "queue", "tier_queue", "tier_agent"]


def world(field: str, value: str) -> DesiredLive:
    agent = DesiredAgent(f"alice@{ACME}", "Callback", f"user/1001@{ACME}", 3, 10, 10, 60, 60)
    queue = DesiredQueue(f"support@{ACME}", {"strategy": "ring-all", "moh-sound": value})
    tier = DesiredTier(queue.name, agent.name, 1, 1)
    if field == "agent":
        agent = replace(agent, name=f"{value}@{ACME}")
        tier = replace(tier, agent=agent.name)
    elif field in ("type", "contact"):
        agent = replace(agent, **{field: value})
    elif field == "status":
        agent = replace(agent, initial_status=value)
    elif field == "queue":
        queue = replace(queue, name=f"{value}@{ACME}")
        tier = replace(tier, queue=queue.name)
    elif field == "tier_queue":
        tier = replace(tier, queue=f"{value}@{ACME}")
    else:
        tier = replace(tier, agent=f"{value}@{ACME}")
    return DesiredLive({agent.name: agent}, {queue.name: queue}, {tier.key: tier})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIELDS),
    st.one_of(HOSTILE, st.sampled_from(BAD_CONTACTS)),
)
def test_hostile_values_never_reach_the_switch(field: str, value: str) -> None:
    if field != "contact" and value in BAD_CONTACTS:
        return  # only hostile as a contact
    if field in ("type", "status") and value == "":
        return
    desired = world(field, value)
    switch = FakeFreeSwitch(static_queues={q: {} for q in desired.queues})
    sent: list[str] = []

    async def api(command: str) -> str:
        sent.append(command)
        return await switch.run_api(command)

    plan = plan_live(desired, LiveState(), {ACME})
    report = asyncio.run(apply_live(api, plan))
    for command in sent:
        assert not any(bad in command for bad in EVIL), command
        assert not (field == "contact" and value and value in command), command
    assert plan.refused, "the hostile value was not refused"
    refused = {c.key for c in plan.refused}
    not_sent = {r.change.key for r in (*report.failed, *report.skipped)}
    assert refused <= not_sent  # failed as refused, or skipped after a refused prerequisite
    assert any("refused, not sent" in (r.error or "") for r in report.failed)
    assert not any(value in a.contact for a in switch.agents.values() if value)


@pytest.mark.parametrize(
    "contact",
    [
        f"user/1001@{ACME}",
        "sofia/gateway/carrier-1.eu/+14155550199",
        "sofia/gateway/answering_service/+442071838799",
    ],
)
def test_the_two_contact_shapes_are_sent(contact: str) -> None:
    assert cmd.agent_set("contact", f"alice@{ACME}", contact).endswith(f" {contact}")


@pytest.mark.parametrize(
    "contact",
    [
        f"user/1001@{ACME.upper()}",  # we build it lowercase: anything else was not ours
        "{call_timeout=20}sofia/gateway/answering_service/+442071838799",
        "{call_timeout=20}user/1001@" + ACME,
    ],
)
def test_no_variable_block_or_foreign_spelling_of_a_contact_is_sent(contact: str) -> None:
    with pytest.raises(UnsafeArgument):
        cmd.agent_set("contact", f"alice@{ACME}", contact)


@pytest.mark.parametrize("status", cmd.AGENT_STATUSES)
def test_statuses_are_spelled_exactly_and_quoted_for_a_person(status: str) -> None:
    assert cmd.agent_status(f"alice@{ACME}", status).endswith(f" '{status}'")
    with pytest.raises(UnsafeArgument):
        cmd.agent_status(f"alice@{ACME}", status.lower() + " ")


def test_a_refused_change_is_reported_and_its_dependants_skipped() -> None:
    desired = world("contact", "${system(rm -rf /)}")
    plan = plan_live(desired, LiveState(), {ACME})
    (agent,) = plan.refused
    assert agent.commands == () and "not allowed" in agent.refused
    sent: list[str] = []

    async def api(command: str) -> str:
        sent.append(command)
        return "+OK\n"

    report = asyncio.run(apply_live(api, plan))
    assert [r.change.key for r in report.failed] == [agent.key]
    assert [r.change.key for r in report.skipped] == [f"tier:support@{ACME} alice@{ACME}"]
    assert sent == [f"callcenter_config queue load support@{ACME}"]

"""Fault drills: what production will do to the reconciler, rehearsed.

* the ESL connection drops in the middle of a large push;
* FreeSWITCH restarts and loses mod_callcenter's database; or restarts and keeps it;
* a commit carries a broken tenant file (fifty kinds of mistakes, each caught at its line,
  none of them changing a single row of that tenant);
* a tenant file is deleted from git: the tenant is orphaned, then archived by ``pbx prune``.

A PostgreSQL restart is drilled in tests/daemon/test_daemon.py (outage, then resume) and not here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import (
    ACME,
    BAD_SPECS,
    EXAMPLE_DOMAINS,
    GLOBEX,
    World,
    database,
    dump_schema,
    eventually,
    mutating_commands,
    pbx,
    replace_once,
    tenant_fingerprint,
)

CC = "callcenter_config"

# --- the ESL connection and FreeSWITCH restarts ------------------------------------------

BIG_DOMAIN = "bigco.example.net"


def big_tenant(agents: int, *, initial_status: str | None = None) -> str:
    """A tenant whose first push is long enough to be cut in the middle: ``agents`` agents
    (seven commands each, eight with an initial status), two queues, a tier per agent and
    queue."""
    status = f", initial_status: {initial_status}" if initial_status else ""
    lines = [
        "id: bigco",
        f"domain: {BIG_DOMAIN}",
        "name: BigCo",
        "settings: {extension_length: {min: 4, max: 4}}",
        "extensions:",
        *(f'  - {{number: "{5000 + i}", name: Agent {i}}}' for i in range(agents)),
        "agents:",
        *(
            f'  - {{name: a{i:03d}, extension: "{5000 + i}", wrap_up_time: {i}{status}}}'
            for i in range(agents)
        ),
        "queues:",
    ]
    for number, queue in (("4000", "inbound"), ("4001", "overflow")):
        lines += [f"  - name: {queue}", f'    number: "{number}"', "    tiers:"]
        lines += [
            f"      - {{agent: a{i:03d}, level: {1 + i % 3}, position: {i}}}" for i in range(agents)
        ]
    return "\n".join(lines) + "\n"


async def push_and_cut(world: World, spec: str) -> int:
    """Write ``spec`` as bigco.yaml on a slow switch, drop every ESL connection once the push
    is well under way, make the switch fast again; the mutation count at the cut."""
    fs = world.fs
    world.domains = EXAMPLE_DOMAINS | {BIG_DOMAIN}
    fs.reply_delay = 0.002  # a slow switch: the push takes seconds, so we can cut it
    started = fs.mutation_count
    world.write("bigco.yaml", spec)
    await eventually(lambda: fs.mutation_count >= started + 60, "the big push under way")
    fs.drop_connections()
    dropped_at = fs.mutation_count
    fs.reply_delay = 0.0
    assert world.drift(), "the push finished before the cut: nothing was drilled"
    return dropped_at


async def test_connection_dropped_mid_push_converges_after_reconnect(world: World) -> None:
    """The connection dies with hundreds of commands still in flight: nothing is lost for
    good, nothing is duplicated; the reconnect's resync finishes the job."""
    fs, daemon = world.fs, world.daemon
    dropped_at = await push_and_cut(world, big_tenant(120))
    await world.converged("the switch after reconnect", timeout=40)
    assert fs.mutation_count > dropped_at, "the rest was pushed after the reconnect"
    assert len([a for a in fs.agents if a.endswith(BIG_DOMAIN)]) == 120
    assert fs.agents[f"a042@{BIG_DOMAIN}"].wrap_up_time == 42

    def node_clean() -> bool:
        # the switch converges when the fake ran the last command; the resync pass reports
        # a moment later, once it has read every reply
        node = daemon.status_payload()["nodes"][0]
        return bool(node["connected"] and node["errors"] == [] and node["last_sync"])

    await eventually(
        node_clean, "the node reports a clean sync", detail=lambda: daemon.status_payload()["nodes"]
    )


async def test_initial_status_survives_a_drop_mid_push(world: World) -> None:
    """Agents declared `initial_status: Available` must end Available even when the
    connection dropped between their `agent add` and their `agent set status`."""
    await push_and_cut(world, big_tenant(120, initial_status="Available"))
    await world.converged("the switch after reconnect", timeout=40)
    statuses = {a.status for n, a in world.fs.agents.items() if n.endswith(BIG_DOMAIN)}
    assert statuses == {"Available"}


async def resynced_by_the_reconnect(world: World) -> None:
    """The node's last pass (as /status shows it) is the resync its reconnect ran, and it
    applied the repair: nobody waited for a daemon pass (the interval here is an hour)."""

    def last_pass() -> dict[str, object]:
        return dict(world.daemon.status_payload()["nodes"][0].get("last_pass") or {})

    def done() -> bool:
        report = last_pass()
        return (
            report.get("trigger") == "connect"
            and report.get("errors") == []
            and bool(report.get("applied"))
        )

    await eventually(done, "a clean resync pass run by the reconnect", detail=last_pass)


async def test_restart_wiping_callcenter_state_is_resynced_at_once(world: World) -> None:
    """FreeSWITCH comes back with an empty callcenter.db: the node's own connect hook puts
    every queue, agent and tier back (with initial statuses), without waiting for a pass."""
    fs = world.fs
    fs.reset_logs()
    await fs.restart(wipe=True)
    assert fs.restarts == 1
    await world.converged("everything back after a wiped restart")
    added = {c.split()[3] for c in mutating_commands(fs) if c.startswith(f"{CC} agent add ")}
    assert added == {a for a in fs.agents if a.endswith((ACME, GLOBEX))}, "all re-created"
    assert fs.agents[f"alice@{ACME}"].status == "Available", "initial status set on re-creation"
    assert {r.queue for r in fs.xml_curl_log} >= {f"support@{ACME}", f"sales@{GLOBEX}"}
    await resynced_by_the_reconnect(world)


async def test_restart_keeping_state_adds_nothing_and_keeps_runtime_status(world: World) -> None:
    """FreeSWITCH restarts with callcenter.db kept: only the queues (memory-only) are loaded
    again; no agent or tier is added twice and statuses set by people survive."""
    fs = world.fs
    fs.agents[f"alice@{ACME}"].status = "On Break"
    fs.agents[f"bob@{ACME}"].status = "Available"
    fs.reset_logs()
    await fs.restart(wipe=False)
    await world.converged("queues loaded again after a restart")
    assert sorted(mutating_commands(fs)) == [
        f"{CC} queue load sales@{ACME}",
        f"{CC} queue load sales@{GLOBEX}",
        f"{CC} queue load support@{ACME}",
    ]
    assert fs.agents[f"alice@{ACME}"].status == "On Break"
    assert fs.agents[f"bob@{ACME}"].status == "Available"
    await resynced_by_the_reconnect(world)


# --- a commit with fifty kinds of mistakes -------------------------------------------------

MARK = "<<!>>"
"""Put on the line where the mistake is injected; removed before the file is written."""

# A valid change carried by every broken file: if a broken file were applied, it would land.
CARRIER = ("    call_timeout: 20\n", "    call_timeout: 21\n")


@dataclass(frozen=True)
class Mistake:
    """``old`` (exactly once in the base file, after the carrier) becomes ``new``, whose
    ``MARK`` line must be the reported line; ``message`` is a fragment of that error.
    ``alone``: no error on any other line. ``cross``: the mistake involves globex too."""

    id: str
    old: str
    new: str
    message: str
    alone: bool = True
    cross: bool = False
    secret: str | None = None  # must not be echoed by any error output


def _m(id: str, old: str, new: str, message: str, **kw: object) -> Mistake:
    return Mistake(id, old, new, message, **kw)  # type: ignore[arg-type]


# fmt: off
MISTAKES: tuple[Mistake, ...] = (
    # unknown keys
    _m("unknown-top-level-key", "status: active\n", f"status: active\ncolour: red{MARK}\n", "unknown key 'colour'"),
    _m("unknown-extension-key", "    name: Bob desk phone\n", f"    name: Bob desk phone\n    fax: true{MARK}\n", "unknown key 'fax'"),
    _m("misspelt-queue-key", "    strategy: ring-all\n", f"    stratgey: ring-all{MARK}\n", "did you mean 'strategy'"),
    _m("password-key", "    max_registrations: 3\n", f"    max_registrations: 3\n    password: Hunter2-Secret{MARK}\n", "not allowed", secret="Hunter2-Secret"),
    # wrong types
    _m("text-for-integer", "  call_timeout: 30\n", f"  call_timeout: thirty{MARK}\n", "must be a whole number"),
    _m("list-for-integer", "    max_registrations: 3\n", f"    max_registrations: [3]{MARK}\n", "must be a whole number"),
    _m("boolean-for-integer", "    max_registrations: 3\n", f"    max_registrations: true{MARK}\n", "YAML reads unquoted yes/no"),
    _m("quoted-number-for-integer", "  call_timeout: 30\n", f'  call_timeout: "30"{MARK}\n', "must be a whole number, unquoted"),
    _m("word-for-boolean", "    enabled: false\n", f"    enabled: maybe{MARK}\n", "must be true or false"),
    _m("quoted-no-for-boolean", "    enabled: false\n", f'    enabled: "no"{MARK}\n', "must be true or false"),
    _m("unquoted-number-for-string", '    destination: {extension: "1001"}\n', f"    destination: {{extension: 1001}}{MARK}\n", "quote numbers"),
    _m("yaml-boolean-for-name", "    name: Bob desk phone\n", f"    name: yes{MARK}\n", "valid string"),
    _m("mapping-for-list", '    extensions: ["1010"]\n', f'    extensions: {{number: "1010"}}{MARK}\n', "valid list"),
    _m("null-for-required-name", "name: Acme Corporation\n", f"name:{MARK}\n", "valid string"),
    # patterns
    _m("tenant-id-pattern", "id: acme\n", f"id: Acme{MARK}\n", "must be a slug"),
    _m("tenant-id-not-file-name", "id: acme\n", f"id: acme2{MARK}\n", "must equal the file name"),
    _m("domain-double-dot", "domain: acme.example.com\n", f"domain: acme..example.com{MARK}\n", "fully qualified domain name"),
    _m("domain-without-dot", "domain: acme.example.com\n", f"domain: localhost{MARK}\n", "fully qualified domain name"),
    _m("domain-with-blank", "domain: acme.example.com\n", f"domain: acme example.com{MARK}\n", "fully qualified domain name"),
    _m("e164-without-plus", '  - number: "+14155550101"\n', f'  - number: "14155550101"{MARK}\n', "E.164"),
    _m("e164-leading-zero", '  - number: "+14155550101"\n', f'  - number: "+04155550101"{MARK}\n', "E.164"),
    _m("e164-too-short", '  - number: "+14155550101"\n', f'  - number: "+1415"{MARK}\n', "E.164"),
    _m("e164-with-blanks", '  - number: "+14155550101"\n', f'  - number: "+1 415 555 0101"{MARK}\n', "E.164"),
    _m("caller-id-number-letters", '    caller_id: {name: Alice Smith, number: "1001"}\n', f'    caller_id: {{name: Alice Smith, number: "10-01"}}{MARK}\n', "digits with an optional leading +"),
    _m("extension-reference-letters", '    extensions: ["1001"]\n', f'    extensions: ["10O1"]{MARK}\n', "must be digits only"),
    _m("extension-16-digits", '    caller_id: {name: "Acme <Front Desk>"}\n', f'    caller_id: {{name: "Acme <Front Desk>"}}\n  - {{number: "1234567890123456", name: Long}}{MARK}\n', "must be digits only"),
    _m("email-without-at", "  - email: carol@acme.example.com\n", f"  - email: carol-at-acme{MARK}\n", "must be an email address"),
    _m("agent-name-not-a-slug", "    wrap_up_time: 15\n", f'    wrap_up_time: 15\n  - {{name: "Bad Agent", extension: "1004"}}{MARK}\n', "must be a slug"),
    _m("feature-code-letters", '    agent_available: "*22"\n', f'    agent_available: "*2a"{MARK}\n', "optional leading * or #"),
    _m("sound-path-with-blank", "    moh_sound: local_stream://moh\n", f'    moh_sound: "local_stream://my moh"{MARK}\n', "without blanks, quotes, '|'"),
    _m("sound-path-with-pipe", "    moh_sound: local_stream://moh\n", f'    moh_sound: "local_stream://moh|x"{MARK}\n', "without blanks, quotes, '|'"),
    # enums
    _m("tenant-status-unknown", "status: active\n", f"status: paused{MARK}\n", "'active' or 'suspended'"),
    _m("role-unknown", "    role: member\n", f"    role: owner{MARK}\n", "'admin', 'agent' or 'member'"),
    _m("strategy-unknown", "    strategy: longest-idle-agent\n", f"    strategy: fastest-agent{MARK}\n", "'ring-all'"),
    _m("agent-type-unknown", '    extension: "1001"\n    type: callback\n', f'    extension: "1001"\n    type: robot{MARK}\n', "'callback' or 'uuid-standby'"),
    _m("initial-status-wrong-case", "    initial_status: Available\n", f"    initial_status: available{MARK}\n", "'Available (On Demand)'"),
    # contacts: they become ESL arguments and '|'-separated listing cells
    _m("contact-with-pipe", '    extension: "1002"\n', f'    contact: "user/1002@acme.example.com|x"{MARK}\n', "FreeSWITCH dial string"),
    _m("contact-with-single-quote", '    extension: "1002"\n', f"    contact: \"user/1002@acme.example.com'x\"{MARK}\n", "FreeSWITCH dial string"),
    _m("contact-with-double-quote", '    extension: "1002"\n', f"    contact: 'user/1002\"@acme.example.com'{MARK}\n", "FreeSWITCH dial string"),
    _m("contact-with-blank", '    extension: "1002"\n', f'    contact: "user/1002@acme.example.com x"{MARK}\n', "FreeSWITCH dial string"),
    _m("contact-with-newline", '    extension: "1002"\n', f'    contact: "user/1002@acme.example.com\\nx"{MARK}\n', "FreeSWITCH dial string"),
    _m("agent-extension-and-contact", '  - name: bob\n    extension: "1002"\n    type: callback\n', f'  - {{name: bob, extension: "1002", contact: sofia/gateway/answering_service/+14155550199}}{MARK}\n', "exactly one"),
    _m("agent-neither-extension-nor-contact", '  - name: bob\n    extension: "1002"\n    type: callback\n', f"  - {{name: bob, type: callback}}{MARK}\n", "exactly one"),
    _m("did-two-destinations", "    destination: {queue: support}\n", f'    destination: {{queue: support, extension: "1001"}}{MARK}\n', "exactly one"),
    # display names: any Unicode, but no control characters or edge blanks
    _m("tab-in-name", "    name: Bob desk phone\n", f'    name: "Bob\\tdesk"{MARK}\n', "control characters"),
    _m("newline-in-name", "    name: Bob softphone\n", f'    name: "Bob\\nsoftphone"{MARK}\n', "control characters"),
    _m("bell-in-caller-id-name", '    caller_id: {name: "Acme <Front Desk>"}\n', f'    caller_id: {{name: "Acme\\aFront"}}{MARK}\n', "control characters"),
    _m("blank-edge-in-name", "    name: Front desk & lobby\n", f'    name: " Front desk & lobby"{MARK}\n', "blanks"),
    _m("empty-name", "name: Acme Corporation\n", f'name: ""{MARK}\n', "at least 1 character"),
    _m("name-too-long", "name: Acme Corporation\n", f"name: {'A' * 121}{MARK}\n", "at most 120 characters"),
    # ranges
    _m("call-timeout-too-short", "  call_timeout: 30\n", f"  call_timeout: 1{MARK}\n", "greater than or equal to 5"),
    _m("max-no-answer-too-high", "    max_no_answer: 3\n", f"    max_no_answer: 1001{MARK}\n", "less than or equal to 1000"),
    _m("wrap-up-over-a-day", "    wrap_up_time: 15\n", f"    wrap_up_time: 86401{MARK}\n", "less than or equal to 86400"),
    _m("negative-tier-level", "      - {agent: carol, level: 1, position: 2}\n", f"      - {{agent: carol, level: -1, position: 2}}{MARK}\n", "greater than or equal to 0"),
    _m("zero-registrations", "    max_registrations: 3\n", f"    max_registrations: 0{MARK}\n", "greater than or equal to 1"),
    _m("extension-length-inverted", "  extension_length: {min: 3, max: 6}\n", f"  extension_length: {{min: 6, max: 3}}{MARK}\n", "must not exceed"),
    _m("extension-too-long-for-tenant", '    caller_id: {name: "Acme <Front Desk>"}\n', f'    caller_id: {{name: "Acme <Front Desk>"}}\n  - {{number: "1234567", name: Seven digits}}{MARK}\n', "7 digits"),
    # duplicates
    _m("duplicate-extension", '    caller_id: {name: "Acme <Front Desk>"}\n', f'    caller_id: {{name: "Acme <Front Desk>"}}\n  - {{number: "1004", name: Dup}}{MARK}\n', "duplicate extension number"),
    _m("duplicate-email-other-case", "  - email: frontdesk@acme.example.com\n", f"  - email: ALICE@acme.example.com{MARK}\n", "duplicate user email"),
    _m("duplicate-agent", "    wrap_up_time: 15\n", f'    wrap_up_time: 15\n  - {{name: alice, extension: "1004"}}{MARK}\n', "duplicate agent name"),
    _m("duplicate-queue", "      - {agent: bob, level: 1, position: 1}\n", f'      - {{agent: bob, level: 1, position: 1}}\n  - {{name: support, number: "7002"}}{MARK}\n', "duplicate queue name"),
    _m("duplicate-inbound-number", "    destination: {queue: sales}\n", f'    destination: {{queue: sales}}\n  - {{number: "+14155550101", destination: {{queue: sales}}}}{MARK}\n', "duplicate inbound number"),
    _m("agent-twice-in-a-queue", "      - {agent: carol, level: 1, position: 2}\n", f"      - {{agent: carol, level: 1, position: 2}}\n      - {{agent: alice, level: 2, position: 1}}{MARK}\n", "two tiers"),
    _m("extension-twice-for-a-user", '    extensions: ["1002", "1003"]\n', f'    extensions: ["1002", "1002"]{MARK}\n', "listed twice"),
    # references
    _m("unknown-agent-in-tier", "      - {agent: carol, level: 1, position: 2}\n", f"      - {{agent: karol, level: 1, position: 2}}{MARK}\n", "did you mean 'carol'"),
    _m("unknown-extension-of-agent", '    extension: "1004"\n', f'    extension: "1099"{MARK}\n', "unknown extension '1099'"),
    _m("unknown-extension-of-user", '    extensions: ["1010"]\n', f'    extensions: ["1011"]{MARK}\n', "unknown extension '1011'"),
    _m("unknown-queue-of-did", "    destination: {queue: sales}\n", f"    destination: {{queue: billing}}{MARK}\n", "unknown queue 'billing'"),
    _m("unknown-extension-of-did", '    destination: {extension: "1001"}\n', f'    destination: {{extension: "1099"}}{MARK}\n', "unknown extension '1099'"),
    # clashes in the tenant's one dial plan
    _m("queue-number-is-an-extension", '    number: "7001"\n', f'    number: "1002"{MARK}\n', "already used by extension"),
    _m("two-queues-one-number", '    number: "7001"\n', f'    number: "7000"{MARK}\n', "already used by queue"),
    _m("feature-code-is-a-queue-number", '    agent_on_break: "*23"\n', f'    agent_on_break: "7000"{MARK}\n', "already used by queue"),
    # across tenants
    _m("domain-of-another-tenant", "domain: acme.example.com\n", f"domain: globex.example.com{MARK}\n", "also used by tenant globex", cross=True),
    _m("did-of-another-tenant", '  - number: "+14155550101"\n', f'  - number: "+442071838751"{MARK}\n', "also claimed by tenant globex", cross=True),
    # YAML itself
    _m("yaml-tab-indentation", "    role: admin\n", f"\trole: admin{MARK}\n", "tab character"),
    _m("yaml-duplicate-key", "name: Acme Corporation\n", f"name: Acme Corporation\nname: Acme Again{MARK}\n", "duplicate key 'name'"),
    _m("yaml-duplicate-nested-key", "    name: Bob desk phone\n", f"    name: Bob desk phone\n    name: Bob again{MARK}\n", "duplicate key 'name'"),
    _m("yaml-unclosed-flow-mapping", "      - {agent: alice, level: 1, position: 1}\n", f"      - {{agent: alice, level: 1, position: 1{MARK}\n", "YAML"),
    _m("yaml-text-after-quoted-string", "    name: Front desk (shared)\n", f'    name: "Front desk" (shared){MARK}\n', "YAML syntax error"),
    _m("yaml-python-name-tag", "name: Acme Corporation\n", f"name: !!python/name:os.system{MARK}\n", "YAML"),
    _m("yaml-python-object-tag-on-a-list", "name: Acme Corporation\n", f'name: !!python/object/apply:os.system ["true"]{MARK}\n', "is not allowed"),
    _m("yaml-undefined-alias", "    wrap_up_time: 15\n", f"    wrap_up_time: *fifteen{MARK}\n", "undefined alias"),
    _m("yaml-anchor", "    wrap_up_time: 15\n", f"    wrap_up_time: &fifteen 15{MARK}\n", "anchors and aliases are not supported"),
    _m("yaml-merge-key", "    name: Bob desk phone\n", f"    <<: {{name: Bob desk phone}}{MARK}\n", "merge keys (<<) are not supported"),
    _m("yaml-binary-tag", "    name: Bob softphone\n", f"    name: !!binary Qm9i{MARK}\n", "YAML tag !!binary is not allowed"),
    # hostile values: FreeSWITCH would expand them (code execution) or reach another tenant
    _m("contact-runs-a-command", '    extension: "1002"\n', f'    contact: "${{system(touch /tmp/pwned)}}"{MARK}\n', "FreeSWITCH dial string"),
    _m("contact-with-dial-string-prefix", '    extension: "1002"\n', f'    contact: "{{api_on_answer=system id}}sofia/gateway/answering_service/+14155550199"{MARK}\n', "FreeSWITCH dial string"),
    _m("contact-of-another-tenant", '    extension: "1002"\n', f"    contact: user/2001@globex.example.com{MARK}\n", "FreeSWITCH dial string"),
    _m("contact-loopback", '    extension: "1002"\n', f"    contact: loopback/2001/globex.example.com{MARK}\n", "FreeSWITCH dial string"),
    _m("contact-undeclared-gateway", '    extension: "1002"\n', f"    contact: sofia/gateway/elsewhere/+14155550199{MARK}\n", "is not declared in _platform.yaml gateways: [answering_service]"),
    _m("moh-preprocessor-variable", "    moh_sound: local_stream://moh\n", f'    moh_sound: "$${{hold_music}}"{MARK}\n', "must be local_stream://"),
    _m("sound-path-traversal", "    moh_sound: local_stream://moh\n", f"    moh_sound: tenant:../globex/moh.wav{MARK}\n", "must be local_stream://"),
    _m("record-template-runs-a-command", "    moh_sound: local_stream://moh\n", f'    moh_sound: local_stream://moh\n    record_template: "${{system(id)}}.wav"{MARK}\n', "recordings storage"),
    _m("bidi-override-in-name", "    name: Bob softphone\n", f'    name: "Bob \\u202esoftphone"{MARK}\n', "U+202E RIGHT-TO-LEFT OVERRIDE is not allowed"),
    _m("zero-width-in-user-name", "    name: Bob Jones\n", f'    name: "Bob\\u200bJones"{MARK}\n', "U+200B ZERO WIDTH SPACE is not allowed"),
    _m("variable-in-caller-id-name", '    caller_id: {name: "Acme <Front Desk>"}\n', f'    caller_id: {{name: "Acme ${{system(id)}}"}}{MARK}\n', "FreeSWITCH receives"),
)
# fmt: on

BASE_ACME = (BAD_SPECS / "acme.yaml").read_text()
BASE_GLOBEX = (BAD_SPECS / "globex.yaml").read_text()
BASE_PLATFORM = (BAD_SPECS / "_platform.yaml").read_text()


def inject(base: str, mistake: Mistake) -> tuple[str, int]:
    """The broken file (carrier change included) and the 1-based line of the mistake."""
    text = replace_once(base, CARRIER, (mistake.old, mistake.new))
    line = text.count("\n", 0, text.index(MARK)) + 1
    return text.replace(MARK, ""), line


@pytest.fixture(scope="module")
def applied_dsn(pg_server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding the valid fixture tenants, applied once for all the mistakes."""
    with database(pg_server_dsn) as dsn:
        tenants = tmp_path_factory.mktemp("baseline")
        (tenants / "acme.yaml").write_text(BASE_ACME)
        (tenants / "globex.yaml").write_text(BASE_GLOBEX)
        (tenants / "_platform.yaml").write_text(BASE_PLATFORM)
        result = pbx("apply", "--yes", "--tenants", str(tenants), "--database-url", dsn)
        assert result.exit_code == 0, result.output
        yield dsn


def test_there_are_fifty_distinct_mistakes() -> None:
    assert len({m.id for m in MISTAKES}) == len(MISTAKES) >= 50
    assert len({(m.old, m.new) for m in MISTAKES}) == len(MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.id)
def test_mistake_is_reported_at_its_line_and_applies_nothing(
    mistake: Mistake, applied_dsn: str, tmp_path: Path
) -> None:
    """`pbx validate` names the exact line of the mistake; `pbx apply` of the same commit
    applies the other tenant's change but not one row of the broken tenant (whose file also
    carries a valid change that would otherwise land)."""
    text, line = inject(BASE_ACME, mistake)
    tenants = tmp_path / "tenants.d"
    tenants.mkdir()
    acme = tenants / "acme.yaml"
    acme.write_text(text)
    (tenants / "_platform.yaml").write_text(BASE_PLATFORM)
    globex_name = f"name: Globex {mistake.id}\n"
    (tenants / "globex.yaml").write_text(
        replace_once(BASE_GLOBEX, ("name: Globex Corporation\n", globex_name))
    )

    checked = pbx("validate", str(tenants), "--format", "json")
    assert checked.exit_code == 1, checked.output
    errors = [e for e in json.loads(checked.stdout)["errors"] if e["file"] == str(acme)]
    assert any(
        e["line"] == line and mistake.message in f"{e['field']}: {e['message']}" for e in errors
    ), f"expected {mistake.message!r} at line {line}, got {errors}"
    if mistake.alone:
        assert {e["line"] for e in errors} == {line}, errors
    text_report = pbx("validate", str(tenants))
    assert text_report.exit_code == 1
    assert any(row.startswith(f"{acme}:{line}:") for row in text_report.stdout.splitlines())

    before = tenant_fingerprint(applied_dsn, "acme")
    applied = pbx("apply", "--yes", "--tenants", str(tenants), "--database-url", applied_dsn)
    assert applied.exit_code == 1, "spec errors make apply fail"
    assert tenant_fingerprint(applied_dsn, "acme") == before, "the broken tenant was touched"
    untouched = next(r for r in applied.stderr.splitlines() if "tenants left untouched" in r)
    assert "acme" in untouched
    if not mistake.cross:
        assert "applied globex: 1 change(s)" in applied.stdout, applied.output
    if mistake.secret is not None:
        for output in (checked.output, text_report.output, applied.output):
            assert mistake.secret not in output


async def test_daemon_leaves_a_broken_tenant_exactly_as_applied(world: World) -> None:
    """The daemon meets broken commits: each broken acme file freezes acme (database rows,
    served XML, switch) while the same commit's globex change goes through."""
    fs = world.fs
    before = tenant_fingerprint(world.dsn, "acme")
    valid_acme = (world.tenants / "acme.yaml").read_text()
    picks = [
        m
        for m in MISTAKES
        if m.id in ("password-key", "unknown-agent-in-tier", "yaml-duplicate-key")
    ]
    for number, mistake in enumerate(picks, start=2004):
        fs.reset_logs()
        text, line = inject(valid_acme, mistake)
        world.write("acme.yaml", text)
        world.edit(
            "globex.yaml",
            (
                '  - {number: "2099", name: Conference room}\n',
                f'  - {{number: "2099", name: Conference room}}\n  - {{number: "{number}", name: Extra {number}}}\n',
            ),
        )
        await eventually(
            lambda n=str(number): world.xml.user_found(GLOBEX, n), f"globex {number} applied"
        )
        status = world.daemon.status_payload()["tenants"]["acme"]
        assert status["last_error"].startswith("invalid spec"), status
        assert any(
            f"acme.yaml:{line}:" in e and mistake.message in e for e in status["spec_errors"]
        ), status
        assert tenant_fingerprint(world.dsn, "acme") == before
        assert await world.xml.user_found(ACME, "1001"), "acme keeps being served as applied"
        assert [c for c in mutating_commands(fs) if ACME in c] == [], "nothing pushed for acme"
        world.edit("globex.yaml", (f'  - {{number: "{number}", name: Extra {number}}}\n', ""))


# --- a tenant removed from git ---------------------------------------------------------------


def schemas(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}


async def test_removed_tenant_is_orphaned_then_pruned_to_an_archive(world: World) -> None:
    """Deleting globex.yaml orphans globex: no longer served nor on the switch, every row
    kept. `pbx prune globex --yes` renames the schema to an archive, rows intact; an active
    tenant cannot be pruned."""
    with psycopg.connect(world.dsn) as conn:
        rows = dump_schema(conn, "tenant_globex")
    assert rows["extensions"], "globex has data to keep"
    os.remove(world.tenants / "globex.yaml")

    async def orphaned() -> bool:
        return not await world.xml.user_found(GLOBEX, "2001")

    await eventually(orphaned, "globex no longer served")
    await world.converged("globex's agents and queue removed from the switch")
    assert not [a for a in world.fs.agents if a.endswith(GLOBEX)]
    with psycopg.connect(world.dsn) as conn:
        (status,) = conn.execute("SELECT status FROM pbx.tenants WHERE id = 'globex'").fetchone()  # type: ignore[misc]
        assert status == "orphaned"
        assert dump_schema(conn, "tenant_globex") == rows, "orphaning keeps every row"

    refused = pbx("prune", "acme", "--yes", "--database-url", world.dsn)
    assert refused.exit_code == 1 and "tenant_acme" in schemas(world.dsn)

    pruned = pbx("prune", "globex", "--yes", "--database-url", world.dsn)
    assert pruned.exit_code == 0, pruned.output
    archives = {s for s in schemas(world.dsn) if s.startswith("archive_globex_")}
    assert len(archives) == 1 and archives.pop() in pruned.stdout
    assert "tenant_globex" not in schemas(world.dsn)
    with psycopg.connect(world.dsn) as conn:
        (archive,) = [s for s in schemas(world.dsn) if s.startswith("archive_globex_")]
        assert dump_schema(conn, archive) == rows, "the archive holds every row"
        assert conn.execute("SELECT 1 FROM pbx.tenants WHERE id = 'globex'").fetchone() is None
    await eventually(
        lambda: "globex" not in world.daemon.reconciler.applied.state,
        "the daemon followed the prune",
    )
    assert await world.xml.user_found(ACME, "1001"), "the others are unaffected"


async def test_a_domain_change_removes_the_old_domains_objects_from_the_switch(
    world: World,
) -> None:
    """The reconciler created queues and agents named ...@acme.example.com: after acme
    moves to another domain they are its to remove, not "unmanaged" leftovers."""
    new_domain = "acme-corp.example.com"
    world.edit("acme.yaml", ("domain: acme.example.com", f"domain: {new_domain}"))
    world.domains = world.domains | {new_domain}

    def leftovers() -> list[str]:
        names = [*world.fs.agents, *world.fs.queues]
        return sorted(n for n in names if n.endswith(f"@{ACME}"))

    def moved() -> bool:
        return not leftovers() and any(a.endswith(f"@{new_domain}") for a in world.fs.agents)

    await eventually(moved, "old-domain objects removed, new ones created", detail=leftovers)
    node = world.daemon.status_payload()["nodes"][0]
    assert not [n for n in node.get("unmanaged", []) if n.endswith(f"@{ACME}")]

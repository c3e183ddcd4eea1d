"""Shared machinery of the end-to-end tests: a running world, FreeSWITCH's own forms, oracles.

Why these pieces exist:

* ``CapturedForm`` replays the xml_curl POST bodies captured from a real FreeSWITCH 1.10
  (``shared/freeswitch/transcripts/xml_curl``) with only the user, domain and destination
  retargeted, every other field byte-for-byte as the switch sent it: the endpoint is tested
  against what FreeSWITCH really writes, not against what we think it writes.
* ``XmlCurl`` POSTs them like mod_xml_curl and keeps every exchange, so the security tests can
  inspect every answer the endpoint ever gave during a scenario.
* ``ProbingSwitch`` is the fake ESL peer plus one observation: at the instant a
  ``queue unload`` arrives, is the queue still served in callcenter.conf? (If it is, the
  dispatcher's next lazy load silently brings the queue back; REFERENCE.md.)
* ``switch_drift`` is an oracle independent of the daemon's database: the fake switch's
  mod_callcenter state compared with what the spec files on disk declare.
* ``start_world`` runs the real daemon in process against a real PostgreSQL database, the
  example tenants copied to a tmp dir, and the fake switch.

Waits poll with short sleeps and generous limits; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import os
import re
import shutil
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from reconciler.cli.main import main as pbx_main
from reconciler.core.desired import tenant_state_from_spec
from reconciler.daemon.root import Daemon, DaemonConfig
from reconciler.switch import (
    AGENT_NUMBER_FIELDS,
    DesiredLive,
    desired_live,
    is_managed,
    parse_node_spec,
)
from reconciler.web import PortalConfig
from specs_schema.load import load_specs
from tests.conftest import EXAMPLE_TENANTS, TRANSCRIPTS, fresh_database
from tests.fakes.freeswitch import (
    FakeCallcenter,
    FakeFreeSwitch,
    XmlCurlRequest,
    fs_url_encode,
)

XML_CURL_DIR = TRANSCRIPTS / "xml_curl"
BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"

AUTH = ("freeswitch", "xml-curl-E2E-secret")
ESL_PASSWORD = "esl-E2E-secret"
ACME = "acme.example.com"
GLOBEX = "globex.example.com"
INITECH = "initech.example.org"
EXAMPLE_DOMAINS = frozenset({ACME, GLOBEX, INITECH})

# The form's first five fields are written raw by mod_xml_curl, the rest url-encoded.
_RAW_FIELDS = 5


# --- waiting ---------------------------------------------------------------------------


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    timeout: float = 20.0,  # noqa: ASYNC109
    detail: Callable[[], object] | None = None,
) -> None:
    """Poll ``check`` until true; fail with ``what`` (and ``detail()``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            extra = f"; last seen: {detail()}" if detail is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for: {what}{extra}")
        await asyncio.sleep(0.05)


# --- FreeSWITCH's forms ----------------------------------------------------------------


@dataclass(frozen=True)
class CapturedForm:
    """One captured mod_xml_curl POST body, as ``(name, raw value)`` pairs in wire order.

    ``user``/``domain``/``dest`` are the values the capture was made with (the calling or
    looked-up user, the tenant domain, the dialled number) so that ``retarget`` can swap them
    for another tenant's without touching anything else.
    """

    name: str
    pairs: tuple[tuple[str, str], ...]
    user: str
    domain: str
    dest: str

    @classmethod
    def load(cls, stem: str) -> CapturedForm:
        data = json.loads((XML_CURL_DIR / f"{stem}.json").read_text())
        pairs = tuple(
            (name, raw) for name, _, raw in (p.partition("=") for p in data["body"].split("&"))
        )
        fields = {n: _decode(i, v) for i, (n, v) in enumerate(pairs)}
        if fields["section"] == "dialplan":
            user, domain = fields["Caller-Username"], fields["Hunt-Context"]
            dest = fields["Hunt-Destination-Number"]
        elif fields["section"] == "directory":
            user, domain, dest = fields["user"], fields["domain"], ""
        else:
            user, domain = "", fields.get("CC-Queue", "@").partition("@")[2]
            dest = ""
        return cls(stem, pairs, user, domain, dest)

    def retarget(
        self,
        *,
        user: str | None = None,
        domain: str | None = None,
        dest: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> str:
        """The body with the capture's user/domain/dest replaced (whole values, and inside
        ``user@domain``), then ``fields`` set (replaced in place, or appended)."""
        user, domain, dest = user or self.user, domain or self.domain, dest or self.dest
        mapping: dict[str, str] = {}
        if self.domain:
            mapping[self.domain] = domain
            if self.user:
                mapping[f"{self.user}@{self.domain}"] = f"{user}@{domain}"
            if self.dest:
                mapping[f"{self.dest}@{self.domain}"] = f"{dest}@{domain}"
        pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
        overrides = dict(fields or {})
        out: list[str] = []
        for index, (name, raw) in enumerate(self.pairs):
            value = _decode(index, raw)
            if name in overrides:
                new = overrides.pop(name)
            elif self.user and value == self.user:
                new = user
            elif self.dest and value == self.dest:
                new = dest
            elif mapping:
                new = pattern.sub(lambda m: mapping[m.group(0)], value)
            else:
                new = value
            if new == value:
                out.append(f"{name}={raw}")
            else:
                out.append(f"{name}={new if index < _RAW_FIELDS else fs_url_encode(new)}")
        out += [f"{name}={fs_url_encode(value)}" for name, value in overrides.items()]
        return "&".join(out)


def _decode(index: int, raw: str) -> str:
    return raw if index < _RAW_FIELDS else urllib.parse.unquote(raw)


REGISTER = "11-directory-register-a1hash"
USER_CALL = "20-directory-call-bridge-1003-user-call"
DIALPLAN = "17-dialplan-call-tone-1002"
QUEUE_LOAD = "07-configuration-queue-load"
MODULE_LOAD = "06-configuration-module-load-callcenter-conf"


# --- reading answers -------------------------------------------------------------------


def parse_xml(body: str) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "document" and root.get("type") == "freeswitch/xml", body[:200]
    return root


def is_not_found(body: str) -> bool:
    """The exact "not found" document FreeSWITCH recognises (anything else is an answer)."""
    root = parse_xml(body)
    sections = root.findall("section")
    return (
        len(sections) == 1
        and sections[0].get("name") == "result"
        and [r.get("status") for r in sections[0].findall("result")] == ["not found"]
    )


@dataclass(frozen=True)
class DirectoryUser:
    """A ``<user>`` as FreeSWITCH would merge it: domain params first, user params win."""

    domain: str
    id: str
    params: Mapping[str, str]
    variables: Mapping[str, str]
    raw_params: tuple[tuple[str, str], ...]  # the user's own params, duplicates kept


def directory_users(body: str) -> list[DirectoryUser]:
    """Every ``<user>`` of every domain in a directory answer, wherever it is nested."""
    users: list[DirectoryUser] = []
    for section in parse_xml(body).iterfind("section"):
        if section.get("name") != "directory":
            continue
        for domain in section.iterfind("domain"):
            domain_params = {
                p.get("name", ""): p.get("value", "") for p in domain.iterfind("params/param")
            }
            for user in domain.iter("user"):
                own = tuple(
                    (p.get("name", ""), p.get("value", "")) for p in user.iterfind("params/param")
                )
                users.append(
                    DirectoryUser(
                        domain=domain.get("name", ""),
                        id=user.get("id", ""),
                        params={**domain_params, **dict(own)},
                        variables={
                            v.get("name", ""): v.get("value", "")
                            for v in user.iterfind("variables/variable")
                        },
                        raw_params=own,
                    )
                )
    return users


def a1_hash(user: str, domain: str, password: str) -> str:
    """What FreeSWITCH compares a digest against (HA1 of RFC 2617), computed independently."""
    return hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()


@dataclass(frozen=True)
class DialplanAnswer:
    context: str
    actions: tuple[tuple[str, str], ...]  # (application, data)

    def app(self, application: str) -> list[str]:
        return [data for app, data in self.actions if app == application]


def dialplan_answer(body: str) -> DialplanAnswer:
    """The single context of a dialplan answer and its actions, in order."""
    sections = parse_xml(body).findall("section")
    assert [s.get("name") for s in sections] == ["dialplan"], body
    contexts = sections[0].findall("context")
    assert len(contexts) == 1, body
    actions = tuple(
        (a.get("application", ""), a.get("data", "")) for a in contexts[0].iter("action")
    )
    return DialplanAnswer(contexts[0].get("name", ""), actions)


def served_queues(body: str) -> dict[str, dict[str, str]]:
    """``{queue name: params}`` of a callcenter.conf answer ("not found" -> empty)."""
    if is_not_found(body):
        return {}
    root = parse_xml(body)
    configs = root.findall("section/configuration")
    assert [c.get("name") for c in configs] == ["callcenter.conf"], body
    # agents and tiers are managed over ESL: a queue load must never re-import them
    assert configs[0].find("agents") is None and configs[0].find("tiers") is None, body
    return {
        q.get("name", ""): {p.get("name", ""): p.get("value", "") for p in q.iterfind("param")}
        for q in configs[0].iterfind("queues/queue")
    }


# --- the xml_curl client ---------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    body: str
    status: int
    response: str


_DEFAULT_AUTH: Any = object()


class XmlCurl:
    """POSTs forms like mod_xml_curl (one connection per fetch) and records every exchange."""

    def __init__(self, port: int, auth: tuple[str, str] = AUTH) -> None:
        self.url = f"http://127.0.0.1:{port}/freeswitch/xml"
        self.auth = auth
        self.exchanges: list[Exchange] = []
        self._forms: dict[str, CapturedForm] = {}

    def form(self, stem: str) -> CapturedForm:
        if stem not in self._forms:
            self._forms[stem] = CapturedForm.load(stem)
        return self._forms[stem]

    async def post(
        self, body: str, *, auth: Any = _DEFAULT_AUTH, authorization: str | None = None
    ) -> tuple[int, str]:
        """``auth``: a ``(user, password)`` pair, or None for no credentials; ``authorization``
        sends that raw header instead."""
        credentials = self.auth if auth is _DEFAULT_AUTH else auth
        headers = {
            "User-Agent": "freeswitch-xml/1.0",
            "Accept": "*/*",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        elif credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(self.url, data=body.encode(), headers=headers) as response,
        ):
            text = await response.text()
            self.exchanges.append(Exchange(body, response.status, text))
            return response.status, text

    async def ok(self, body: str) -> str:
        status, text = await self.post(body)
        assert status == 200, (status, text)
        return text

    async def register(self, domain: str, user: str, **fields: str) -> str:
        """The sip_auth lookup of an authenticated REGISTER (capture 11)."""
        return await self.ok(self.form(REGISTER).retarget(user=user, domain=domain, fields=fields))

    async def user_call(self, domain: str, user: str) -> str:
        """The ``user/<n>@<domain>`` lookup of a bridge (capture 20)."""
        return await self.ok(self.form(USER_CALL).retarget(user=user, domain=domain))

    async def dialplan(self, domain: str, caller: str, dest: str, **fields: str) -> str:
        """A call's dialplan lookup, Hunt-Context = the caller's tenant domain (capture 17)."""
        form = self.form(DIALPLAN)
        return await self.ok(form.retarget(user=caller, domain=domain, dest=dest, fields=fields))

    async def did(self, number: str) -> str:
        """A carrier call to a DID: the ``public`` context (capture 17, contexts replaced)."""
        form = self.form(DIALPLAN)
        return await self.ok(
            form.retarget(
                dest=number, fields={"Hunt-Context": "public", "Caller-Context": "public"}
            )
        )

    async def callcenter(self, queue: str | None) -> str:
        """callcenter.conf: a queue load (``CC-Queue``, capture 07) or the module load (06)."""
        if queue is None:
            return await self.ok(self.form(MODULE_LOAD).retarget())
        return await self.ok(self.form(QUEUE_LOAD).retarget(fields={"CC-Queue": queue}))

    async def user_found(self, domain: str, user: str) -> bool:
        return any(u.id == user for u in directory_users(await self.register(domain, user)))


# --- the fake switch with an ordering probe --------------------------------------------


class ProbingSwitch(FakeFreeSwitch):
    """The fake FreeSWITCH, recording for every ``queue unload`` whether callcenter.conf
    still served that queue at that very instant (the fetch a lazy load would make then)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unload_probes: list[tuple[str, bool]] = []
        self.fetch_history: list[XmlCurlRequest] = []  # every fetch, across reset_logs()
        self.callcenter = ProbingCallcenter(self)

    def reset_logs(self) -> None:
        self.fetch_history += self.xml_curl_log
        super().reset_logs()


class ProbingCallcenter(FakeCallcenter):
    """mod_callcenter of a :class:`ProbingSwitch`: probes callcenter.conf before an unload."""

    fs: ProbingSwitch

    async def _queue(self, action: str, args: list[str], events: list[Any]) -> str:
        if action == "unload" and args:
            config = await self._fetch_callcenter_conf(args[0])
            served = config is not None and any(
                q.get("name") == args[0] for q in config.iterfind("queues/queue")
            )
            self.fs.unload_probes.append((args[0], served))
        return await super()._queue(action, args, events)


# --- oracles ---------------------------------------------------------------------------


def declared_live(tenants_dir: Path) -> DesiredLive:
    """What the spec files on disk declare for every switch (all files must be valid)."""
    specs = load_specs([tenants_dir])
    assert specs.ok, [str(e) for e in specs.errors]
    return desired_live({t: tenant_state_from_spec(s.spec) for t, s in specs.tenants.items()})


def switch_drift(
    fs: FakeFreeSwitch, want: DesiredLive, domains: frozenset[str] = EXAMPLE_DOMAINS
) -> list[str]:
    """Every difference between the switch and ``want`` for names in ``domains``; [] when
    converged. Queues are compared by the params their load fetched from callcenter.conf."""
    problems: list[str] = []
    agents = {n: a for n, a in fs.agents.items() if is_managed(n, domains)}
    for name in sorted(set(want.agents) | set(agents)):
        wanted, have = want.agents.get(name), agents.get(name)
        if wanted is None or have is None:
            problems.append(f"agent {name}: {'extra' if wanted is None else 'missing'}")
            continue
        for key in ("type", "contact", *AGENT_NUMBER_FIELDS):
            if getattr(wanted, key) != getattr(have, key):
                problems.append(f"agent {name}.{key}: {getattr(have, key)!r}")
    tiers = {
        k: t for k, t in fs.tiers.items() if is_managed(k[0], domains) and is_managed(k[1], domains)
    }
    for key in sorted(set(want.tiers) | set(tiers)):
        wanted_tier, have_tier = want.tiers.get(key), tiers.get(key)
        if wanted_tier is None or have_tier is None:
            problems.append(f"tier {key}: {'extra' if wanted_tier is None else 'missing'}")
        elif (wanted_tier.level, wanted_tier.position) != (have_tier.level, have_tier.position):
            problems.append(f"tier {key}: level/position {have_tier.level}/{have_tier.position}")
    queues = {n: q for n, q in fs.queues.items() if is_managed(n, domains)}
    for name in sorted(set(want.queues) | set(queues)):
        wanted_queue, have_queue = want.queues.get(name), queues.get(name)
        if wanted_queue is None or have_queue is None:
            problems.append(f"queue {name}: {'extra' if wanted_queue is None else 'missing'}")
        elif dict(wanted_queue.params) != have_queue.params:
            problems.append(f"queue {name}: loaded with {have_queue.params}")
    return problems


def mutating_commands(fs: FakeFreeSwitch) -> list[str]:
    """``callcenter_config`` commands that change the switch, from the ESL api log."""
    verbs = ("add", "del", "set", "load", "unload", "reload")
    return [
        c
        for c in fs.api_log
        if c.startswith("callcenter_config ") and c.split()[2:3] and c.split()[2] in verbs
    ]


# --- the database ----------------------------------------------------------------------


def tenant_schemas(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' "
            "OR nspname LIKE 'archive\\_%' ORDER BY 1"
        )
    ]


def all_passwords(dsn: str) -> set[str]:
    """Every SIP password the database holds, in every tenant and archived schema."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        out: set[str] = set()
        for schema in tenant_schemas(conn):
            query = sql.SQL("SELECT password FROM {}.sip_credentials").format(
                sql.Identifier(schema)
            )
            out |= {row[0] for row in conn.execute(query)}
    return out


def dump_schema(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``schema`` (order-insensitive): for before/after checks."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (schema,),
        )
    ]
    return {
        table: sorted(
            conn.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchall(),
            key=repr,
        )
        for table in tables
    }


def tenant_fingerprint(dsn: str, tenant_id: str) -> dict[str, Any]:
    """A tenant's whole applied state: every row of its schema plus what the registry says
    was applied (status, domain, digest, revision, time)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        registry = conn.execute(
            "SELECT domain, status, spec_digest, applied_revision, applied_at "
            "FROM pbx.tenants WHERE id = %s",
            (tenant_id,),
        ).fetchone()
        return {"registry": registry, "rows": dump_schema(conn, f"tenant_{tenant_id}")}


@contextlib.contextmanager
def database(server_dsn: str) -> Iterator[str]:
    """A fresh database on the test server (for fixtures wider than a function)."""
    with fresh_database(server_dsn, "pbx_e2e") as dsn:
        yield dsn


# --- the CLI ---------------------------------------------------------------------------


def pbx(*args: str) -> Result:
    """``pbx ARGS`` in process (click's runner); stdout and stderr kept apart."""
    return CliRunner().invoke(pbx_main, list(args), catch_exceptions=False)


def show_password(dsn: str, tenant: str, extension: str) -> str:
    """The provisioning password, through the documented ``--output json`` contract."""
    result = pbx(
        "credentials", "show", tenant, extension, "--output", "json", "--database-url", dsn
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"username", "domain", "password"}, payload
    assert payload["username"] == extension
    return str(payload["password"])


# --- files -----------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Replace a spec file in one rename, as a git checkout does: the watcher never sees
    a half-written file (a dot-file temp name is ignored by the spec loader)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def replace_once(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert text.count(old) == 1, f"expected exactly one {old!r} in the spec"
        text = text.replace(old, new)
    return text


# --- a running world -------------------------------------------------------------------


@dataclass
class World:
    """The daemon in process, its database, the fake switch, an xml_curl client."""

    tenants: Path
    state_dir: Path
    dsn: str
    fs: ProbingSwitch
    daemon: Daemon
    xml: XmlCurl
    domains: frozenset[str] = field(default=EXAMPLE_DOMAINS)

    @property
    def port(self) -> int:
        return self.daemon.listen_port

    def edit(self, name: str, *pairs: tuple[str, str]) -> None:
        path = self.tenants / name
        write_atomic(path, replace_once(path.read_text(), *pairs))

    def write(self, name: str, text: str) -> None:
        write_atomic(self.tenants / name, text)

    def drift(self) -> list[str]:
        return switch_drift(self.fs, declared_live(self.tenants), self.domains)

    async def converged(self, what: str, *, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Wait until the switch holds exactly what the spec files declare."""
        await eventually(lambda: not self.drift(), what, timeout=timeout, detail=self.drift)

    def password(self, tenant: str, extension: str) -> str:
        return show_password(self.dsn, tenant, extension)


@contextlib.asynccontextmanager
async def start_world(
    tmp_path: Path,
    dsn: str,
    *,
    tenants_src: Path = EXAMPLE_TENANTS,
    portal: PortalConfig | None = None,
) -> AsyncIterator[World]:
    """Copy ``tenants_src``, start the fake switch and the daemon, wait for the first full
    sync (served over xml_curl and pushed to the switch), yield; stop everything after."""
    tenants = tmp_path / "tenants.d"
    shutil.copytree(tenants_src, tenants)
    state_dir = tmp_path / "state"
    async with ProbingSwitch(password=ESL_PASSWORD, xml_curl_credentials=":".join(AUTH)) as fs:
        daemon = Daemon(
            DaemonConfig(
                tenants_dir=tenants,
                database_url=dsn,
                listen_port=0,
                xml_curl_auth=AUTH,
                nodes=(parse_node_spec(f"{fs.host}:{fs.port}:{ESL_PASSWORD}"),),
                interval=3600.0,  # no periodic pass: every effect below has a named cause
                state_dir=state_dir,
                install_signal_handlers=False,
                leader_poll=0.2,
                debounce_ms=50,
                portal=portal,
            )
        )
        task = asyncio.create_task(daemon.run(), name="e2e-daemon")
        try:
            await asyncio.wait_for(daemon.serving.wait(), 10)
            # the port is known only now; no switch is pushed to before the first pass
            fs.xml_curl_url = f"http://127.0.0.1:{daemon.listen_port}/freeswitch/xml"
            world = World(tenants, state_dir, dsn, fs, daemon, XmlCurl(daemon.listen_port))
            await eventually(
                lambda: _served(world, (ACME, "1001"), (GLOBEX, "2001")), "first apply served"
            )
            await world.converged("first push to the switch")
            yield world
        finally:
            daemon.request_stop()
            exit_code = await asyncio.wait_for(task, 30)
        assert exit_code == 0


async def _served(world: World, *users: tuple[str, str]) -> bool:
    for domain, user in users:
        if not await world.xml.user_found(domain, user):
            return False
    return True


@pytest.fixture
async def world(tmp_path: Path, pg_dsn: str) -> AsyncIterator[World]:
    """The example tenants, fully synced to the database, xml_curl and the fake switch."""
    async with start_world(tmp_path, pg_dsn) as running:
        yield running

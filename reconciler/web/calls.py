"""Call history: who called whom, as pages (``/t/{tenant}/calls``, one call, a CSV export,
``/platform/calls``) and as the API (``/api/v1/tenants/{tenant}/calls...``).

Who sees what is decided here from the applied state, per request: a member the calls of
their own extensions, an agent also the queue calls they answered, a tenant admin every call
of the tenant with filters and totals; a super admin sees per-tenant counts and minutes
(``/platform/calls``), never a number, and a tenant's calls only when also its admin.
Another tenant's call, or one the person may not see, is 404. Rows come from the tenant's
own schema through the portal's database pool (``store.calls``); numbers and names are
callers' data, escaped by the templates' autoescape and made formula-safe in the CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from reconciler.core.call_query import MAX_PAGE_SIZE, PAGE_SIZE, CallQuery
from reconciler.core.call_record import CallRecord, Direction, Outcome
from reconciler.store.calls import call_totals, call_volumes, read_call, read_calls
from reconciler.web.access import Principal, Role, TenantScope, visible_tenant_ids
from reconciler.web.context import portal_of, principal, render, scope
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.feature import Feature, NavEntry
from reconciler.web.handling import V1, ok
from reconciler.web.openapi import TENANT, array, integer, obj, operation, string
from reconciler.web.recordings import recordings_of_calls

routes = web.RouteTableDef()
API = V1 + "/tenants/{tenant}/calls"
CSV_BATCH = 1000
SERVICE_SECONDS = 20
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[0-9+*#]{1,32}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_AFTER = re.compile(r"^(\d{1,20})_([0-9a-fA-F-]{8,64})$")
_CALL_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def nav(who: Principal) -> Sequence[NavEntry]:
    """Super admins: every tenant's volumes; others: the calls of their first tenant (the
    tenant page links the others')."""
    if who.super_admin:
        return [NavEntry("Calls", "/platform/calls")]
    return [NavEntry("Calls", f"/t/{t}/calls", prefix=True) for t in who.tenant_ids[:1]]


# -- who may see what ------------------------------------------------------------------------


def _calls_scope(request: web.Request) -> TenantScope:
    """The caller inside the tenant; a super admin who is no user there sees no numbers."""
    sc = scope(request, request.match_info["tenant"])
    if sc.role is Role.SUPER:
        raise NotFound("not found")
    return sc


def _restrict(sc: TenantScope, query: CallQuery) -> CallQuery:
    if sc.sees_all:
        return query
    agents = frozenset(a.name for a in sc.visible_agents())
    return replace(query, only_extensions=sc.own_extensions, only_agents=agents)


def _may_see(sc: TenantScope, legs: Sequence[CallRecord]) -> bool:
    if sc.sees_all:
        return True
    agents = {a.name for a in sc.visible_agents()}
    return any(
        leg.from_extension in sc.own_extensions
        or leg.to_extension in sc.own_extensions
        or leg.agent in agents
        for leg in legs
    )


# -- the query ---------------------------------------------------------------------------


def _date(text: str, name: str) -> datetime:
    if not _DATE.match(text):
        raise BadRequest(f"{name} must be a date, YYYY-MM-DD")
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadRequest(f"{name} is not a date") from exc


def _choice(request: web.Request, name: str, allowed: set[str]) -> str | None:
    value = request.query.get(name, "")
    if value and value not in allowed:
        raise BadRequest(f"{name} must be one of: {', '.join(sorted(allowed))}")
    return value or None


def _matching(request: web.Request, name: str, shape: re.Pattern[str]) -> str | None:
    value = request.query.get(name, "").strip()
    if value and not shape.match(value):
        raise BadRequest(f"{name} has characters it cannot hold")
    return value or None


def call_query(request: web.Request) -> CallQuery:
    """The filters and page of the request (an unknown value is a 400, never ignored)."""
    q = request.query
    since = _date(q["from"], "from") if q.get("from") else None
    until = _date(q["to"], "to") + timedelta(days=1) if q.get("to") else None
    limit_text = q.get("limit", str(PAGE_SIZE))
    if (
        not (limit_text.isascii() and limit_text.isdigit())
        or not 1 <= int(limit_text) <= MAX_PAGE_SIZE
    ):
        raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    after = None
    if q.get("after"):
        match = _AFTER.match(q["after"])
        if not match:
            raise BadRequest("after must be the next_after of the previous page")
        stamp = datetime.fromtimestamp(int(match.group(1)) / 1_000_000, tz=UTC)
        after = (stamp, match.group(2))
    return CallQuery(
        since=since,
        until=until,
        direction=_choice(request, "direction", {d.value for d in Direction}),
        outcome=_choice(request, "outcome", {o.value for o in Outcome}),
        extension=_matching(request, "extension", _NUMBER),
        queue=_matching(request, "queue", _NAME),
        number=_matching(request, "number", _NUMBER),
        limit=int(limit_text),
        after=after,
    )


def _after_token(after: tuple[datetime, str] | None) -> str | None:
    if after is None:
        return None
    stamp, uuid = after
    micros = (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{micros}_{uuid}"


def call_view(record: CallRecord) -> dict[str, Any]:
    """A leg as the API and the pages show it (names and numbers are data)."""
    return {
        "id": record.call_uuid,
        "uuid": record.uuid,
        "leg": record.leg.value,
        "direction": record.direction.value,
        "outcome": record.outcome.value,
        "hangup_cause": record.hangup_cause,
        "from_number": record.from_number,
        "from_name": record.from_name,
        "to_number": record.to_number,
        "did": record.did,
        "from_extension": record.from_extension,
        "to_extension": record.to_extension,
        "queue": record.queue,
        "agent": record.agent,
        "started_at": record.started_at.isoformat(),
        "answered_at": record.answered_at.isoformat() if record.answered_at else None,
        "ended_at": record.ended_at.isoformat(),
        "ring_seconds": record.ring_seconds,
        "talk_seconds": record.talk_seconds,
        "node": record.node,
        "gateway": record.gateway,
    }


def _service_seconds(request: web.Request) -> int:
    text = request.query.get("service_seconds", str(SERVICE_SECONDS))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 3600:
        raise BadRequest("service_seconds must be an integer from 1 to 3600")
    return int(text)


# -- pages -------------------------------------------------------------------------------


@routes.get("/t/{tenant}/calls")
async def calls_page(request: web.Request) -> web.StreamResponse:
    sc = _calls_scope(request)
    query = call_query(request)
    db = portal_of(request).db
    page = await db.run(read_calls, sc.tenant_id, _restrict(sc, query))
    totals = None
    if sc.sees_all:
        totals = await db.run(
            call_totals, sc.tenant_id, replace(query, after=None), _service_seconds(request)
        )
    filters = {k: v for k, v in request.query.items() if k not in {"after"}}
    return render(
        request,
        "calls.html",
        tenant=sc.state.tenant,
        admin=sc.sees_all,
        calls=[call_view(c) for c in page.calls],
        recordings=await recordings_of_calls(request, sc, (c.call_uuid for c in page.calls)),
        totals=totals,
        filters=filters,
        next_after=_after_token(page.next_after),
        queues=sorted(sc.state.queues) if sc.sees_all else [],
        directions=[d.value for d in Direction],
        outcomes=[o.value for o in Outcome],
    )


@routes.get("/t/{tenant}/calls/{call}")
async def call_page(request: web.Request) -> web.StreamResponse:
    sc = _calls_scope(request)
    legs = await _legs(request, sc)
    return render(request, "call.html", tenant=sc.state.tenant, legs=[call_view(c) for c in legs])


async def _legs(request: web.Request, sc: TenantScope) -> tuple[CallRecord, ...]:
    call_id = request.match_info["call"]
    if not _CALL_ID.match(call_id):
        raise NotFound("no such call")
    legs = await portal_of(request).db.run(read_call, sc.tenant_id, call_id)
    if not legs or not _may_see(sc, legs):
        raise NotFound("no such call")
    return legs


def _cell(value: object) -> str:
    """Formula-safe: a spreadsheet runs a cell starting with = + - @ (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


CSV_COLUMNS = (
    "started_at", "direction", "outcome", "from_number", "from_name", "to_number", "did",
    "from_extension", "to_extension", "queue", "agent", "ring_seconds", "talk_seconds",
    "hangup_cause", "id",
)  # fmt: skip


@routes.get("/t/{tenant}/calls.csv")
async def calls_csv(request: web.Request) -> web.StreamResponse:
    """Every filtered call, streamed a batch at a time (keyset pages): memory stays at one
    batch whatever the number of rows."""
    sc = _calls_scope(request)
    query = replace(_restrict(sc, call_query(request)), limit=CSV_BATCH, after=None)
    db = portal_of(request).db
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="calls-{sc.tenant_id}.csv"',
        }
    )
    await response.prepare(request)
    await response.write(_csv_line(CSV_COLUMNS).encode())
    while True:
        page = await db.run(read_calls, sc.tenant_id, query)
        chunk = "".join(_csv_line(tuple(call_view(c)[k] for k in CSV_COLUMNS)) for c in page.calls)
        await response.write(chunk.encode())
        if page.next_after is None:
            break
        query = replace(query, after=page.next_after)
    await response.write_eof()
    return response


def _csv_line(values: Sequence[object]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([_cell(v) for v in values])
    return out.getvalue()


@routes.get("/platform/calls")
async def platform_calls(request: web.Request) -> web.StreamResponse:
    volumes = await _volumes(request)
    return render(request, "platform_calls.html", volumes=volumes, days=_days(request))


def _days(request: web.Request) -> int:
    text = request.query.get("days", "30")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 400:
        raise BadRequest("days must be an integer from 1 to 400")
    return int(text)


async def _volumes(request: web.Request) -> list[dict[str, Any]]:
    me = principal(request)
    if not me.super_admin:
        raise NotFound("not found")
    state = portal_of(request).deps.applied_state()
    since = datetime.now(UTC) - timedelta(days=_days(request))
    volumes = await portal_of(request).db.run(call_volumes, visible_tenant_ids(me, state), since)
    return [
        {
            "tenant": v.tenant_id,
            "calls": v.calls,
            "answered": v.answered,
            "talk_seconds": v.talk_seconds,
        }
        for v in volumes
    ]


# -- API -----------------------------------------------------------------------------------


async def api_views(
    request: web.Request, sc: TenantScope, records: Sequence[CallRecord]
) -> list[dict[str, Any]]:
    """The API's legs: ``call_view`` with the call's ``recordings``, the links the call
    history page shows (only those ``sc`` may hear; none when the file is gone)."""
    links = await recordings_of_calls(request, sc, (c.call_uuid for c in records))
    return [{**call_view(c), "recordings": links.get(c.call_uuid, [])} for c in records]


@routes.get(API)
async def api_calls(request: web.Request) -> web.StreamResponse:
    sc = _calls_scope(request)
    page = await portal_of(request).db.run(
        read_calls, sc.tenant_id, _restrict(sc, call_query(request))
    )
    return ok(
        {
            "calls": await api_views(request, sc, page.calls),
            "next_after": _after_token(page.next_after),
        }
    )


@routes.get(API + "/totals")
async def api_totals(request: web.Request) -> web.StreamResponse:
    sc = _calls_scope(request)
    sc.require_all()
    query = replace(call_query(request), after=None)
    totals = await portal_of(request).db.run(
        call_totals, sc.tenant_id, query, _service_seconds(request)
    )
    return ok(
        {
            "calls": totals.calls,
            "answered": totals.answered,
            "missed": totals.missed,
            "average_talk_seconds": totals.average_talk_seconds,
            "queues": [
                {
                    "queue": q.queue,
                    "calls": q.calls,
                    "answered": q.answered,
                    "answered_within": q.answered_within,
                }
                for q in totals.queues
            ],
        }
    )


@routes.get(API + "/{call}")
async def api_call(request: web.Request) -> web.StreamResponse:
    sc = _calls_scope(request)
    return ok({"legs": await api_views(request, sc, await _legs(request, sc))})


@routes.get(V1 + "/call-volumes")
async def api_volumes(request: web.Request) -> web.StreamResponse:
    return ok({"volumes": await _volumes(request)})


# -- OpenAPI -------------------------------------------------------------------------------


def _filters() -> list[dict[str, Any]]:
    def q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    return [
        TENANT,
        q("from", string(pattern=r"^\d{4}-\d{2}-\d{2}$")),
        q("to", string(pattern=r"^\d{4}-\d{2}-\d{2}$")),
        q("direction", string(enum=[d.value for d in Direction])),
        q("outcome", string(enum=[o.value for o in Outcome])),
        q("extension", string(pattern=_NUMBER.pattern)),
        q("queue", string(pattern=_NAME.pattern)),
        q("number", string(pattern=_NUMBER.pattern)),
    ]


def _call_schema() -> dict[str, Any]:
    text, maybe = string(), string(True)
    return obj(
        ["id", "uuid", "leg", "direction", "outcome", "started_at", "ended_at"],
        id=text, uuid=text, leg=string(enum=["a", "b"]),
        direction=string(enum=[d.value for d in Direction]),
        outcome=string(enum=[o.value for o in Outcome]),
        hangup_cause=text, from_number=text, from_name=text, to_number=text, did=maybe,
        from_extension=maybe, to_extension=maybe, queue=maybe, agent=maybe,
        started_at=text, answered_at=maybe, ended_at=text,
        ring_seconds=integer(), talk_seconds=integer(), node=text, gateway=maybe,
        recordings=array(text),
    )  # fmt: skip


def _paths() -> dict[str, Any]:
    page = [
        {"name": "limit", "in": "query", "required": False,
         "schema": integer(minimum=1, maximum=MAX_PAGE_SIZE)},
        {"name": "after", "in": "query", "required": False,
         "schema": string(pattern=_AFTER.pattern)},
    ]  # fmt: skip
    service = {"name": "service_seconds", "in": "query", "required": False,
               "schema": integer(minimum=1, maximum=3600)}  # fmt: skip
    call_param = {"name": "call", "in": "path", "required": True,
                  "schema": string(pattern=_CALL_ID.pattern)}  # fmt: skip
    return {
        "/tenants/{tenant}/calls": {
            "get": operation(
                "calls the caller may see (own extensions; agents: queue calls answered; "
                "admins: all), newest first; page on with next_after; each with the links "
                "of its recordings the caller may hear (admins: all; others: of their own "
                "extensions and of queue calls their own agents answered)",
                obj(["calls", "next_after"], calls=array(_call_schema()), next_after=string(True)),
                params=[*_filters(), *page],
            )
        },
        "/tenants/{tenant}/calls/totals": {
            "get": operation(
                "totals of the filtered calls and each queue's service level (tenant admins)",
                obj(
                    ["calls", "answered", "missed", "average_talk_seconds", "queues"],
                    calls=integer(),
                    answered=integer(),
                    missed=integer(),
                    average_talk_seconds={"type": "number"},
                    queues=array(
                        obj(
                            ["queue", "calls", "answered", "answered_within"],
                            queue=string(),
                            calls=integer(),
                            answered=integer(),
                            answered_within=integer(),
                        )
                    ),
                ),
                params=[*_filters(), service],
            )
        },
        "/tenants/{tenant}/calls/{call}": {
            "get": operation(
                "every leg of one call",
                obj(["legs"], legs=array(_call_schema())),
                params=[TENANT, call_param],
            )
        },
        "/call-volumes": {
            "get": operation(
                "per tenant: calls, answered and talk seconds of the last days (super admins)",
                obj(
                    ["volumes"],
                    volumes=array(
                        obj(
                            ["tenant", "calls", "answered", "talk_seconds"],
                            tenant=string(),
                            calls=integer(),
                            answered=integer(),
                            talk_seconds=integer(),
                        )
                    ),
                ),
                params=[
                    {
                        "name": "days",
                        "in": "query",
                        "required": False,
                        "schema": integer(minimum=1, maximum=400),
                    }
                ],
            )
        },
    }


FEATURE = Feature(name="call history", routes=(routes,), nav=nav, openapi_paths=_paths)

"""Call recordings of a tenant: a page, ``/t/{tenant}/recordings``, and the API,
``GET /api/v1/tenants/{tenant}/recordings`` (list, filter) and ``.../recordings/file``
(play with ``Range``, or download).

The recordings directory is the record: each file's path says which queue or extension it
belongs to, and a note beside it which agent answered a queue call (``core.recording_names``). Tenant admins (and super admins) see
every recording of the tenant; anyone else sees the recordings of calls on their own
extensions and of queue calls their own agents answered. A file the caller may not see is
404 like an unknown one; it is served only through ``tenant_files`` (no ``..``, no links).

Whatever the disk does, the page says it and nothing else breaks: a recordings directory
that does not exist yet lists nothing, an unreadable one says so, a file deleted since the
list was drawn answers 404 with a message, an empty or cut-short file is flagged.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from reconciler.core.recording_names import RecordingNames
from reconciler.web.access import TenantScope
from reconciler.web.context import portal_of, render, scope
from reconciler.web.errors import BadRequest, NotFound
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, ok, query_limit, query_offset
from reconciler.web.openapi import LIMIT, OFFSET, TENANT, array, integer, obj, operation, string
from reconciler.web.recording_index import Recording, Recordings, tenant_names
from reconciler.web.tenant_files import TenantFile, file_response, open_tenant_file

routes = web.RouteTableDef()
API = V1 + "/tenants/{tenant}/recordings"
# a WAV header alone is 44 bytes: anything not longer holds no audio
MIN_AUDIO_BYTES = 45
INDEXING = "still indexing this tenant's recordings: the list is not complete yet"
FILTERS = {
    "date": re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    "queue": re.compile(r"^[a-z][a-z0-9_-]{0,62}$"),
    "extension": re.compile(r"^[0-9]{1,15}$"),
    "agent": re.compile(r"^[a-z][a-z0-9_-]{0,62}$"),
}


def view(recording: Recording, tenant: str) -> dict[str, Any]:
    name = recording.name
    query = urlencode({"path": name.path})
    return {
        "path": name.path,
        "queue": name.queue,
        "agent": name.agent,
        "extension": name.extension,
        "direction": name.direction,
        "date": recording.day,
        "call_uuid": name.uuid,
        "size": recording.size,
        "recorded_at": datetime.fromtimestamp(recording.mtime, UTC).isoformat(),
        "problem": None if recording.size >= MIN_AUDIO_BYTES else "empty or cut short",
        "url": f"{V1}/tenants/{tenant}/recordings/file?{query}",
    }


def read_recordings(request: web.Request, sc: TenantScope) -> Awaitable[Recordings]:
    """The tenant's recordings from this process's index (revalidated against the disk)."""
    index = portal_of(request).recording_index
    names, key = names_of(sc)
    return asyncio.to_thread(index.read, sc.tenant_id, names, key)


def names_of(sc: TenantScope) -> tuple[RecordingNames, object]:
    """How the tenant's paths read back, and a key that changes when that does."""
    _, names, key = tenant_names(sc.state)
    return names, key


def visible(sc: TenantScope, recording: Recording) -> bool:
    """Admins see all; others the calls of their own extensions and of their own agents."""
    if sc.sees_all:
        return True
    name = recording.name
    if name.extension is not None:
        return name.extension in sc.own_extensions
    agent = sc.state.agents.get(name.agent or "")
    return agent is not None and sc.own_agent(agent)


def filters(request: web.Request) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for key, shape in FILTERS.items():
        value = request.query.get(key, "")
        if value:
            if shape.fullmatch(value) is None:
                raise BadRequest(f"{key} is not a valid filter value")
            chosen[key] = value
    return chosen


def allowed_keys(sc: TenantScope) -> list[tuple[str, str]] | None:
    """What ``visible`` allows, as the index's filter keys: None for all."""
    if sc.sees_all:
        return None
    agents = [("agent", a.name) for a in sc.visible_agents()]
    return [("extension", number) for number in sorted(sc.own_extensions)] + agents


async def recordings_of_calls(
    request: web.Request, sc: TenantScope, call_uuids: Iterable[str]
) -> dict[str, list[str]]:
    """``{call uuid: [recording url, ...]}`` of the recordings ``sc`` may see: the call
    history's recording column. A recording is named after the caller's channel, the call's
    a leg (``record_session`` runs there, and a queue's ``{uuid}`` is the caller's), so no
    column or CDR variable is needed; a file deleted on disk drops its link."""
    wanted = set(call_uuids)
    if not wanted:
        return {}
    found = await read_recordings(request, sc)
    return {
        uuid: urls
        for uuid in wanted
        if (
            urls := [
                view(r, sc.tenant_id)["url"] for r in found.by_call.get(uuid, ()) if visible(sc, r)
            ]
        )
    }


async def listing(request: web.Request, sc: TenantScope) -> dict[str, Any]:
    chosen = filters(request)
    limit, offset = query_limit(request), query_offset(request)
    found = await read_recordings(request, sc)
    shown = found.select(chosen, allowed_keys(sc))
    page: Sequence[Recording] = shown[offset : offset + limit]
    return {
        "recordings": [view(r, sc.tenant_id) for r in page],
        "total": len(shown),
        "problem": found.problem,
        "indexing": INDEXING if found.indexing else None,
    }


@routes.get("/t/{tenant}/recordings")
async def recordings_page(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    found = await listing(request, sc)
    chosen = filters(request)
    limit, offset = query_limit(request), query_offset(request)
    return render(
        request,
        "recordings.html",
        scope=sc,
        filters=chosen,
        newer=_page_query(chosen, limit, offset - limit) if offset > 0 else None,
        older=_page_query(chosen, limit, offset + limit)
        if offset + limit < found["total"]
        else None,
        first=offset + 1,
        **found,
    )


def _page_query(chosen: dict[str, str], limit: int, offset: int) -> str:
    """The query of another page with the same filters."""
    return "?" + urlencode({**chosen, "limit": str(limit), "offset": str(max(0, offset))})


@routes.get(API)
async def api_recordings(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    return ok(await listing(request, sc))


@routes.get(API + "/file")
async def api_recording_file(request: web.Request) -> web.StreamResponse:
    """One recording's audio; ``download=true`` asks the browser to save it."""
    sc = scope(request, request.match_info["tenant"])
    path = request.query.get("path", "")
    root = Path(portal_of(request).config.audio_roots.recordings)
    name = names_of(sc)[0].read(path)
    if name is not None and name.queue is not None and name.uuid:
        # who answered: the index has read the notes
        listed = (await read_recordings(request, sc)).by_call.get(name.uuid, ())
        name = next((r.name for r in listed if r.name.path == path), name)
    if name is None or not visible(sc, Recording(name, 0, 0.0)):
        raise NotFound("no such recording")
    try:
        opened: TenantFile = await asyncio.to_thread(open_tenant_file, root, sc.tenant_id, path)
    except NotFound:
        raise NotFound("the recording is gone (deleted on disk, or past its retention)") from None
    return await file_response(request, opened, download=request.query.get("download") == "true")


def _paths() -> dict[str, Any]:
    recording = obj(
        ["path", "date", "size", "recorded_at", "url"],
        path=string(),
        queue=string(True),
        agent=string(True),
        extension=string(True),
        direction=string(True, enum=["in", "out", None]),
        date=string(),
        call_uuid=string(True),
        size=integer(),
        recorded_at=string(format="date-time"),
        problem=string(True),
        url=string(),
    )
    filter_params = [
        {"name": key, "in": "query", "required": False, "schema": string(pattern=shape.pattern)}
        for key, shape in FILTERS.items()
    ]
    audio = {
        "200": {"description": "the audio", "content": {"audio/*": {}}},
        "206": {"description": "the requested byte range", "content": {"audio/*": {}}},
        "416": {"description": "the range is beyond the file"},
    }
    return {
        "/tenants/{tenant}/recordings": {
            "get": operation(
                "call recordings: all of the tenant for admins; of your own extensions and "
                "agents otherwise; newest first (indexing: a note while the first look at "
                "the tenant's directory is not over, the list then incomplete)",
                obj(
                    ["recordings", "total", "problem", "indexing"],
                    recordings=array(recording),
                    total=integer(),
                    problem=string(True),
                    indexing=string(True),
                ),
                params=[TENANT, *filter_params, LIMIT, OFFSET],
            )
        },
        "/tenants/{tenant}/recordings/file": {
            "get": {
                **operation(
                    "one recording's audio (Range requests; download=true to save it)",
                    None,
                    params=[
                        TENANT,
                        {"name": "path", "in": "query", "required": True, "schema": string()},
                        {
                            "name": "download",
                            "in": "query",
                            "required": False,
                            "schema": string(enum=["true", "false"]),
                        },
                    ],
                ),
                "responses": {
                    **operation("", None)["responses"],
                    **audio,
                },
            }
        },
    }


FEATURE = Feature(name="recordings", routes=(routes,), openapi_paths=_paths)

"""The aiohttp application of the xml_curl listener: ``POST /freeswitch/xml``, ``GET /healthz``,
``GET /readyz``. Routes, basic auth (constant time), body bounds, the answer cache, probes.

No database, no ESL, nothing blocking on the request path: a slow answer stalls all SIP
handling of the switch's profile (captured), and ESL ``queue load`` itself fetches from here.

Hostile input is bounded before it costs anything: a declared body over ``max_body_bytes``
is refused before it is read, a body that trickles in is given ``body_timeout``, and the
rendered-answer cache only ever holds answers for users that exist in the snapshot (a miss
grows nothing). Malformed requests and internal errors are logged through a ``LogThrottle``.

An internal error answers "not found" with HTTP 200 rather than a 500: FreeSWITCH treats both
the same way (falls back to its static files, which hold no tenant data), and a traceback
helps nobody on the wire. The ``observer`` hook counts every request with labels from the
fixed sets ``Section`` and ``Result``.

/readyz is JSON: ready (503) until a snapshot is loaded; with a ``persist_status`` it also
says whether the served snapshot is on disk, without ever failing readiness over it.

Neighbours: ``reconciler.serve.xmlcurl`` (the pure answer), ``reconciler.serve.listener``
(limits and the server), ``reconciler.daemon`` (owns the snapshot and the metrics).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from aiohttp import web

from reconciler.serve.gateways import PasswordOf
from reconciler.serve.listener import ListenerLimits
from reconciler.serve.logthrottle import LogThrottle
from reconciler.serve.outcomes import Result, Section
from reconciler.serve.persist import PersistStatus
from reconciler.serve.snapshot import DirectoryUser, Lookups, ServedTenant
from reconciler.serve.templating import Templates
from reconciler.serve.xmlcurl import (
    CONTENT_TYPE,
    XML_PATH,
    MalformedRequest,
    XmlAnswer,
    answer,
    directory_user,
    parse_form,
    render_directory,
    section_of,
)

log = logging.getLogger(__name__)

AUTH_REALM = "pbx-reconciler"
DIRECTORY_CACHE_SIZE = 20_000


class Observer(Protocol):
    """Told about every request: section (a ``Section`` value), result (a ``Result`` value),
    seconds spent. Never a value chosen by the request: these become metric labels."""

    def __call__(self, section: str, result: str, seconds: float) -> None: ...


class Encoded(NamedTuple):
    """An answer with its body already encoded (what the HTTP side sends)."""

    status: int
    body: bytes
    section: Section
    result: Result

    @classmethod
    def of(cls, answer: XmlAnswer) -> Encoded:
        return cls(answer.status, answer.body.encode(), answer.section, answer.result)


class DirectoryAnswers:
    """Rendered directory answers of the current snapshot, keyed by the snapshot's own
    (domain, number): phones re-register the same users over and over, and the template
    is the dearest part of the hottest path. Only users that exist are ever cached, so the
    size is bounded by the snapshot (and ``max_entries``), never by what requests say.
    A new snapshot starts an empty cache."""

    def __init__(
        self,
        templates: Templates,
        max_entries: int = DIRECTORY_CACHE_SIZE,
        password_of: PasswordOf | None = None,
    ) -> None:
        self._templates = templates
        self._password_of = password_of
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str], Encoded] = {}
        self._snapshot: Lookups | None = None

    def __len__(self) -> int:
        return len(self._cache)

    def answer(self, snapshot: Lookups | None, form: Mapping[str, str]) -> Encoded:
        if snapshot is None or form.get("section") != "directory":
            return Encoded.of(answer(snapshot, form, self._templates, self._password_of))
        if self._snapshot is not snapshot:
            self._cache.clear()
            self._snapshot = snapshot
        found = directory_user(snapshot, form)
        if found is None:
            return Encoded.of(answer(snapshot, form, self._templates))
        tenant, user = found
        key = (tenant.domain, user.number)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._render(tenant, user)
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _render(self, tenant: ServedTenant, user: DirectoryUser) -> Encoded:
        body = render_directory(self._templates, tenant, user).encode()
        return Encoded(200, body, Section.DIRECTORY, Result.FOUND)


DIRECTORY_ANSWERS = web.AppKey("directory_answers", DirectoryAnswers)


def make_app(
    get_snapshot: Callable[[], Lookups | None],
    templates: Templates,
    *,
    auth: tuple[str, str] | None,
    observer: Observer | None = None,
    limits: ListenerLimits | None = None,
    persist_status: Callable[[], PersistStatus | None] | None = None,
    gateway_password: PasswordOf | None = None,
) -> web.Application:
    """The xml_curl application; serve it with ``listener.start_server``. ``auth`` is the
    ``gateway-credentials`` pair FreeSWITCH sends (None: no auth). ``gateway_password``:
    a carrier gateway's password from the host's secrets source, handed out only behind
    ``auth`` (without it, no gateway is ever served)."""
    limits = limits or ListenerLimits()
    password_of = gateway_password if auth is not None else None
    handler = _XmlCurlHandler(get_snapshot, templates, auth, observer, limits, password_of)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        payload = readiness(get_snapshot(), persist_status() if persist_status else None)
        return web.Response(
            text=json.dumps(payload) + "\n",
            status=200 if payload["ready"] else 503,
            content_type="application/json",
        )

    async def flush_logs(app: web.Application) -> None:
        handler.flush_logs()

    app = web.Application(client_max_size=limits.max_body_bytes)
    app[DIRECTORY_ANSWERS] = handler.answers
    app.router.add_post(XML_PATH, handler.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.on_cleanup.append(flush_logs)
    return app


def readiness(snapshot: Lookups | None, persist: PersistStatus | None) -> dict[str, Any]:
    """/readyz's body. Not persisted is reported, never a reason to stop serving."""
    payload: dict[str, Any] = {
        "ready": snapshot is not None,
        "generation": snapshot.generation if snapshot is not None else None,
    }
    if snapshot is None:
        payload["detail"] = "no snapshot loaded"
    if persist is not None:
        payload["snapshot_persisted"] = persist.persisted
        payload["snapshot_persisted_at"] = persist.persisted_at
        if not persist.persisted and snapshot is not None:
            payload["detail"] = f"serving, but the snapshot is not persisted: {persist.detail}"
    return payload


class _XmlCurlHandler:
    """``POST /freeswitch/xml``: auth, bounded body, form, answer, observer."""

    def __init__(
        self,
        get_snapshot: Callable[[], Lookups | None],
        templates: Templates,
        auth: tuple[str, str] | None,
        observer: Observer | None,
        limits: ListenerLimits,
        password_of: PasswordOf | None = None,
    ) -> None:
        self._get_snapshot = get_snapshot
        self._expected = f"{auth[0]}:{auth[1]}".encode() if auth is not None else None
        self._observer = observer
        self._limits = limits
        self._not_found = templates.not_found.encode()
        self.answers = DirectoryAnswers(templates, password_of=password_of)
        self._malformed_log = LogThrottle(log, "malformed xml_curl requests")
        self._error_log = LogThrottle(log, "xml_curl internal errors")

    def flush_logs(self) -> None:
        self._malformed_log.flush()
        self._error_log.flush()

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if self._expected is not None and not _authorized(request, self._expected):
            self._observe(Section.OTHER, Result.UNAUTHORIZED, started)
            return web.Response(
                status=401,
                text="unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'},
            )
        body_or_refusal = await self._read_body(request, started)
        if isinstance(body_or_refusal, web.Response):
            return body_or_refusal
        try:
            form = parse_form(body_or_refusal)
        except MalformedRequest as exc:
            self._malformed_log.log(
                logging.WARNING, "xml_curl: malformed request from %s: %s", request.remote, exc
            )
            self._observe(Section.OTHER, Result.BAD_REQUEST, started)
            return web.Response(status=400, text=f"malformed request: {exc}\n")
        try:
            result = self.answers.answer(self._get_snapshot(), form)
        except Exception:
            section = section_of(form)
            self._error_log.log(
                logging.ERROR,
                "xml_curl: internal error answering a %s request",
                section,
                exc_info=True,
            )
            self._observe(section, Result.ERROR, started)
            return web.Response(body=self._not_found, content_type=CONTENT_TYPE, charset="utf-8")
        self._observe(result.section, result.result, started)
        return web.Response(
            body=result.body, status=result.status, content_type=CONTENT_TYPE, charset="utf-8"
        )

    async def _read_body(self, request: web.Request, started: float) -> bytes | web.Response:
        """The body, or the response refusing it: 413 when declared or found too large
        (decided before reading a declared one), 408 when it does not arrive in time."""
        declared = request.content_length
        try:
            if declared is not None and declared > self._limits.max_body_bytes:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=self._limits.max_body_bytes, actual_size=declared
                )
            if request.content.is_eof():
                return await request.read()
            async with asyncio.timeout(self._limits.body_timeout):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._observe(Section.OTHER, Result.TOO_LARGE, started)
            response = web.Response(status=413, text="request body too large\n")
        except TimeoutError:
            self._observe(Section.OTHER, Result.TIMEOUT, started)
            response = web.Response(status=408, text="request body too slow\n")
        response.force_close()
        return response

    def _observe(self, section: Section, result: Result, started: float) -> None:
        if self._observer is None:
            return
        try:
            # the members are the label strings themselves (StrEnum)
            self._observer(section, result, time.perf_counter() - started)
        except Exception:
            self._error_log.log(logging.ERROR, "xml_curl observer failed", exc_info=True)


def _authorized(request: web.Request, expected: bytes) -> bool:
    return basic_auth_matches(request.headers.get("Authorization", ""), expected)


def basic_auth_matches(header: str, expected: bytes) -> bool:
    """Basic auth, compared in constant time over the whole ``user:pass``."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)

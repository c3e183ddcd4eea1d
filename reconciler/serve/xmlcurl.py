"""The mod_xml_curl endpoint: FreeSWITCH's form in, one tenant's XML out.

Three layers, so each can be tested alone:

* ``parse_form``: the body exactly as FreeSWITCH 1.10 writes it (the first five fields raw,
  the rest url-encoded by ``switch_url_encode``, which leaves ``,`` alone and never writes
  ``+`` for a blank), or ``MalformedRequest`` (HTTP 400).
* ``answer``: pure, ``(snapshot, form, templates) -> XmlAnswer``. Every lookup is a dict hit
  in the immutable ``Snapshot``; nothing from the request is echoed but a dialplan context
  name. Anything unknown, unserved or ambiguous is "not found" (or, in the dialplan, a
  context that rejects the call), never a neighbour tenant's data.
* ``make_app``: aiohttp routes, basic auth (constant-time), health and readiness probes.
  No database, no ESL, nothing blocking on the request path: a slow answer stalls all SIP
  handling of the switch's profile (captured), and ESL ``queue load`` itself fetches from here.

An internal error answers "not found" with HTTP 200 rather than a 500: FreeSWITCH treats both
the same way (falls back to its static files, which hold no tenant data), and a traceback
helps nobody on the wire. Errors are logged; the ``observer`` hook counts every answer.

Neighbours: ``reconciler.serve.snapshot`` (lookups), ``reconciler.serve.templating`` (XML),
``reconciler.daemon.app`` (owns the snapshot and the metrics behind ``observer``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

from aiohttp import web

from reconciler.core.model import PUBLIC_CONTEXT
from reconciler.serve.snapshot import RouteKind, Snapshot
from reconciler.serve.templating import Templates, dialplan_context

log = logging.getLogger(__name__)

XML_PATH = "/freeswitch/xml"
CONTENT_TYPE = "text/xml"
MAX_BODY_BYTES = 256 * 1024  # FreeSWITCH's largest captured body is ~6 KB
AUTH_REALM = "pbx-reconciler"

# The five fields mod_xml_curl writes itself, unencoded, at the start of every body.
RAW_FIELDS = ("hostname", "section", "tag_name", "key_name", "key_value")
_RAW_FIELD_SET = frozenset(RAW_FIELDS)
_RAW_COUNT = len(RAW_FIELDS)
# Fields an answer depends on: a second copy makes the request ambiguous, so it is refused
# rather than resolved by position (a raw key_value holding "&user=..." must not pick a user).
DECISION_FIELDS = frozenset(
    {
        *RAW_FIELDS,
        "purpose",
        "action",
        "user",
        "domain",
        "Hunt-Context",
        "Caller-Context",
        "Hunt-Destination-Number",
        "Caller-Destination-Number",
        "variable_user_name",
        "variable_domain_name",
        "CC-Queue",
    }
)
_HEX_DIGITS = "0123456789abcdefABCDEF"
_PERCENT_BYTE = {a + b: chr(int(a + b, 16)) for a in _HEX_DIGITS for b in _HEX_DIGITS}
# FreeSWITCH encodes control and non-ASCII bytes, so a raw one means a foreign body.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))
# A requested context name is echoed into the reply only when it is safe XML text.
_UNSAFE_CONTEXT = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


class MalformedRequest(ValueError):
    """The body is not a form FreeSWITCH would send: answered with HTTP 400."""


class XmlAnswer(NamedTuple):
    """``result`` is for metrics and logs: found | not_found | rejected (a dialplan context
    that refuses the call) | error."""

    status: int
    body: str
    section: str
    result: str


class Observer(Protocol):
    """Told about every request: section ("" when unknown), result, seconds spent.
    Results beyond ``XmlAnswer.result``: bad_request, unauthorized."""

    def __call__(self, section: str, result: str, seconds: float) -> None: ...


# --- form parsing ------------------------------------------------------------------------


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a mod_xml_curl POST body. The first five fields are taken verbatim; later
    values are percent-decoded (``+`` stays ``+``: FreeSWITCH encodes a blank as ``%20`` and
    a plus as ``%2B``). A repeated field keeps its first value, except that a repeated
    ``DECISION_FIELDS`` member is refused."""
    stray = body.translate(None, _PRINTABLE_ASCII)
    if stray:
        raise MalformedRequest(f"byte {stray[0]:#04x} is not printable ASCII")
    text = body.decode("ascii")
    form: dict[str, str] = {}
    raw_fields = _RAW_FIELD_SET
    for index, pair in enumerate(text.split("&")):
        name, sep, value = pair.partition("=")
        if not sep or not name:
            if not pair:
                continue
            raise MalformedRequest(f"field {index + 1} is not name=value")
        if "%" in value and (index >= _RAW_COUNT or name not in raw_fields):
            value = _percent_decode(name, value)
        if name in form:
            if name in DECISION_FIELDS:
                raise MalformedRequest(f"field {name!r} appears twice")
            continue
        form[name] = value
    if not form.get("section"):
        raise MalformedRequest("no section")
    return form


def _percent_decode(name: str, value: str) -> str:
    """``%XX`` escapes to UTF-8 text (invalid UTF-8 becomes U+FFFD: a phone's display name is
    no reason to refuse a call). 2-3x quicker than ``urllib.parse.unquote`` here, and it
    validates as it goes."""
    parts = value.split("%")
    decoded = [parts[0]]
    for part in parts[1:]:
        byte = _PERCENT_BYTE.get(part[:2])
        if byte is None:
            raise MalformedRequest(f"field {name!r} has a bad percent escape")
        decoded.append(byte)
        decoded.append(part[2:])
    text = "".join(decoded)
    return text if text.isascii() else text.encode("latin-1").decode("utf-8", "replace")


# --- answering ---------------------------------------------------------------------------


def answer(snapshot: Snapshot | None, form: Mapping[str, str], templates: Templates) -> XmlAnswer:
    """The XML for one request; pure. Without a snapshot everything is "not found"."""
    section = form.get("section", "")
    if snapshot is None:
        return _not_found(templates, section)
    if section == "directory":
        return _directory(snapshot, form, templates)
    if section == "dialplan":
        return _dialplan(snapshot, form, templates)
    if section == "configuration":
        return _configuration(snapshot, form, templates)
    return _not_found(templates, section)


def _not_found(templates: Templates, section: str) -> XmlAnswer:
    return XmlAnswer(200, templates.not_found, section, "not_found")


def _directory(snapshot: Snapshot, form: Mapping[str, str], templates: Templates) -> XmlAnswer:
    # gateways / network-list lookups ask for domain-wide data we do not serve
    if form.get("purpose"):
        return _not_found(templates, "directory")
    key_value = form.get("key_value", "")
    domain = form.get("domain") or key_value
    number = form.get("user", "")
    if not domain or not number:
        return _not_found(templates, "directory")
    if key_value and key_value.lower() != domain.lower():
        return _not_found(templates, "directory")
    found = snapshot.user(domain, number)
    if found is None:
        return _not_found(templates, "directory")
    tenant, user = found
    body = templates.directory.render(tenant=tenant, user=user)
    return XmlAnswer(200, body, "directory", "found")


def _dialplan(snapshot: Snapshot, form: Mapping[str, str], templates: Templates) -> XmlAnswer:
    context = form.get("Hunt-Context") or form.get("Caller-Context") or ""
    number = form.get("Hunt-Destination-Number") or form.get("Caller-Destination-Number") or ""
    if not context or _UNSAFE_CONTEXT.search(context):
        return _not_found(templates, "dialplan")

    if context == PUBLIC_CONTEXT:
        did = snapshot.did(number)
        if did is None:
            return _reject(templates, context)
        values = dialplan_context(context, "did", expression=_exact(number), did=did)
        return XmlAnswer(200, templates.dialplan.render(values), "dialplan", "found")

    found = snapshot.route(context, number)
    if found is None:
        return _reject(templates, context)
    tenant, route = found
    expression = _exact(route.number)
    if route.kind is RouteKind.FEATURE:
        agents = _calling_agents(snapshot, form, tenant.domain)
        if not agents:
            values = dialplan_context(
                context, "feature_denied", expression=expression, tenant=tenant, route=route
            )
            return XmlAnswer(200, templates.dialplan.render(values), "dialplan", "rejected")
        values = dialplan_context(
            context,
            "feature",
            expression=expression,
            tenant=tenant,
            route=route,
            agents=agents,
            status_arg=cc_argument(route.target),
        )
    else:
        values = dialplan_context(
            context, route.kind.value, expression=expression, tenant=tenant, route=route
        )
    return XmlAnswer(200, templates.dialplan.render(values), "dialplan", "found")


def _reject(templates: Templates, context: str) -> XmlAnswer:
    body = templates.dialplan.render(dialplan_context(context, "reject"))
    return XmlAnswer(200, body, "dialplan", "rejected")


def _calling_agents(snapshot: Snapshot, form: Mapping[str, str], domain: str) -> tuple[str, ...]:
    """Agents on the caller's extension. The caller is the user sofia authenticated
    (``variable_user_name``/``variable_domain_name``, set from the directory after digest
    auth), never the From user (``Caller-Username``), which anyone can write."""
    user_name = form.get("variable_user_name", "")
    user_domain = form.get("variable_domain_name", "")
    if not user_name or user_domain.lower() != domain:
        return ()
    found = snapshot.user(user_domain, user_name)
    return found[1].agents if found is not None else ()


def cc_argument(value: str) -> str:
    """One ``callcenter_config`` argument: the tokenizer splits on blanks, so a value with
    blanks is single-quoted (``'On Break'``); spelling is kept exactly."""
    return f"'{value}'" if " " in value else value


def _exact(number: str) -> str:
    """A PCRE matching exactly ``number`` (``*``, ``#`` and ``+`` escaped)."""
    return "^" + re.escape(number) + "$"


def _configuration(snapshot: Snapshot, form: Mapping[str, str], templates: Templates) -> XmlAnswer:
    if form.get("key_value") != "callcenter.conf":
        return _not_found(templates, "configuration")
    if "CC-Queue" in form:
        # a queue load/reload or a lazy load: only that queue, and a removed one must stay
        # removed (answering it would silently bring it back)
        queue = snapshot.queue(form["CC-Queue"])
        if queue is None:
            return _not_found(templates, "configuration")
        queues = [queue]
    else:
        # module load: every served queue, even none (an empty <queues/> still beats the
        # static fallback's demo queue)
        queues = list(snapshot.queues.values())
    body = templates.callcenter.render(queues=queues)
    return XmlAnswer(200, body, "configuration", "found")


# --- HTTP --------------------------------------------------------------------------------


def make_app(
    get_snapshot: Callable[[], Snapshot | None],
    templates: Templates,
    *,
    auth: tuple[str, str] | None,
    observer: Observer | None = None,
) -> web.Application:
    """The HTTP side: ``POST /freeswitch/xml``, ``GET /healthz``, ``GET /readyz``.
    ``auth`` is the ``gateway-credentials`` pair FreeSWITCH sends (None: no auth)."""
    expected = f"{auth[0]}:{auth[1]}".encode() if auth is not None else None
    not_found_body = templates.not_found.encode()

    def observe(section: str, result: str, started: float) -> None:
        if observer is None:
            return
        try:
            observer(section, result, time.perf_counter() - started)
        except Exception:
            log.exception("xml_curl observer failed")

    # Directory answers depend only on the snapshot and four fields; phones re-register the
    # same user over and over, so rendered answers are kept per snapshot (bounded), which
    # spares the template on the hottest path. A new snapshot starts an empty cache.
    cache: dict[tuple[str, ...], _Encoded] = {}
    cached_for: list[Snapshot | None] = [None]

    def cached_answer(snapshot: Snapshot | None, form: Mapping[str, str]) -> _Encoded:
        if form.get("section") != "directory" or snapshot is None:
            return _Encoded.of(answer(snapshot, form, templates))
        if cached_for[0] is not snapshot:
            cache.clear()
            cached_for[0] = snapshot
        key = tuple(form.get(name, "") for name in _DIRECTORY_KEY)
        hit = cache.get(key)
        if hit is None:
            hit = _Encoded.of(answer(snapshot, form, templates))
            if len(cache) >= DIRECTORY_CACHE_SIZE:
                cache.clear()
            cache[key] = hit
        return hit

    async def xml_curl(request: web.Request) -> web.Response:
        started = time.perf_counter()
        if expected is not None and not _authorized(request, expected):
            observe("", "unauthorized", started)
            return web.Response(
                status=401,
                text="unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'},
            )
        section = ""
        try:
            body = await request.read()
            form = parse_form(body)
            section = form["section"]
            result = cached_answer(get_snapshot(), form)
        except MalformedRequest as exc:
            log.warning("xml_curl: malformed request from %s: %s", request.remote, exc)
            observe("", "bad_request", started)
            return web.Response(status=400, text=f"malformed request: {exc}\n")
        except web.HTTPException:
            raise
        except Exception:
            log.exception("xml_curl: internal error answering a %s request", section or "?")
            observe(section, "error", started)
            return web.Response(body=not_found_body, content_type=CONTENT_TYPE, charset="utf-8")
        observe(result.section, result.result, started)
        return web.Response(
            body=result.body, status=result.status, content_type=CONTENT_TYPE, charset="utf-8"
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        snapshot = get_snapshot()
        if snapshot is None:
            return web.Response(status=503, text="no snapshot loaded\n")
        return web.Response(text=f"ready generation={snapshot.generation}\n")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(XML_PATH, xml_curl)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class _Encoded(NamedTuple):
    """An answer with its body already encoded (what the HTTP side sends)."""

    status: int
    body: bytes
    section: str
    result: str

    @classmethod
    def of(cls, answer: XmlAnswer) -> _Encoded:
        return cls(answer.status, answer.body.encode(), answer.section, answer.result)


# every form field the directory answer depends on (see _directory)
_DIRECTORY_KEY = ("purpose", "key_value", "domain", "user")
DIRECTORY_CACHE_SIZE = 20_000


def _authorized(request: web.Request, expected: bytes) -> bool:
    """Basic auth, compared in constant time over the whole ``user:pass``."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)

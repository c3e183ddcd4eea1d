"""The Jinja2 templates of the XML FreeSWITCH is served: loaded once, checked at start.

Templates ship in the top-level ``templates/`` folder (found through
``reconciler.shipped_data``: from a checkout, a wheel or a zip alike) and may be overridden
file by file from a directory (``--templates DIR``). Autoescape is on
(display names may hold ``&<>"``), undefined names are errors (a typo must not silently
serve an empty ``a1-hash``), and every template is compiled and rendered once against a
sample at load time, so a broken override fails the start, not every SIP registration.

Neighbours: ``reconciler.serve.xmlcurl`` renders these; ``reconciler.serve.snapshot`` supplies values.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2

from reconciler.core.errors import Permanent
from reconciler.core.model import Outbound
from reconciler.core.outbound import LIMIT_CAUSE, OutboundCall, Refusal, Refused
from reconciler.core.voicemail import CHECK_PROFILE, VOICEMAIL_DB, voicemail_profiles
from reconciler.serve.snapshot import (
    DidRoute,
    DirectoryUser,
    QueueConfig,
    Route,
    RouteKind,
    ServedTenant,
)
from reconciler.shipped_data import TEMPLATES, shipped_folder
from specs_schema.numbering import NumberClass

DIRECTORY = "directory.xml.j2"
DIALPLAN = "dialplan.xml.j2"
CALLCENTER = "callcenter.conf.xml.j2"
NOT_FOUND = "not_found.xml.j2"
VOICEMAIL = "voicemail.conf.xml.j2"
TEMPLATE_NAMES = (DIRECTORY, DIALPLAN, CALLCENTER, NOT_FOUND, VOICEMAIL)
VOICEMAIL_CAUSES = ",".join(
    ("USER_BUSY", "NO_ANSWER", "NO_USER_RESPONSE", "USER_NOT_REGISTERED", "SUBSCRIBER_ABSENT",
     "CALL_REJECTED", "NORMAL_TEMPORARY_FAILURE", "RECOVERY_ON_TIMER_EXPIRE")
)  # fmt: skip
"""Why a bridge to an extension may fail over to its voicemail: busy, not answered in its
timeout, not registered, declined, unreachable (its contact does not answer SIP); anything
else (the caller hung up) just ends."""


FAILOVER_CAUSES = ",".join(
    (
        "NORMAL_TEMPORARY_FAILURE",
        "NORMAL_CIRCUIT_CONGESTION",
        "SWITCH_CONGESTION",
        "DESTINATION_OUT_OF_ORDER",
        "NETWORK_OUT_OF_ORDER",
        "RECOVERY_ON_TIMER_EXPIRE",
        "GATEWAY_DOWN",
        "INVALID_GATEWAY",
        "REQUESTED_CHAN_UNAVAIL",
        "SERVICE_UNAVAILABLE",
        "BEARERCAPABILITY_NOTAVAIL",
        "FACILITY_NOT_IMPLEMENTED",
        "CHAN_NOT_IMPLEMENTED",
    )
)
"""Causes after which an outside call tries the route's next gateway: the carrier or the
path to it failed. Busy, no answer, a rejection or a wrong number end the call instead
(another carrier would only ring the same person again)."""


class TemplateLoadError(Permanent):
    """A template is missing, does not compile, or renders something that is not XML."""


@dataclass(frozen=True, slots=True)
class Templates:
    """Compiled templates; ``not_found`` is rendered once (it has no variables)."""

    directory: jinja2.Template
    dialplan: jinja2.Template
    callcenter: jinja2.Template
    not_found: str
    voicemail: str  # voicemail.conf: fixed by the profile ladder, rendered once
    source: str  # where they came from, for logs


def load_templates(override_dir: str | os.PathLike[str] | None = None) -> Templates:
    """Shipped templates, each replaced by a file of the same name in ``override_dir``."""
    folder = shipped_folder(TEMPLATES)
    shipped = {name: folder.joinpath(name).read_text(encoding="utf-8") for name in TEMPLATE_NAMES}
    loaders: list[jinja2.BaseLoader] = [jinja2.DictLoader(shipped)]
    source = "shipped templates"
    if override_dir is not None:
        directory = Path(override_dir)
        if not directory.is_dir():
            raise TemplateLoadError(f"template directory {directory} does not exist")
        loaders.insert(0, jinja2.FileSystemLoader(directory))
        overridden = sorted(n for n in TEMPLATE_NAMES if (directory / n).is_file())
        source = f"{directory} ({', '.join(overridden) or 'no overrides'}) over shipped templates"
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    compiled: dict[str, jinja2.Template] = {}
    for name in TEMPLATE_NAMES:
        try:
            compiled[name] = env.get_template(name)
        except jinja2.TemplateError as exc:
            raise TemplateLoadError(f"{name}: {exc}") from exc
    templates = Templates(
        directory=compiled[DIRECTORY],
        dialplan=compiled[DIALPLAN],
        callcenter=compiled[CALLCENTER],
        not_found=compiled[NOT_FOUND].render(),
        voicemail=compiled[VOICEMAIL].render(profiles=voicemail_profiles(), dbname=VOICEMAIL_DB),
        source=source,
    )
    _check(templates)
    return templates


def dialplan_context(
    context_name: str,
    kind: str,
    *,
    expression: str = "",
    tenant: ServedTenant | None = None,
    route: Route | None = None,
    did: DidRoute | None = None,
    agents: tuple[str, ...] = (),
    status_arg: str = "",
    box: str = "",
    check_pin: bool = True,
    record_paths: tuple[str, ...] = (),
    call: OutboundCall | Refused | None = None,
    limits: Outbound | None = None,
) -> dict[str, Any]:
    """Every variable dialplan.xml.j2 may use (all present: the environment is strict)."""
    return {
        "call": call,
        "limits": limits,
        "limit_cause": LIMIT_CAUSE,
        "failover_causes": FAILOVER_CAUSES,
        "record_paths": record_paths,
        "context_name": context_name,
        "kind": kind,
        "expression": expression,
        "tenant": tenant,
        "route": route,
        "did": did,
        "agents": agents,
        "status_arg": status_arg,
        "box": box,
        "check_pin": check_pin,
        "profile": CHECK_PROFILE,
        "voicemail_causes": VOICEMAIL_CAUSES,
    }


def _check(templates: Templates) -> None:
    """Render each template against a sample and parse it: fail at start, not per request."""
    user = DirectoryUser(
        "100", "0" * 32, "A&B <x>", "100", 1, 30, ("a@t.example",), "len120", "1" * 32
    )
    tenant = ServedTenant(
        id="t",
        domain="t.example",
        outbound_caller_id_name='"Q"',
        outbound_caller_id_number="+15550100",
        users=MappingProxyType({"100": user}),
        routes=MappingProxyType({}),
    )
    queue = QueueConfig("q@t.example", "t", (("strategy", "ring-all"),))
    renders: list[tuple[str, Any]] = [
        (DIRECTORY, lambda: templates.directory.render(tenant=tenant, user=user)),
        (CALLCENTER, lambda: templates.callcenter.render(queues=[queue])),
        (NOT_FOUND, lambda: templates.not_found),
        (VOICEMAIL, lambda: templates.voicemail),
    ]
    for context in _dialplan_samples(tenant, queue):
        renders.append(
            (f"{DIALPLAN} ({context['kind']})", lambda c=context: templates.dialplan.render(c))
        )
    for name, render in renders:
        try:
            text = render()
        except jinja2.TemplateError as exc:
            raise TemplateLoadError(f"{name}: {exc}") from exc
        try:
            root = ET.fromstring(text)  # noqa: S314 - our own render, not untrusted input
        except ET.ParseError as exc:
            raise TemplateLoadError(f"{name} does not render well-formed XML: {exc}") from exc
        if root.tag != "document":
            raise TemplateLoadError(f"{name} must render a <document>, not <{root.tag}>")


def _dialplan_samples(tenant: ServedTenant, queue: QueueConfig) -> list[dict[str, Any]]:
    """One dialplan context of every kind the template must handle."""
    feature = Route(RouteKind.FEATURE, "*22", "On Break")
    return [
        dialplan_context(
            "t.example",
            "extension",
            expression="^100$",
            tenant=tenant,
            route=Route(RouteKind.EXTENSION, "100", "100", 30, "len120"),
        ),
        dialplan_context(
            "t.example",
            "voicemail",
            expression="^\\*97$",
            tenant=tenant,
            route=Route(RouteKind.VOICEMAIL, "*97", "own"),
            box="100",
            check_pin=False,
        ),
        dialplan_context(
            "t.example",
            "queue",
            expression="^7000$",
            tenant=tenant,
            route=Route(RouteKind.QUEUE, "7000", queue.name),
        ),
        dialplan_context(
            "t.example",
            "feature",
            expression="^\\*22$",
            tenant=tenant,
            route=feature,
            agents=("a@t.example",),
            status_arg="'On Break'",
        ),
        dialplan_context(
            "t.example", "feature_denied", expression="^\\*22$", tenant=tenant, route=feature
        ),
        dialplan_context(
            "public",
            "did",
            expression="^\\+15550100$",
            did=DidRoute("+15550100", "t", "t.example", "100"),
        ),
        dialplan_context(
            "t.example",
            "outbound",
            expression="^4155550123$",
            tenant=tenant,
            call=OutboundCall(
                "+14155550123", NumberClass.NATIONAL, ("gw1", "gw2"), "+15550100", "A&B", True
            ),
            limits=Outbound("US", "+15550100"),
        ),
        dialplan_context(
            "t.example",
            "outbound_refused",
            expression="^011441632960000$",
            tenant=tenant,
            call=Refused("+441632960000", NumberClass.INTERNATIONAL, Refusal.NO_RIGHT),
        ),
        dialplan_context("nowhere", "reject"),
    ]

"""Cross-reference rules that a single field cannot express.

Pure functions over raw YAML data. Each finding is ``(loc, message)`` where ``loc`` is the
path of the offending node, so the loader can point at its line and column. Rules inside one
tenant are gathered by ``tenant_findings``; rules across tenants (domains, DIDs) in
``cross_tenant_findings``; agent contacts against the platform's gateways in
``gateway_findings``. Values echoed in messages go through ``shown`` (clipped, invisible
characters escaped): a hostile file must not write arbitrary text into CI logs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from specs_schema.models import ExtensionLength, FeatureCodes
from specs_schema.outbound_rules import gateway_problem, outbound_findings
from specs_schema.positions import Loc, format_loc, shown
from specs_schema.shapes import VOICEMAIL_CODES, gateway_contact_parts

Finding = tuple[Loc, str]
_Items = list[tuple[int, Mapping[str, Any]]]
"""``(index, item)`` of the mapping items of a list field."""

# (list field, key, what) of the values that must be unique within a tenant, ignoring case
_UNIQUE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("extensions", "number", "extension number"),
    ("users", "email", "user email"),
    ("agents", "name", "agent name"),
    ("queues", "name", "queue name"),
    ("inbound_numbers", "number", "inbound number"),
)


@dataclass(frozen=True, slots=True)
class _Claim:
    """A dialable number claimed by one resource of a tenant."""

    loc: Loc
    what: str


def _items(data: Mapping[str, Any], key: str) -> _Items:
    """``(index, item)`` for each mapping item of a list field; anything else is skipped
    (its shape error is reported by the model validation)."""
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def _text(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) else None


def tenant_findings(data: Mapping[str, Any]) -> list[Finding]:
    """All cross-reference problems of one tenant file (raw YAML data), in file order.

    Works on the raw mapping rather than the validated model so that a file with a type
    error still gets its reference errors reported in the same run.
    """
    extensions_items = _items(data, "extensions")
    agents_items = _items(data, "agents")
    queues_items = _items(data, "queues")
    extensions = _values(extensions_items, "number")
    return [
        *_duplicate_findings(data),
        *_number_clashes(data, extensions_items, queues_items),
        *_extension_lengths(data, extensions_items),
        *_user_extension_findings(_items(data, "users"), extensions),
        *_agent_extension_findings(agents_items, extensions),
        *_tier_findings(queues_items, _values(agents_items, "name")),
        *_destination_findings(
            _items(data, "inbound_numbers"), extensions, _values(queues_items, "name")
        ),
        *outbound_findings(data),
    ]


def _duplicate_findings(data: Mapping[str, Any]) -> list[Finding]:
    """No extension, user, agent, queue or inbound number twice in one tenant."""
    findings: list[Finding] = []
    for field, key, what in _UNIQUE_KEYS:
        findings += _duplicates(
            (((field, i, key), _text(item, key)) for i, item in _items(data, field)), what
        )
    return findings


def _values(items: _Items, key: str) -> set[str]:
    """The non-empty text values of ``key``: the names other resources may refer to."""
    return {value for _, item in items if (value := _text(item, key))}


def _unknown(loc: Loc, what: str, value: str, known: set[str]) -> Finding:
    """A reference to a missing resource, with the closest name as a hint for typos."""
    return loc, f"unknown {what} {shown(value)}{_hint(value, known)}"


def _user_extension_findings(users: _Items, extensions: set[str]) -> list[Finding]:
    """A user owns extensions of this tenant, each once."""
    findings: list[Finding] = []
    for ui, user in users:
        owned = user.get("extensions")
        if not isinstance(owned, list):
            continue
        seen: set[str] = set()
        for xi, number in enumerate(owned):
            if not isinstance(number, str):
                continue
            loc: Loc = ("users", ui, "extensions", xi)
            if number not in extensions:
                findings.append(_unknown(loc, "extension", number, extensions))
            if number in seen:
                findings.append((loc, f"extension {shown(number)} listed twice for this user"))
            seen.add(number)
    return findings


def _agent_extension_findings(agents: _Items, extensions: set[str]) -> list[Finding]:
    """An agent reached at an extension names one of this tenant."""
    findings: list[Finding] = []
    for ai, agent in agents:
        number = _text(agent, "extension")
        if number is not None and number not in extensions:
            findings.append(_unknown(("agents", ai, "extension"), "extension", number, extensions))
    return findings


def _tier_findings(queues: _Items, agents: set[str]) -> list[Finding]:
    """A queue's tiers name agents of this tenant, each agent at most once per queue."""
    findings: list[Finding] = []
    for qi, queue in queues:
        seen: set[str] = set()
        for ti, tier in _items(queue, "tiers"):
            name = _text(tier, "agent")
            if name is None:
                continue
            loc: Loc = ("queues", qi, "tiers", ti, "agent")
            if name not in agents:
                findings.append(_unknown(loc, "agent", name, agents))
            if name in seen:
                findings.append((loc, f"agent {shown(name)} has two tiers in this queue"))
            seen.add(name)
    return findings


def _destination_findings(dids: _Items, extensions: set[str], queues: set[str]) -> list[Finding]:
    """An inbound number routes to an extension or queue of this tenant."""
    findings: list[Finding] = []
    for di, did in dids:
        dest = did.get("destination")
        if not isinstance(dest, Mapping):
            continue
        loc: Loc = ("inbound_numbers", di, "destination")
        number = _text(dest, "extension")
        if number is not None and number not in extensions:
            findings.append(_unknown((*loc, "extension"), "extension", number, extensions))
        queue_name = _text(dest, "queue")
        if queue_name is not None and queue_name not in queues:
            findings.append(_unknown((*loc, "queue"), "queue", queue_name, queues))
    return findings


def cross_tenant_findings(files: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Finding]]:
    """Domains and DIDs must be unique across all tenants; reported on every file involved.

    ``files`` maps a file name to its raw tenant data.
    """
    found: dict[str, list[Finding]] = {}
    domains: dict[str, list[str]] = {}
    dids: dict[str, list[tuple[str, int]]] = {}
    for file, data in files.items():
        domain = _text(data, "domain")
        if domain:
            domains.setdefault(domain.lower(), []).append(file)
        for di, did in _items(data, "inbound_numbers"):
            number = _text(did, "number")
            if number:
                dids.setdefault(number, []).append((file, di))

    def label(file: str) -> str:
        return shown(_text(files[file], "id") or file, quote=False)

    for domain, owners in domains.items():
        if len(owners) > 1:
            for file in owners:
                others = ", ".join(label(o) for o in owners if o != file)
                found.setdefault(file, []).append(
                    (("domain",), f"domain {shown(domain)} is also used by tenant {others}")
                )
    for number, claims in dids.items():
        owners_set = {file for file, _ in claims}
        if len(owners_set) > 1:
            for file, di in claims:
                others = ", ".join(sorted(label(o) for o in owners_set if o != file))
                found.setdefault(file, []).append(
                    (
                        ("inbound_numbers", di, "number"),
                        f"inbound number {shown(number)} is also claimed by tenant {others}",
                    )
                )
    return found


def gateway_findings(
    data: Mapping[str, Any], gateways: frozenset[str] | None, platform_file: str
) -> list[Finding]:
    """Agent contacts name a gateway of the platform (``gateways:`` of ``_platform.yaml``):
    a tenant can only reach the outside through carriers the platform operates.

    ``gateways`` is None when the platform file is invalid: the contacts cannot be checked,
    so they are errors too (the tenant stays frozen rather than apply an unchecked contact).
    Contacts of the wrong shape are left to model validation.
    """
    findings: list[Finding] = []
    for ai, agent in _items(data, "agents"):
        contact = _text(agent, "contact")
        parts = gateway_contact_parts(contact) if contact is not None else None
        problem = gateway_problem(parts[0], gateways, platform_file) if parts else None
        if problem is not None:
            findings.append((("agents", ai, "contact"), problem))
    return findings


def platform_findings(data: Mapping[str, Any]) -> list[Finding]:
    """Rules of ``_platform.yaml`` beyond shapes: no gateway or super admin twice."""
    return _duplicates(
        ((("gateways", i, "name"), _text(g, "name")) for i, g in _items(data, "gateways")),
        "gateway",
    ) + _duplicates(
        (
            (("super_admins", i, "email"), _text(a, "email"))
            for i, a in _items(data, "super_admins")
        ),
        "super admin email",
    )


def _duplicates(items: Iterable[tuple[Loc, str | None]], what: str) -> list[Finding]:
    first: dict[str, Loc] = {}
    findings: list[Finding] = []
    for loc, value in items:
        if value is None:
            continue
        folded = value.lower()
        if folded in first:
            findings.append(
                (loc, f"duplicate {what} {shown(value)} (first at {_short(first[folded])})")
            )
        else:
            first[folded] = loc
    return findings


def _number_clashes(
    data: Mapping[str, Any],
    extensions: _Items,
    queues: _Items,
) -> list[Finding]:
    """Extensions, queue numbers and feature codes share one dial plan: no number twice."""
    candidates: list[tuple[str, _Claim]] = []
    for i, e in extensions:
        if (number := _text(e, "number")) is not None:
            candidates.append((number, _Claim(("extensions", i, "number"), "extension")))
    for i, q in queues:
        if (number := _text(q, "number")) is not None:
            name = _text(q, "name") or f"#{i}"
            candidates.append((number, _Claim(("queues", i, "number"), f"queue '{name}'")))
    for code, what in VOICEMAIL_CODES.items():  # fixed: a clash names the other claim
        candidates.append((code, _Claim(("settings", "voicemail"), what)))
    settings = data.get("settings")
    codes = settings.get("feature_codes") if isinstance(settings, Mapping) else None
    codes = codes if isinstance(codes, Mapping) else {}
    for field, default in FeatureCodes().model_dump().items():
        code = codes.get(field, default)
        if isinstance(code, str):
            loc: Loc = ("settings", "feature_codes", field)
            candidates.append((code, _Claim(loc, f"feature code {field}")))
    claims: dict[str, _Claim] = {}
    findings: list[Finding] = []
    for number, claim in candidates:
        other = claims.get(number)
        if other is None:
            claims[number] = claim
        elif not (other.what == "extension" and claim.what == "extension"):
            # extension-vs-extension duplicates are reported by _duplicates already
            findings.append(
                (
                    claim.loc,
                    f"number {shown(number)} is already used by {other.what} at {format_loc(other.loc)}",
                )
            )
    return findings


def _extension_lengths(data: Mapping[str, Any], extensions: _Items) -> list[Finding]:
    try:
        settings = data.get("settings") or {}
        bounds = ExtensionLength.model_validate(settings.get("extension_length") or {})
    except (ValidationError, AttributeError):
        return []  # the bad setting itself is reported by model validation
    findings: list[Finding] = []
    for i, e in extensions:
        number = _text(e, "number")
        if number is None or not number.isdigit():
            continue
        if not bounds.min <= len(number) <= bounds.max:
            findings.append(
                (
                    ("extensions", i, "number"),
                    f"extension {shown(number)} has {len(number)} digits; this tenant allows "
                    f"{bounds.min} to {bounds.max} (settings.extension_length)",
                )
            )
    return findings


def _hint(value: str, known: set[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=1)
    return f"; did you mean {shown(close[0])}?" if close else ""


def _short(loc: Loc) -> str:
    return format_loc(loc)

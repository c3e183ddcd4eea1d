"""Cross-reference rules that a single field cannot express.

Pure functions over validated models. Each finding is ``(loc, message)`` where ``loc`` is the
path of the offending node, so the loader can point at its line and column. Rules inside one
tenant live in ``tenant_findings``; rules across tenants (domains, DIDs) in
``cross_tenant_findings``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from specs_schema.models import TenantSpec
from specs_schema.positions import Loc

Finding = tuple[Loc, str]


@dataclass(frozen=True, slots=True)
class _Claim:
    """A dialable number claimed by one resource of a tenant."""

    loc: Loc
    what: str


def tenant_findings(spec: TenantSpec) -> list[Finding]:
    """All cross-reference problems of one tenant, in file order."""
    findings: list[Finding] = []
    findings += _duplicates(
        ((("extensions", i, "number"), e.number) for i, e in enumerate(spec.extensions)),
        "extension number",
    )
    findings += _duplicates(
        ((("users", i, "email"), u.email) for i, u in enumerate(spec.users)), "user email"
    )
    findings += _duplicates(
        ((("agents", i, "name"), a.name) for i, a in enumerate(spec.agents)), "agent name"
    )
    findings += _duplicates(
        ((("queues", i, "name"), q.name) for i, q in enumerate(spec.queues)), "queue name"
    )
    findings += _duplicates(
        ((("inbound_numbers", i, "number"), d.number) for i, d in enumerate(spec.inbound_numbers)),
        "inbound number",
    )
    findings += _number_clashes(spec)
    findings += _extension_lengths(spec)

    extensions = {e.number for e in spec.extensions}
    agents = {a.name for a in spec.agents}
    queues = {q.name for q in spec.queues}

    for ui, user in enumerate(spec.users):
        seen: set[str] = set()
        for xi, number in enumerate(user.extensions):
            loc: Loc = ("users", ui, "extensions", xi)
            if number not in extensions:
                findings.append((loc, f"unknown extension '{number}'{_hint(number, extensions)}"))
            if number in seen:
                findings.append((loc, f"extension '{number}' listed twice for this user"))
            seen.add(number)

    for ai, agent in enumerate(spec.agents):
        if agent.extension is not None and agent.extension not in extensions:
            findings.append(
                (
                    ("agents", ai, "extension"),
                    f"unknown extension '{agent.extension}'{_hint(agent.extension, extensions)}",
                )
            )

    for qi, queue in enumerate(spec.queues):
        seen_agents: set[str] = set()
        for ti, tier in enumerate(queue.tiers):
            loc = ("queues", qi, "tiers", ti, "agent")
            if tier.agent not in agents:
                findings.append((loc, f"unknown agent '{tier.agent}'{_hint(tier.agent, agents)}"))
            if tier.agent in seen_agents:
                findings.append((loc, f"agent '{tier.agent}' has two tiers in this queue"))
            seen_agents.add(tier.agent)

    for di, did in enumerate(spec.inbound_numbers):
        dest = did.destination
        if dest.extension is not None and dest.extension not in extensions:
            findings.append(
                (
                    ("inbound_numbers", di, "destination", "extension"),
                    f"unknown extension '{dest.extension}'{_hint(dest.extension, extensions)}",
                )
            )
        if dest.queue is not None and dest.queue not in queues:
            findings.append(
                (
                    ("inbound_numbers", di, "destination", "queue"),
                    f"unknown queue '{dest.queue}'{_hint(dest.queue, queues)}",
                )
            )
    return findings


def cross_tenant_findings(specs: Mapping[str, TenantSpec]) -> dict[str, list[Finding]]:
    """Domains and DIDs must be unique across all tenants; reported on every file involved."""
    found: dict[str, list[Finding]] = {}
    domains: dict[str, list[str]] = {}
    dids: dict[str, list[tuple[str, int]]] = {}
    for key, spec in specs.items():
        domains.setdefault(spec.domain.lower(), []).append(key)
        for di, did in enumerate(spec.inbound_numbers):
            dids.setdefault(did.number, []).append((key, di))
    for domain, owners in domains.items():
        if len(owners) > 1:
            for key in owners:
                others = ", ".join(specs[o].id for o in owners if o != key)
                found.setdefault(key, []).append(
                    (("domain",), f"domain '{domain}' is also used by tenant {others}")
                )
    for number, claims in dids.items():
        tenants = {key for key, _ in claims}
        if len(tenants) > 1:
            for key, di in claims:
                others = ", ".join(sorted(specs[o].id for o in tenants if o != key))
                found.setdefault(key, []).append(
                    (
                        ("inbound_numbers", di, "number"),
                        f"inbound number '{number}' is also claimed by tenant {others}",
                    )
                )
    return found


def _duplicates(items: Iterable[tuple[Loc, str]], what: str) -> list[Finding]:
    first: dict[str, Loc] = {}
    findings: list[Finding] = []
    for loc, value in items:
        folded = value.lower()
        if folded in first:
            findings.append((loc, f"duplicate {what} '{value}' (first at {_short(first[folded])})"))
        else:
            first[folded] = loc
    return findings


def _number_clashes(spec: TenantSpec) -> list[Finding]:
    """Extensions, queue numbers and feature codes share one dial plan: no number twice."""
    claims: dict[str, _Claim] = {}
    findings: list[Finding] = []
    candidates: list[tuple[str, _Claim]] = []
    for i, e in enumerate(spec.extensions):
        candidates.append((e.number, _Claim(("extensions", i, "number"), "extension")))
    for i, q in enumerate(spec.queues):
        candidates.append((q.number, _Claim(("queues", i, "number"), f"queue '{q.name}'")))
    codes = spec.settings.feature_codes
    for field in ("agent_available", "agent_on_break", "agent_logged_out"):
        candidates.append(
            (
                getattr(codes, field),
                _Claim(("settings", "feature_codes", field), f"feature code {field}"),
            )
        )
    for number, claim in candidates:
        other = claims.get(number)
        if other is None:
            claims[number] = claim
        elif not (other.what == "extension" and claim.what == "extension"):
            # extension-vs-extension duplicates are reported by _duplicates already
            findings.append(
                (
                    claim.loc,
                    f"number '{number}' is already used by {other.what} at {_short(other.loc)}",
                )
            )
    return findings


def _extension_lengths(spec: TenantSpec) -> list[Finding]:
    bounds = spec.settings.extension_length
    findings: list[Finding] = []
    for i, e in enumerate(spec.extensions):
        if not bounds.min <= len(e.number) <= bounds.max:
            findings.append(
                (
                    ("extensions", i, "number"),
                    f"extension '{e.number}' has {len(e.number)} digits; this tenant allows "
                    f"{bounds.min} to {bounds.max} (settings.extension_length)",
                )
            )
    return findings


def _hint(value: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _short(loc: Loc) -> str:
    from specs_schema.positions import format_loc

    return format_loc(loc)

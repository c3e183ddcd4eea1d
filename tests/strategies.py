"""Hypothesis strategies for VALID tenant specs, shared by every test suite.

``tenant_specs()`` draws one ``TenantSpec`` whose cross-references hold (users own existing
extensions, agents sit on existing extensions, tiers name existing agents, DIDs reach existing
extensions or queues; numbers, emails and names unique; extension numbers within the tenant's
length range) and whose display names are arbitrary printable Unicode, markup included.
``tenant_sets()`` draws several with distinct ids, domains and DIDs. Both stay small so
property tests run fast.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from specs_schema.models import AgentStatus, AgentType, Role, Strategy, TenantSpec

NASTY_NAMES = ('A&B <x> "q"', "Zoë Ωmega 東京", "O'Brien & Söhne", "</include>", "a]]>b")

display_names = st.one_of(
    st.sampled_from(NASTY_NAMES),
    # no control, invisible or bidi characters, no line separators, no $ { } (FreeSWITCH
    # expands them): what specs_schema.shapes.display_name_problem rejects
    st.text(
        st.characters(exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp"), exclude_characters="${}"),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(bool),
)
tenant_ids = st.from_regex(r"[a-z][a-z0-9_]{1,12}", fullmatch=True)
_label = st.from_regex(r"[a-z][a-z0-9-]{0,6}[a-z0-9]", fullmatch=True)
domains = st.builds(lambda a, b: f"{a}.{b}.example", _label, _label)
_slug = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
# a contact is only ever an E.164 number through a platform gateway ("out" must be declared
# in _platform.yaml when these specs are loaded from files)
_contact = st.sampled_from(["sofia/gateway/out/+14155550123", "sofia/gateway/out/+442071838799"])
_sound = st.sampled_from([None, "local_stream://moh", "ivr/ivr-please_hold.wav", "tenant:hold.wav"])


@st.composite
def tenant_specs(
    draw: st.DrawFn,
    *,
    tenant_id: str | None = None,
    domain: str | None = None,
    did_prefix: str | None = None,
) -> TenantSpec:
    """One valid tenant; ``did_prefix`` (3+ digits) keeps DIDs apart across tenants."""
    tid = tenant_id or draw(tenant_ids)
    dom = domain or draw(domains)
    lo = draw(st.integers(2, 4))
    hi = draw(st.integers(lo, 5))
    numbers: list[str] = draw(
        st.lists(
            st.integers(lo, hi).flatmap(lambda n: st.from_regex(rf"[0-9]{{{n}}}", fullmatch=True)),
            max_size=6,
            unique=True,
        )
    )
    extensions = [
        {
            "number": n,
            "name": draw(display_names),
            "enabled": draw(st.booleans()),
            "call_timeout": draw(st.none() | st.integers(5, 600)),
            "max_registrations": draw(st.integers(1, 5)),
            **(
                {"caller_id": {"name": draw(display_names), "number": n}}
                if draw(st.booleans())
                else {}
            ),
        }
        for n in numbers
    ]
    pick_numbers = (
        st.lists(st.sampled_from(numbers), unique=True, max_size=3) if numbers else st.just([])
    )
    users = [
        {
            "email": f"{local}@{dom}",
            "name": draw(display_names),
            "role": draw(st.sampled_from(list(Role))).value,
            "extensions": draw(pick_numbers),
        }
        for local in draw(st.lists(_slug, max_size=4, unique=True))
    ]
    agents = []
    for name in draw(st.lists(_slug, max_size=3, unique=True)):
        target = (
            {"extension": draw(st.sampled_from(numbers))}
            if numbers and draw(st.booleans())
            else {"contact": draw(_contact)}
        )
        agents.append(
            {
                "name": name,
                **target,
                "type": draw(st.sampled_from(list(AgentType))).value,
                "max_no_answer": draw(st.integers(0, 10)),
                "wrap_up_time": draw(st.integers(0, 120)),
                "initial_status": draw(st.none() | st.sampled_from(list(AgentStatus)).map(str)),
            }
        )
    agent_names = [a["name"] for a in agents]
    queue_names = draw(st.lists(_slug, max_size=2, unique=True))
    queue_numbers = draw(
        st.lists(
            st.from_regex(r"[0-9]{2,6}", fullmatch=True).filter(lambda q: q not in numbers),
            min_size=len(queue_names),
            max_size=len(queue_names),
            unique=True,
        )
    )
    queues = [
        {
            "name": name,
            "number": number,
            "strategy": draw(st.sampled_from(list(Strategy))).value,
            "moh_sound": draw(_sound),
            "max_wait_time": draw(st.integers(0, 600)),
            "tier_rules_apply": draw(st.booleans()),
            "tiers": [
                {
                    "agent": agent,
                    "level": draw(st.integers(0, 5)),
                    "position": draw(st.integers(0, 5)),
                }
                for agent in draw(
                    st.lists(st.sampled_from(agent_names), unique=True, max_size=3)
                    if agent_names
                    else st.just([])
                )
            ],
        }
        for name, number in zip(queue_names, queue_numbers, strict=True)
    ]
    destinations: list[dict[str, Any]] = [{"extension": n} for n in numbers] + [
        {"queue": q} for q in queue_names
    ]
    prefix = did_prefix or draw(st.from_regex(r"[2-9][0-9]{2}", fullmatch=True))
    dids = (
        [
            {
                "number": f"+1{prefix}555{suffix:04d}",
                "destination": draw(st.sampled_from(destinations)),
            }
            for suffix in draw(st.lists(st.integers(0, 9999), max_size=3, unique=True))
        ]
        if destinations
        else []
    )
    settings: dict[str, Any] = {
        "extension_length": {"min": lo, "max": hi},
        "call_timeout": draw(st.integers(5, 600)),
    }
    if draw(st.booleans()):
        settings["outbound_caller_id"] = {"name": draw(display_names), "number": "+14155550100"}
    outbound = draw(_outbound(dids, extensions, set(numbers) | set(queue_numbers)))
    return TenantSpec.model_validate(
        {
            "id": tid,
            "domain": dom,
            "name": draw(display_names),
            "status": draw(st.sampled_from(["active", "active", "suspended"])),
            "settings": settings,
            "extensions": extensions,
            "users": users,
            "agents": agents,
            "queues": queues,
            "inbound_numbers": dids,
            **({"outbound": outbound} if outbound else {}),
        }
    )


@st.composite
def _outbound(
    draw: st.DrawFn, dids: list[dict[str, Any]], extensions: list[dict[str, Any]], taken: set[str]
) -> dict[str, Any] | None:
    """Outbound calling for a tenant with a DID to present (and no number 911), and a
    calling right on some of its extensions; None otherwise or by chance."""
    if not dids or "911" in taken or not draw(st.booleans()):
        return None
    international = draw(st.booleans())
    rights = ["internal", "local", "national"] + (["international"] if international else [])
    for extension in extensions:
        if draw(st.booleans()):
            extension["calling_right"] = draw(st.sampled_from(rights))
    gateways = st.just(["out"])  # the one gateway the properties' _platform.yaml declares
    return {
        "country": draw(st.sampled_from(["US", "CA"])),
        "area_code": draw(st.none() | st.sampled_from(["415", "212"])),
        "caller_id": {"number": draw(st.sampled_from(dids))["number"]},
        "default_calling_right": draw(st.sampled_from(rights)),
        "routes": [
            {"match": match, "gateways": draw(gateways)}
            for match in [
                "national",
                *draw(st.lists(st.sampled_from(["emergency", "+44", "+1876"]), unique=True)),
            ]
        ],
        "limits": {
            "max_concurrent": draw(st.integers(1, 50)),
            "calls_per_minute": draw(st.integers(1, 600)),
            "international": international,
        },
    }


@st.composite
def tenant_sets(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 3) -> list[TenantSpec]:
    """Several valid tenants with distinct ids, domains and DIDs."""
    ids = draw(st.lists(tenant_ids, min_size=min_size, max_size=max_size, unique=True))
    return [
        draw(
            tenant_specs(
                tenant_id=tid, domain=f"t{i}.{draw(_label)}.example", did_prefix=f"{200 + i}"
            )
        )
        for i, tid in enumerate(ids)
    ]

"""Authorization as a table: role x resource x action -> allowed / forbidden / not found.

Rows read like the issue's table; every refusal of something the caller may not see is
``NotFound`` (identical to an unknown id), never a hint that it exists.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.core.desired import tenant_state_from_spec
from reconciler.web.access import (
    Principal,
    Role,
    TenantScope,
    entitled_emails,
    may_invite,
    principal_for,
    tenant_scope,
    visible_tenant_ids,
)
from reconciler.web.errors import BadRequest, Forbidden, NotFound, PortalError
from tests.fakes.portal import SUPER, _spec, demo_state

STATE = demo_state()
ADMINS = {SUPER: "Platform Operator"}

PEOPLE = {
    "super": SUPER,
    "admin": "alice@acme.example.com",
    "agent": "bob@acme.example.com",
    "member": "carol@acme.example.com",
    "other_admin": "gina@globex.example.com",
}

ALLOWED, FORBIDDEN, NOT_FOUND, INVALID = "allowed", "forbidden", "not found", "invalid"


def me(who: str) -> Principal:
    found = principal_for(PEOPLE[who], STATE, ADMINS)
    assert found is not None
    return found


def outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except NotFound:
        return NOT_FOUND
    except Forbidden:
        return FORBIDDEN
    except BadRequest:
        return INVALID
    return ALLOWED


def in_acme(who: str) -> TenantScope:
    return tenant_scope(me(who), STATE, "acme")


def see_list(kind: str, key: str) -> Callable[[TenantScope], object]:
    def check(scope: TenantScope) -> object:
        keys = (
            [e.number for e in scope.visible_extensions()]
            if kind == "extension"
            else [a.name for a in scope.visible_agents()]
        )
        if key not in keys:
            raise NotFound()
        return keys

    return check


ACTIONS: dict[str, Callable[[TenantScope], object]] = {
    "view tenant": lambda s: s,
    "view own extension 1002": lambda s: s.extension("1002"),
    "view other extension 1010": lambda s: s.extension("1010"),
    "list shows 1001": see_list("extension", "1001"),
    "reveal 1002": lambda s: s.require_credentials("1002"),
    "reveal 1010": lambda s: s.require_credentials("1010"),
    "reveal 1001": lambda s: s.require_credentials("1001"),
    "view agent bob": lambda s: s.agent("bob"),
    "view agent alice": lambda s: s.agent("alice"),
    "set bob On Break": lambda s: s.require_set_status("bob", "On Break"),
    "set bob2 Available": lambda s: s.require_set_status("bob2", "Available"),
    "set alice Available": lambda s: s.require_set_status("alice", "Available"),
    "set bob to On Demand": lambda s: s.require_set_status("bob", "Available (On Demand)"),
    "queues, DIDs, history": lambda s: s.require_all(),
}

# role -> action -> expected, in tenant acme (bob owns 1002/1003 and agents bob/bob2;
# alice owns 1001 and agent alice; carol owns 1010)
TABLE: dict[str, dict[str, str]] = {
    "super": {
        "view tenant": ALLOWED,
        "view own extension 1002": ALLOWED,
        "view other extension 1010": ALLOWED,
        "list shows 1001": ALLOWED,
        "reveal 1002": FORBIDDEN,
        "reveal 1010": FORBIDDEN,
        "reveal 1001": FORBIDDEN,
        "view agent bob": ALLOWED,
        "view agent alice": ALLOWED,
        "set bob On Break": FORBIDDEN,
        "set bob2 Available": FORBIDDEN,
        "set alice Available": FORBIDDEN,
        "set bob to On Demand": FORBIDDEN,
        "queues, DIDs, history": ALLOWED,
    },
    "admin": {
        "view tenant": ALLOWED,
        "view own extension 1002": ALLOWED,
        "view other extension 1010": ALLOWED,
        "list shows 1001": ALLOWED,
        "reveal 1002": ALLOWED,
        "reveal 1010": ALLOWED,
        "reveal 1001": ALLOWED,
        "view agent bob": ALLOWED,
        "view agent alice": ALLOWED,
        "set bob On Break": ALLOWED,
        "set bob2 Available": ALLOWED,
        "set alice Available": ALLOWED,
        "set bob to On Demand": INVALID,
        "queues, DIDs, history": ALLOWED,
    },
    "agent": {
        "view tenant": ALLOWED,
        "view own extension 1002": ALLOWED,
        "view other extension 1010": NOT_FOUND,
        "list shows 1001": NOT_FOUND,
        "reveal 1002": ALLOWED,
        "reveal 1010": NOT_FOUND,
        "reveal 1001": NOT_FOUND,
        "view agent bob": ALLOWED,
        "view agent alice": NOT_FOUND,
        "set bob On Break": ALLOWED,
        "set bob2 Available": ALLOWED,
        "set alice Available": NOT_FOUND,
        "set bob to On Demand": INVALID,
        "queues, DIDs, history": NOT_FOUND,
    },
    "member": {
        "view tenant": ALLOWED,
        "view own extension 1002": NOT_FOUND,
        "view other extension 1010": ALLOWED,
        "list shows 1001": NOT_FOUND,
        "reveal 1002": NOT_FOUND,
        "reveal 1010": ALLOWED,
        "reveal 1001": NOT_FOUND,
        "view agent bob": NOT_FOUND,
        "view agent alice": NOT_FOUND,
        "set bob On Break": NOT_FOUND,
        "set bob2 Available": NOT_FOUND,
        "set alice Available": NOT_FOUND,
        "set bob to On Demand": NOT_FOUND,
        "queues, DIDs, history": NOT_FOUND,
    },
}

CASES = [
    pytest.param(role, action, expected, id=f"{role}-{action}")
    for role, row in TABLE.items()
    for action, expected in row.items()
]


@pytest.mark.parametrize(("role", "action", "expected"), CASES)
def test_role_action_table_in_own_tenant(role: str, action: str, expected: str) -> None:
    assert outcome(lambda: ACTIONS[action](in_acme(role))) == expected


@pytest.mark.parametrize("role", ["admin", "agent", "member", "other_admin"])
def test_another_tenant_answers_exactly_like_an_unknown_one(role: str) -> None:
    target = "globex" if role != "other_admin" else "acme"
    with pytest.raises(NotFound) as foreign:
        tenant_scope(me(role), STATE, target)
    with pytest.raises(NotFound) as unknown:
        tenant_scope(me(role), STATE, "nosuchtenant")
    assert foreign.value.status == unknown.value.status
    assert type(foreign.value) is type(unknown.value)


def test_a_person_of_two_tenants_has_a_role_in_each() -> None:
    dave = principal_for("Dave@Example.org", STATE, ADMINS)
    assert dave is not None
    assert dave.tenant_ids == ("acme", "globex")
    assert tenant_scope(dave, STATE, "acme").role is Role.AGENT
    assert tenant_scope(dave, STATE, "globex").role is Role.MEMBER


def test_suspended_tenant_gives_its_people_no_access_but_super_admins_see_it() -> None:
    assert principal_for("ivan@initech.example.com", STATE, ADMINS) is None
    assert "initech" in visible_tenant_ids(me("super"), STATE)
    assert tenant_scope(me("super"), STATE, "initech").role is Role.SUPER


def test_removed_or_unknown_people_have_no_principal() -> None:
    assert principal_for("mallory@example.com", STATE, ADMINS) is None
    assert principal_for(SUPER, STATE, {}) is None


def test_demotion_in_git_is_effective_on_the_next_decision() -> None:
    from dataclasses import replace

    acme = STATE["acme"]
    users = dict(acme.users)
    users["alice@acme.example.com"] = replace(users["alice@acme.example.com"], role="member")
    demoted = {**STATE, "acme": replace(acme, users=users)}
    alice = principal_for("alice@acme.example.com", demoted, ADMINS)
    assert alice is not None
    with pytest.raises(NotFound):
        tenant_scope(alice, demoted, "acme").require_credentials("1010")


def test_entitled_emails_are_platform_admins_and_users_of_active_tenants() -> None:
    emails = entitled_emails(STATE, ADMINS)
    assert SUPER in emails and "dave@example.org" in emails
    assert "ivan@initech.example.com" not in emails


@pytest.mark.parametrize(
    ("who", "email", "allowed"),
    [
        ("super", "gina@globex.example.com", True),
        ("super", SUPER, True),
        ("super", "ivan@initech.example.com", False),
        ("admin", "carol@acme.example.com", True),
        ("admin", "gina@globex.example.com", False),
        ("agent", "carol@acme.example.com", False),
        ("member", "carol@acme.example.com", False),
        ("admin", "dave@example.org", False),  # also a member of globex
        ("other_admin", "dave@example.org", False),  # also an agent of acme
        ("super", "dave@example.org", True),
        ("admin", SUPER, False),
    ],
    ids=lambda v: str(v),
)
def test_who_may_invite_whom(who: str, email: str, allowed: bool) -> None:
    assert may_invite(me(who), email, STATE, ADMINS) is allowed


def test_a_tenant_file_listing_other_peoples_admins_gets_its_admin_nothing() -> None:
    """A hostile tenant declares acme's admin and a super admin as its own users."""
    hostile = tenant_state_from_spec(
        _spec(
            "evil",
            "evil.example.com",
            "active",
            [
                {"email": "mallory@evil.example.com", "name": "M", "role": "admin"},
                {"email": "alice@acme.example.com", "name": "A", "role": "member"},
                {"email": SUPER, "name": "S", "role": "member"},
            ],
            [],
        )
    )
    state = {**STATE, "evil": hostile}
    mallory = principal_for("mallory@evil.example.com", state, ADMINS)
    assert mallory is not None
    assert not may_invite(mallory, "alice@acme.example.com", state, ADMINS)
    assert not may_invite(mallory, SUPER, state, ADMINS)
    assert may_invite(mallory, "mallory@evil.example.com", state, ADMINS)


def test_errors_carry_stable_codes() -> None:
    assert {c.code for c in (NotFound, Forbidden, BadRequest)} == {
        "not_found",
        "forbidden",
        "bad_request",
    }
    assert issubclass(NotFound, PortalError)

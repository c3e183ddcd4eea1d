"""Desired records share the spec's strings where they can (memory at 100,000 users)."""

from __future__ import annotations

from reconciler.core.desired import tenant_state_from_spec
from specs_schema.models import TenantSpec


def _spec(tid: str, email: str) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "id": tid,
            "domain": f"{tid}.example.net",
            "name": tid,
            "users": [{"email": email, "name": "U", "role": "admin", "extensions": ["1000"]}],
            "extensions": [{"number": "1000", "name": "Desk"}],
        }
    )


def test_lowercase_email_is_the_specs_own_string_and_enum_values_are_shared() -> None:
    a, b = _spec("acme", "u@acme.example.net"), _spec("beta", "u@beta.example.net")
    sa, sb = tenant_state_from_spec(a), tenant_state_from_spec(b)
    (ua,), (ub,) = sa.users.values(), sb.users.values()
    assert ua.email is a.users[0].email
    assert ua.role == "admin" and ua.role is ub.role
    assert sa.extensions["1000"].calling_right is sb.extensions["1000"].calling_right


def test_mixed_case_email_is_still_lowercased() -> None:
    (user,) = tenant_state_from_spec(_spec("acme", "U@Acme.Example.net")).users.values()
    assert user.email == "u@acme.example.net"

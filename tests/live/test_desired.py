"""What every switch should hold: only served tenants, all known domains managed."""

from __future__ import annotations

from reconciler.core.served import managed_domains
from reconciler.switch import (
    DesiredLive,
    desired_live,
)
from tests.live.states import (
    ACME,
    GLOBEX,
    acme_state,
    agent,
    tenant_state,
)


def test_managed_domains_include_every_tenant_served_or_not() -> None:
    state = {
        **acme_state(status="suspended"),
        "globex": tenant_state("globex", "Globex.Example.com"),
    }
    assert managed_domains(state) == {ACME, GLOBEX}
    assert desired_live(state) == DesiredLive()


def test_a_domain_claimed_twice_is_not_pushed_like_it_is_not_served() -> None:
    """The snapshot serves neither tenant of a clashing domain; pushing their agents and
    queues would mix two tenants in one namespace and load queues nobody serves."""
    state = {
        **acme_state(),
        "acme2": tenant_state("acme2", ACME.upper(), agents=[agent("alice")]),
        "pub": tenant_state("pub", "public", agents=[agent("x", "public")]),
    }
    assert desired_live(state) == DesiredLive()
    assert managed_domains(state) == {ACME, "public"}

"""Who may see and do what: pure decisions over the CURRENT applied state, so a change in
git (a user removed, demoted, a tenant suspended) takes effect on the very next request.

Roles come from the specs: super admins from ``_platform.yaml``, tenant roles from
``users[].role`` (admin / agent / member) of *active* tenants only (a suspended or orphaned
tenant is not served, and neither are its people; super admins still see it).

Two answers for a refusal, never more: anything the caller may not see is ``NotFound``
(an id of another tenant looks exactly like an unknown id); something visible that the
caller's role may not change is ``Forbidden``.

Tenant roles are cumulative for one's own things: an admin may also reveal their own
credentials and set their own agents' status. A super admin sees everything but reveals no
secret and changes no agent unless they are also that tenant's user with that right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.core.model import Agent, Extension, State, TenantLifecycle, TenantState, User
from reconciler.web.errors import BadRequest, Forbidden, NotFound


class Role(StrEnum):
    SUPER = "super admin"
    ADMIN = "admin"
    AGENT = "agent"
    MEMBER = "member"


SETTABLE_STATUSES: tuple[str, ...] = ("Available", "On Break", "Logged Out")
"""What a person may set from the portal: the three statuses the feature codes set."""


@dataclass(frozen=True)
class Principal:
    """A logged-in person as the current applied state sees them."""

    email: str
    name: str
    super_admin: bool
    memberships: Mapping[str, User] = field(default_factory=dict)  # tenant id -> user

    @property
    def tenant_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.memberships))

    @property
    def invites(self) -> bool:
        """Super admins and tenant admins invite people; nobody else sees the form."""
        return self.super_admin or any(u.role == Role.ADMIN for u in self.memberships.values())

    @property
    def has_extensions(self) -> bool:
        """Someone with an extension of their own gets the browser phone."""
        return any(user.extensions for user in self.memberships.values())

    def administers(self, tenant_id: str) -> bool:
        """Super admins and the tenant's admins: they see its spec errors and last error."""
        user = self.memberships.get(tenant_id)
        return self.super_admin or (user is not None and user.role == Role.ADMIN)


def principal_for(email: str, state: State, admins: Mapping[str, str]) -> Principal | None:
    """The person behind ``email`` now, or None when git no longer gives them any access."""
    email = email.lower()
    memberships = {
        tenant_id: user
        for tenant_id, tenant_state in state.items()
        if tenant_state.tenant.status == TenantLifecycle.ACTIVE
        and (user := tenant_state.users.get(email)) is not None
    }
    admin_name = admins.get(email)
    if admin_name is None and not memberships:
        return None
    name = admin_name or next(iter(memberships.values())).name
    return Principal(email, name, admin_name is not None, memberships)


def entitled_emails(state: State, admins: Mapping[str, str]) -> frozenset[str]:
    """Everyone who may hold a session or an invitation right now."""
    emails = {email.lower() for email in admins}
    for tenant_state in state.values():
        if tenant_state.tenant.status == TenantLifecycle.ACTIVE:
            emails.update(tenant_state.users)
    return frozenset(emails)


def tenants_of(email: str, state: State) -> list[str]:
    """Every tenant that lists ``email`` among its users, whatever its lifecycle: the tenants
    whose admins see this person's audit rows, and the ones an inviter must administer."""
    email = email.lower()
    return sorted(t for t, tenant_state in state.items() if email in tenant_state.users)


def may_invite(principal: Principal, email: str, state: State, admins: Mapping[str, str]) -> bool:
    """Super admins invite anyone entitled. A tenant admin invites only people whose every
    tenant is one they administer, and never a super admin: a hostile tenant file that lists
    another tenant's admin (or a super admin) as its user gets its admin nothing."""
    email = email.lower()
    if email not in entitled_emails(state, admins):
        return False
    if principal.super_admin:
        return True
    if email in admins:
        return False
    administered = {t for t, user in principal.memberships.items() if user.role == Role.ADMIN}
    where = tenants_of(email, state)
    return bool(where) and administered.issuperset(where)


def visible_tenant_ids(principal: Principal, state: State) -> list[str]:
    if principal.super_admin:
        return sorted(state)
    return [t for t in principal.tenant_ids if t in state]


@dataclass(frozen=True)
class TenantScope:
    """One principal inside one tenant: every per-resource decision of the portal."""

    principal: Principal
    state: TenantState
    role: Role  # the tenant role, or SUPER for a super admin who is not a user here
    own_extensions: frozenset[str]

    @property
    def tenant_id(self) -> str:
        return self.state.tenant.id

    @property
    def sees_all(self) -> bool:
        """Admins and super admins see the whole tenant (queues, DIDs, history, audit)."""
        return self.principal.super_admin or self.role is Role.ADMIN

    def visible_extensions(self) -> list[Extension]:
        exts = self.state.extensions
        numbers = sorted(exts) if self.sees_all else sorted(self.own_extensions & exts.keys())
        return [exts[n] for n in numbers]

    def extension(self, number: str) -> Extension:
        ext = self.state.extensions.get(number)
        if ext is None or not (self.sees_all or number in self.own_extensions):
            raise NotFound(f"no extension {number}")
        return ext

    def own_agent(self, agent: Agent) -> bool:
        return agent.extension is not None and agent.extension in self.own_extensions

    def visible_agents(self) -> list[Agent]:
        if self.sees_all:
            return [self.state.agents[n] for n in sorted(self.state.agents)]
        if self.role is Role.MEMBER:
            return []
        return [a for _, a in sorted(self.state.agents.items()) if self.own_agent(a)]

    def agent(self, name: str) -> Agent:
        agent = self.state.agents.get(name)
        if agent is None or agent not in self.visible_agents():
            raise NotFound(f"no agent {name}")
        return agent

    def require_credentials(self, number: str) -> Extension:
        """Reveal or rotate: a tenant admin for any extension, anyone for their own."""
        ext = self.extension(number)
        if self.role is Role.ADMIN or (
            self.role is not Role.SUPER and number in self.own_extensions
        ):
            return ext
        raise Forbidden("only the extension's owner or a tenant admin handles its credentials")

    def can_set_status(self, agent: Agent) -> bool:
        """An agent's own person, and a tenant admin for every agent of the tenant (a
        supervisor's daily work); a super admin who is no user here changes nothing."""
        return self.role is Role.ADMIN or (self.role is Role.AGENT and self.own_agent(agent))

    def require_set_status(self, name: str, status: str) -> Agent:
        agent = self.agent(name)
        if not self.can_set_status(agent):
            raise Forbidden("only the agent's own person or a tenant admin sets its status")
        if status not in SETTABLE_STATUSES:
            raise BadRequest(f"status must be one of: {', '.join(SETTABLE_STATUSES)}")
        return agent

    def require_all(self) -> None:
        """Queues, DIDs, history and audit: admins and super admins only."""
        if not self.sees_all:
            raise NotFound("not found")

    @property
    def can_invite(self) -> bool:
        return self.principal.super_admin or self.role is Role.ADMIN


def tenant_scope(principal: Principal, state: State, tenant_id: str) -> TenantScope:
    """The principal inside ``tenant_id``; ``NotFound`` when they may not see it at all."""
    tenant_state = state.get(tenant_id)
    user = principal.memberships.get(tenant_id)
    if tenant_state is None or (user is None and not principal.super_admin):
        raise NotFound(f"no tenant {tenant_id}")
    if user is None:
        return TenantScope(principal, tenant_state, Role.SUPER, frozenset())
    return TenantScope(principal, tenant_state, Role(user.role), frozenset(user.extensions))

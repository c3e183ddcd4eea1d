"""The portal's few writes, shared by pages and the API: each checks the caller's scope,
does the one thing, and leaves an audit row (denials of visible things included).

What git owns is never changed here: credentials are the reconciler's generated secrets
(revealed to their owner, rotated), an agent's status is runtime state owned by the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from reconciler.core.model import fs_name
from reconciler.core.presence import StatusResult
from reconciler.store import SipCredentials, UnknownExtension, UnknownTenant
from reconciler.store.portal import (
    SessionRow,
    create_api_token,
    delete_api_token,
    list_sessions,
)
from reconciler.web.access import Principal, TenantScope, may_invite
from reconciler.web.errors import Forbidden, NotFound, printable
from reconciler.web.invitations import InviteLink, NotEntitled, invite
from reconciler.web.portal import Portal
from reconciler.web.tokens import new_api_token, token_digest


class Actor:
    """Who acts, from where: what every audit row records."""

    def __init__(self, portal: Portal, principal: Principal, client_addr: str) -> None:
        self.portal = portal
        self.principal = principal
        self.client_addr = client_addr

    async def audit(self, action: str, result: str, **fields: str | None) -> None:
        await self.portal.db.audit(
            self.principal.email, action, result, client_addr=self.client_addr, **fields
        )

    async def _guard(
        self, scope: TenantScope, action: str, target: str, check: Callable[[], object]
    ) -> None:
        try:
            check()
        except Forbidden:
            await self.audit(action, "denied", tenant_id=scope.tenant_id, target=target)
            raise

    async def reveal(self, scope: TenantScope, number: str) -> SipCredentials:
        await self._guard(scope, "reveal", number, lambda: scope.require_credentials(number))
        try:
            creds = await self.portal.deps.show_credentials(scope.tenant_id, number)
        except (UnknownExtension, UnknownTenant) as exc:
            raise NotFound(f"no extension {number}") from exc
        await self.audit("reveal", "ok", tenant_id=scope.tenant_id, target=number)
        return creds

    async def rotate(self, scope: TenantScope, number: str) -> None:
        await self._guard(scope, "rotate", number, lambda: scope.require_credentials(number))
        try:
            await self.portal.deps.rotate_credentials(scope.tenant_id, number)
        except (UnknownExtension, UnknownTenant) as exc:
            raise NotFound(f"no extension {number}") from exc
        await self.audit("rotate", "ok", tenant_id=scope.tenant_id, target=number)

    async def set_status(
        self, scope: TenantScope, agent_name: str, status: str
    ) -> Sequence[StatusResult]:
        await self._guard(
            scope, "set_status", agent_name, lambda: scope.require_set_status(agent_name, status)
        )
        name = fs_name(agent_name, scope.state.tenant.domain)
        results = await self.portal.deps.presence.set_agent_status(name, status)
        failed = [r for r in results if not r.ok]
        await self.audit(
            "set_status",
            "failed" if failed or not results else "ok",
            tenant_id=scope.tenant_id,
            target=agent_name,
            detail=status
            + ("" if results else " (no switch connected)")
            + "".join(f"; {r.node}: {r.error}" for r in failed),
        )
        return results

    async def invite(self, email: str) -> InviteLink:
        deps = self.portal.deps
        state, admins = deps.applied_state(), deps.platform_admins()
        if not may_invite(self.principal, email, state, admins):
            raise NotEntitled(email.strip().lower())
        ttl = self.portal.config.invitation_ttl
        return await self.portal.db.run(
            invite,
            email,
            base_url=self.portal.config.base_url,
            ttl=timedelta(seconds=ttl),
            invited_by=self.principal.email,
            state=state,
            admins=admins,
            client_addr=self.client_addr,
        )

    async def create_token(self, name: str) -> tuple[int, str]:
        """A bearer token for scripts, acting as this person; shown once, stored hashed."""
        name = printable(name.strip()[:80], "the token name") or "script"
        token = new_api_token()
        token_id = await self.portal.db.run(
            create_api_token,
            token_hash=token_digest(token),
            email=self.principal.email,
            name=name,
        )
        await self.audit("token_create", "ok", target=f"{token_id} {name}")
        return token_id, token

    async def revoke_token(self, token_id: int) -> None:
        digest = await self.portal.db.run(delete_api_token, self.principal.email, token_id)
        if digest is None:
            raise NotFound(f"no token {token_id}")
        self.portal.sessions.forget(digest=digest)
        await self.audit("token_revoke", "ok", target=str(token_id))

    async def sessions(self, everyone: bool) -> list[SessionRow]:
        if everyone and not self.principal.super_admin:
            raise NotFound()
        return await self.portal.db.run(list_sessions, None if everyone else self.principal.email)

    async def revoke_session(self, session_id: int) -> None:
        """Super admins end anyone's session; everyone else only their own."""
        mine = {s.id for s in await self.sessions(everyone=False)}
        if session_id not in mine and not self.principal.super_admin:
            raise NotFound(f"no session {session_id}")
        row = await self.portal.sessions.end(session_id)
        if row is None:
            raise NotFound(f"no session {session_id}")
        await self.audit("session_revoke", "ok", target=f"{row.email} session {session_id}")

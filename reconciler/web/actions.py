"""The portal's few writes, shared by pages and the API: each checks the caller's scope,
does the one thing, and leaves an audit row (denials of visible things included).

What git owns is never changed here: credentials are the reconciler's generated secrets
(revealed to their owner, rotated), an agent's status is runtime state owned by the agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from reconciler.core.model import fs_name
from reconciler.core.presence import StatusResult
from reconciler.store import SipCredentials, UnknownExtension, UnknownTenant
from reconciler.store.accounts import (
    ApiToken,
    Revoked,
    SessionRow,
    change_password,
    create_api_token,
    delete_api_token,
    list_api_tokens,
    list_sessions,
    read_account,
    revoke_person,
    use_totp_step,
)
from reconciler.web import totp
from reconciler.web.access import Principal, TenantScope, may_invite, tenants_of
from reconciler.web.context import Portal
from reconciler.web.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    SwitchUnavailable,
    printable,
)
from reconciler.web.invitations import InviteLink, NotEntitled, invite, issue_reset
from reconciler.web.passwords import check_new_password
from reconciler.web.ports import CREDENTIALS, PRESENCE, CredentialStore
from reconciler.web.tokens import new_api_token, token_digest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivered:
    """An issued link and where it went: ``sent_to`` (masked) when mailed to the person, else
    None and the inviter is shown ``link.url`` to pass on (no mail configured)."""

    link: InviteLink
    sent_to: str | None

    @property
    def url(self) -> str | None:
        return None if self.sent_to else self.link.url


class Actor:
    """Who acts, from where: what every audit row records."""

    def __init__(self, portal: Portal, principal: Principal, client_addr: str) -> None:
        self.portal = portal
        self.principal = principal
        self.client_addr = client_addr

    async def audit(
        self, action: str, result: str, *, tenant_ids: Sequence[str] = (), **fields: str | None
    ) -> None:
        await self.portal.db.audit(
            self.principal.email,
            action,
            result,
            client_addr=self.client_addr,
            tenant_ids=tenant_ids,
            **fields,
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
        return await self._on_secret(
            scope, "reveal", number, lambda store: store.show_credentials(scope.tenant_id, number)
        )

    async def rotate(self, scope: TenantScope, number: str) -> None:
        await self._on_secret(
            scope, "rotate", number, lambda store: store.rotate_credentials(scope.tenant_id, number)
        )

    async def reveal_pin(self, scope: TenantScope, number: str) -> str:
        """The voicemail PIN, to its owner or a tenant admin (like the SIP password)."""
        return await self._on_secret(
            scope, "reveal_pin", number, lambda store: store.show_pin(scope.tenant_id, number)
        )

    async def rotate_pin(self, scope: TenantScope, number: str) -> None:
        await self._on_secret(
            scope, "rotate_pin", number, lambda store: store.rotate_pin(scope.tenant_id, number)
        )

    async def _on_secret(
        self,
        scope: TenantScope,
        action: str,
        number: str,
        act: Callable[[CredentialStore], Awaitable[T]],
    ) -> T:
        """One act on an extension's secret (SIP password, voicemail PIN): only for whom may
        see its credentials (a denial audited), NotFound for an unknown extension, audited."""
        await self._guard(scope, action, number, lambda: scope.require_credentials(number))
        try:
            result = await act(self.portal.port(CREDENTIALS))
        except (UnknownExtension, UnknownTenant) as exc:
            raise NotFound(f"no extension {number}") from exc
        await self.audit(action, "ok", tenant_id=scope.tenant_id, target=number)
        return result

    async def set_status(
        self, scope: TenantScope, agent_name: str, status: str
    ) -> Sequence[StatusResult]:
        """Audited with who did it (the actor) and the agent; ``SwitchUnavailable`` when no
        switch is connected or one refused, so neither a page nor a script takes it for done."""
        await self._guard(
            scope, "set_status", agent_name, lambda: scope.require_set_status(agent_name, status)
        )
        name = fs_name(agent_name, scope.state.tenant.domain)
        results = await self.portal.port(PRESENCE).set_agent_status(name, status)
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
        if not results:
            raise SwitchUnavailable(f"{agent_name}'s status is unchanged: no switch is connected")
        if failed:
            took = len(results) - len(failed)
            raise SwitchUnavailable(
                f"{agent_name}'s status was not set: {took} of {len(results)} switches took it"
                " (the others did not answer or refused); try again shortly"
            )
        return results

    async def invite(self, email: str) -> Delivered:
        """Only people this principal may invite (``may_invite``), only new accounts; mailed
        to the person when mail is configured."""
        deps = self.portal.deps
        state, admins = deps.applied_state(), deps.platform_admins()
        if not may_invite(self.principal, email, state, admins):
            email = email.strip().lower()
            await self.audit("invite", "denied", target=email, tenant_ids=tenants_of(email, state))
            raise NotEntitled(email)
        ttl = self.portal.config.invitation_ttl
        link = await self.portal.db.run(
            invite,
            email,
            base_url=self.portal.config.base_url,
            ttl=timedelta(seconds=ttl),
            invited_by=self.principal.email,
            state=state,
            admins=admins,
            client_addr=self.client_addr,
        )
        mailer = self.portal.mailer
        return Delivered(link, await mailer.send_link(link) if mailer else None)

    async def send_reset(self, email: str) -> Delivered:
        """A reset link for someone this principal may invite, mailed to them: only with
        mail configured, since the link must never reach the one who asked."""
        mailer = self.portal.mailer
        if mailer is None:
            raise BadRequest(
                "without mail, a password is reset on the host: `pbx users reset EMAIL`"
            )
        deps = self.portal.deps
        state, admins = deps.applied_state(), deps.platform_admins()
        email = email.strip().lower()
        if not may_invite(self.principal, email, state, admins):
            await self.audit(
                "reset_issue", "denied", target=email, tenant_ids=tenants_of(email, state)
            )
            raise NotEntitled(email)
        link = await self.portal.db.run(
            issue_reset,
            email,
            base_url=self.portal.config.base_url,
            ttl=timedelta(hours=1),
            requested_by=self.principal.email,
            state=state,
            admins=admins,
            client_addr=self.client_addr,
        )
        return Delivered(link, await mailer.send_link(link))

    async def create_token(self, name: str, days: int | None = None) -> tuple[int, str]:
        """A bearer token for scripts, acting as this person; shown once, stored hashed,
        expiring (the configured default, at most the configured maximum)."""
        config = self.portal.config
        days = config.token_days if days is None else days
        if not 1 <= days <= config.token_max_days:
            raise BadRequest(f"a token lives 1 to {config.token_max_days} days")
        name = printable(name.strip()[:80], "the token name") or "script"
        token = new_api_token()
        token_id = await self.portal.db.run(
            create_api_token,
            token_hash=token_digest(token),
            email=self.principal.email,
            name=name,
            expires_at=datetime.now(UTC) + timedelta(days=days),
        )
        await self.audit("token_create", "ok", target=f"{token_id} {name}", detail=f"{days} days")
        return token_id, token

    async def tokens(self, everyone: bool) -> list[ApiToken]:
        """One's own API tokens; everyone's for super admins."""
        if everyone and not self.principal.super_admin:
            raise NotFound()
        return await self.portal.db.run(list_api_tokens, None if everyone else self.principal.email)

    async def revoke_token(self, token_id: int) -> None:
        """Super admins revoke anyone's token; everyone else only their own."""
        owner = None if self.principal.super_admin else self.principal.email
        found = await self.portal.db.run(delete_api_token, owner, token_id)
        if found is None:
            raise NotFound(f"no token {token_id}")
        digest, email = found
        self.portal.sessions.forget(digest=digest)
        await self.audit(
            "token_revoke", "ok", target=f"{email} token {token_id}", tenant_ids=self._of(email)
        )

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

    async def end_everything(self, email: str) -> Revoked:
        """Every session, API token and pending link of one person, in one action: anyone's
        for super admins, one's own for everyone else."""
        email = printable(email.strip().lower(), "email")
        if email != self.principal.email and not self.principal.super_admin:
            raise NotFound()
        revoked = await self.portal.db.run(revoke_person, email)
        self.portal.sessions.forget(email=email)
        await self.audit(
            "revoke_all",
            "ok",
            target=email,
            tenant_ids=self._of(email),
            detail=f"{revoked.sessions} session(s), {revoked.tokens} token(s), "
            f"{revoked.invitations} pending link(s)",
        )
        return revoked

    def _of(self, email: str) -> list[str]:
        return tenants_of(email, self.portal.deps.applied_state())

    async def change_password(
        self, *, current: str, new: str, confirmation: str, code: str, keep_session: int | None
    ) -> Revoked:
        """The person's own change: the current password (and authenticator code, when they
        have one) proves it is them; every other session and every API token ends."""
        email = self.principal.email
        limiter, passwords = self.portal.limiter, self.portal.passwords
        limiter.reserve(email, self.client_addr)  # counted as a failure until proven
        try:
            account = await self.portal.db.run(read_account, email)
            verified = await passwords.verify(account.password_hash if account else None, current)
        except Exception:
            limiter.release(email, self.client_addr)  # never judged: costs nothing
            raise
        proven = verified.ok and account is not None
        if proven and account is not None and account.totp_secret is not None:
            step = totp.matching_step(account.totp_secret, code)
            proven = step is not None and await self.portal.db.run(use_totp_step, email, step)
        if not proven:
            await self.audit("password_change", "failed", target=email, tenant_ids=self._of(email))
            raise BadRequest("the current password or the authenticator code is not valid")
        limiter.succeeded(email, self.client_addr)
        check_new_password(new, confirmation, email)
        new_hash = await passwords.hash(new)
        revoked = await self.portal.db.run(
            change_password, email, new_hash, keep_session=keep_session
        )
        self.portal.sessions.forget(email=email)
        await self.audit(
            "password_change",
            "ok",
            target=email,
            tenant_ids=self._of(email),
            detail=f"ended {revoked.sessions} other session(s), {revoked.tokens} token(s)",
        )
        return revoked

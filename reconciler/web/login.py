"""Logging in: password (argon2id), then TOTP for super admins (and anyone enrolled), then a
server-side session. The code is asked for in a second step, only once the password proved
right for an account that has an authenticator: that step is shown to nobody who does not
know the password, so it tells nothing about which accounts exist. The step carries a
*proof* (an HMAC over the email, an expiry and the current password hash, 5 minutes), never
the password. Every outcome is audited; every failure reads the same and costs about
the same time, whether the email is unknown, the password wrong, the code wrong or the
person no longer in git. Throttled attempts (``ratelimit``) are audited once per counter
and window; the rest are counted into the next such row.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.model import State
from reconciler.store.accounts import Account, read_account, update_password_hash, use_totp_step
from reconciler.web import totp
from reconciler.web.access import principal_for
from reconciler.web.db import PortalDb
from reconciler.web.errors import Unauthenticated
from reconciler.web.passwords import MAX_LENGTH, PasswordChecker, Verified
from reconciler.web.ratelimit import LoginLimiter, RefusalAudit, Throttled
from reconciler.web.sessions import Sessions
from reconciler.web.tokens import same_secret

GENERIC_FAILURE = "email, password or authenticator code not valid"
PROOF_TTL = 300  # seconds to type the authenticator code after the password


def password_proof(key: bytes, email: str, password_hash: str, expires: int) -> str:
    """What the second step carries instead of the password: bound to this password hash
    (a changed password voids it) and to an expiry."""
    message = f"pbx-portal login step\n{email}\n{expires}\n{password_hash}".encode()
    return f"{expires}.{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def proof_holds(key: bytes, email: str, password_hash: str, proof: str, now: float) -> bool:
    expires, _, _mac = proof.partition(".")
    if not expires.isdigit() or int(expires) < now:
        return False
    return same_secret(proof, password_proof(key, email, password_hash, int(expires)))


class CodeNeeded(Unauthenticated):
    """The password was right and the account has an authenticator: ask for its code."""

    code = "totp_needed"
    default_message = "enter the code your authenticator app shows"

    def __init__(self, email: str, proof: str) -> None:
        super().__init__()
        self.email = email
        self.proof = proof


class LoginFailed(Unauthenticated):
    code = "login_failed"
    default_message = GENERIC_FAILURE


class TotpEnrolmentRequired(Unauthenticated):
    """Right password, but a super admin without a second factor: only a reset helps."""

    code = "totp_required"
    default_message = (
        "super admins need an authenticator: ask an operator to run "
        "`pbx users reset EMAIL --new-authenticator` to enrol one"
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    email: str
    password: str
    code: str
    client_addr: str
    user_agent: str | None
    proof: str = ""  # the second step's, instead of the password


class Login:
    def __init__(
        self,
        db: PortalDb,
        sessions: Sessions,
        limiter: LoginLimiter,
        passwords: PasswordChecker,
    ) -> None:
        self.db = db
        self.sessions = sessions
        self.limiter = limiter
        self.passwords = passwords
        self.refusals = RefusalAudit()

    async def attempt(
        self, attempt: Attempt, state: State, admins: Mapping[str, str], proof_key: bytes = b""
    ) -> str:
        """The new session's cookie value; raises ``LoginFailed``/``RateLimited``/..., and
        ``CodeNeeded`` (costing no failure) when a right password lacks its code and
        ``proof_key`` allows a second step."""
        email = attempt.email.strip().lower()[:MAX_LENGTH]
        try:
            self.limiter.reserve(email, attempt.client_addr)
        except Throttled as exc:
            audit, unaudited = self.refusals.first(exc.key, exc.retry_after)
            if audit:
                why = "rate limited (" + exc.key.split(" ", 1)[0] + ")"
                if unaudited:
                    why += f"; {unaudited} more refused in its previous window, not audited"
                await self._audit(email, attempt, "failed", why)
            raise
        try:
            if attempt.proof and proof_key:
                account, verified = await self._check_proof(email, attempt.proof, proof_key)
            else:
                account, verified = await self._check_password(email, attempt.password)
        except Exception:
            self.limiter.release(email, attempt.client_addr)  # never judged: costs nothing
            raise
        failure = None
        if not verified.ok or account is None:
            failure = "wrong email or password"
        elif principal_for(email, state, admins) is None:
            failure = "not in the applied state"
        elif account.totp_secret and not attempt.code.strip() and proof_key:
            self.limiter.release(email, attempt.client_addr)  # not judged yet
            proof = password_proof(
                proof_key, email, account.password_hash, int(time.time()) + PROOF_TTL
            )
            raise CodeNeeded(email, proof)
        else:
            failure = await self._second_factor(account, email in admins, attempt.code)
        if failure is not None:
            await self._audit(email, attempt, "failed", failure)
            if failure == "no authenticator enrolled":
                raise TotpEnrolmentRequired()
            raise LoginFailed()
        if verified.rehash:
            await self.db.run(update_password_hash, email, verified.rehash)
        self.limiter.succeeded(email, attempt.client_addr)
        token = await self.sessions.create(email, attempt.client_addr, attempt.user_agent)
        await self._audit(email, attempt, "ok", None)
        return token

    async def _check_password(self, email: str, password: str) -> tuple[Account | None, Verified]:
        usable = email and email.isprintable()  # a NUL cannot even be looked up
        account = await self.db.run(read_account, email) if usable else None
        verified = await self.passwords.verify(account.password_hash if account else None, password)
        return account, verified

    async def _check_proof(
        self, email: str, proof: str, key: bytes
    ) -> tuple[Account | None, Verified]:
        account = await self.db.run(read_account, email) if email.isprintable() else None
        holds = account is not None and proof_holds(
            key, email, account.password_hash, proof, time.time()
        )
        return account, Verified(holds)

    async def _second_factor(self, account: Account, super_admin: bool, code: str) -> str | None:
        if account.totp_secret is None:
            return "no authenticator enrolled" if super_admin else None
        step = totp.matching_step(account.totp_secret, code)
        if step is None:
            return "wrong authenticator code"
        if not await self.db.run(use_totp_step, account.email, step):
            return "authenticator code replayed"
        return None

    async def _audit(self, email: str, attempt: Attempt, result: str, why: str | None) -> None:
        email = email if email.isprintable() else repr(email)
        await self.db.audit(
            email or None,
            "login",
            result,
            target=email or None,
            client_addr=attempt.client_addr,
            detail=why,
        )

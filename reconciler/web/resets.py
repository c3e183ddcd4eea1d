"""A forgotten password, with mail configured: anyone may ask for a reset link for an
address, and it is mailed to that address only. The answer is the same whether or not the
address has an account (no enumeration); one link per person per ``QUIET`` interval (no
mail flood); a person with an authenticator still types its current code on the reset
page, so a mailbox alone opens no account that has a second factor."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from reconciler.store.accounts import RESET, pending_link_since, record_audit
from reconciler.web.context import Portal
from reconciler.web.errors import BadRequest, PortalError
from reconciler.web.invitations import issue_reset
from reconciler.web.mail import masked
from reconciler.web.passwords import MAX_LENGTH

log = logging.getLogger(__name__)

QUIET = timedelta(minutes=10)
RESET_TTL = timedelta(hours=1)


async def request_own_reset(portal: Portal, email: str, client_addr: str) -> str:
    """Mail a reset link when ``email`` has an account; returns what to tell the asker
    (the same sentence either way). ``BadRequest`` when mail is not configured."""
    mailer = portal.mailer
    if mailer is None:
        raise BadRequest("ask an operator to run `pbx users reset EMAIL` on the host")
    email = email.strip().lower()[:MAX_LENGTH]
    if "@" not in email or not email.isprintable():
        raise BadRequest("type the email address of your account")
    portal.limiter.reserve(email, client_addr)  # a request counts like a failed login
    answer = f"If {masked(email)} has an account, a reset link is on its way (valid 1 hour)."
    since = await portal.db.run(pending_link_since, email, RESET)
    if since is not None and datetime.now(UTC) - since < QUIET:
        return answer
    deps = portal.deps
    try:
        link = await portal.db.run(
            issue_reset,
            email,
            base_url=portal.config.base_url,
            ttl=RESET_TTL,
            requested_by=None,
            state=deps.applied_state(),
            admins=deps.platform_admins(),
            client_addr=client_addr,
        )
    except BadRequest as exc:  # not declared, or no account: the same answer, audited
        await portal.db.run(
            record_audit,
            actor=None,
            action="reset_request",
            result="failed",
            target=email,
            client_addr=client_addr,
            detail=type(exc).__name__,
        )
        return answer
    try:
        await mailer.send_link(link)
    except PortalError:
        log.warning("a requested reset link could not be mailed to %s", masked(email))
    return answer

"""What the daemon calls after each pass: people git no longer entitles lose every session,
API token and pending invitation. Access checks already read the current applied state on
each request, so this is the clean-up that also reaches other daemons' portals and scripts.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.model import State
from reconciler.store.accounts import Revoked, record_audit, revoke_all_except
from reconciler.store.runner import Connection
from reconciler.web.access import entitled_emails


def revoke_unentitled(
    conn: Connection, state: State, platform_admins: Mapping[str, str]
) -> Revoked:
    """Synchronous (call it from the pass's worker thread with the store connection).

    Never call it with a state that failed to load: an empty state would revoke everyone
    but the platform admins (harmless to data, but everyone must log in again)."""
    revoked = revoke_all_except(conn, entitled_emails(state, platform_admins))
    if revoked.total:
        record_audit(
            conn,
            actor="reconciler",
            action="revoke",
            result="ok",
            detail=(
                f"no longer in git: {revoked.sessions} session(s), {revoked.tokens} token(s), "
                f"{revoked.invitations} invitation(s)"
            ),
        )
    return revoked

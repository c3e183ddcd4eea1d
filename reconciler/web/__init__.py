"""The web portal and its JSON API: the reconciled and live state for people, by role.

Git stays the only place where configuration changes; the portal shows the applied state
(``PortalDeps``, implemented by the daemon) and the switches' live facts (``PresenceView``),
hands SIP credentials to their owner, and changes only an agent's runtime status.

Layout: ``ports`` (what the daemon provides, one narrow port per kind of fact), ``config``,
``access`` (pure authorization), ``login``/``sessions``/``invitations``/``entitlement`` (who is
calling), ``views`` (what is shown), ``actions`` (the few writes, audited). HTTP comes in
features (``feature.Feature``: routes, navigation, OpenAPI paths, ports), one module each:
``login_pages``, ``api``, ``platform``, ``tenants`` (with ``events``, its server-sent
events), ``invites``, ``account``, ``lockouts``; ``features`` lists them. ``context`` is the
per-app ``Portal`` and the request helpers, ``handling`` what handlers share, ``openapi``
the document's shared parts, ``middleware`` headers, errors and CSRF, ``addresslimit`` the
per-address budget of unauthenticated requests, ``server`` assembly and the bounded
listener.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.core.lazy import lazy_names

if TYPE_CHECKING:
    from reconciler.core.sync import SyncStatus
    from reconciler.web.config import PortalConfig, RateLimit, config_from_settings
    from reconciler.web.entitlement import revoke_unentitled
    from reconciler.web.invitations import InviteLink, NotEntitled, invite
    from reconciler.web.ports import NodeStatus, PortalDeps, TenantSync
    from reconciler.web.server import PortalServer, make_portal_app
    from reconciler.web.store_calls import StoreCalls

_WHERE = {
    "SyncStatus": "reconciler.core.sync",
    "PortalConfig": "reconciler.web.config",
    "RateLimit": "reconciler.web.config",
    "config_from_settings": "reconciler.web.config",
    "revoke_unentitled": "reconciler.web.entitlement",
    "InviteLink": "reconciler.web.invitations",
    "NotEntitled": "reconciler.web.invitations",
    "invite": "reconciler.web.invitations",
    "NodeStatus": "reconciler.web.ports",
    "PortalDeps": "reconciler.web.ports",
    "TenantSync": "reconciler.web.ports",
    "PortalServer": "reconciler.web.server",
    "make_portal_app": "reconciler.web.server",
    "StoreCalls": "reconciler.web.store_calls",
}
"""Where each name lives: imported on first use (``reconciler.core.lazy``)."""
__getattr__ = lazy_names(globals(), _WHERE)


__all__ = [
    "InviteLink",
    "NodeStatus",
    "NotEntitled",
    "PortalConfig",
    "PortalDeps",
    "PortalServer",
    "RateLimit",
    "StoreCalls",
    "SyncStatus",
    "TenantSync",
    "config_from_settings",
    "invite",
    "make_portal_app",
    "revoke_unentitled",
]

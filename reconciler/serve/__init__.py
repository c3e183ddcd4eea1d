"""What FreeSWITCH is told: the immutable snapshot of the applied state, its file on disk,
the Jinja2 templates, the mod_xml_curl answer and its HTTP listener. No database query and
no ESL round trip ever happens on the request path. What the rest of the program uses is
exported here; one concept per module:

    snapshot     records + the pure build (what may be served)
    inert        the second wall: tenant strings FreeSWITCH would interpret
    persist      what a persisted file promises: identity binding, atomic write, errors
    generation   the file: the served view as one checksummed, mapped index
    templating   the Jinja2 templates (shipped in the top-level templates/, overridable)
    xmlcurl      pure: form parsing, answer(snapshot, form, templates), label sets
    app          the aiohttp application: auth, bounded bodies, cache, /readyz
    listener     ListenerLimits and start_server: timeouts, a connection cap, an fd share
    logthrottle  log lines caused by peers, bounded
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.core.lazy import lazy_names

if TYPE_CHECKING:
    from reconciler.serve.listener import (
        ListenerLimits,
        ListenerUnavailable,
        bound_port,
        start_server,
    )
    from reconciler.serve.outcomes import Result, Section
    from reconciler.serve.persist import (
        EmptySnapshotRefused,
        PersistStatus,
        SnapshotError,
        SnapshotMismatch,
        SnapshotNotPersisted,
    )
    from reconciler.serve.snapshot import Snapshot, build_snapshot
    from reconciler.serve.templating import TemplateLoadError, Templates, load_templates
    from reconciler.serve.xmlcurl import XML_PATH, answer
    from reconciler.serve.xmlcurl_app import basic_auth_matches, make_app, readiness

_WHERE = {
    "ListenerLimits": "reconciler.serve.listener",
    "ListenerUnavailable": "reconciler.serve.listener",
    "bound_port": "reconciler.serve.listener",
    "start_server": "reconciler.serve.listener",
    "EmptySnapshotRefused": "reconciler.serve.persist",
    "PersistStatus": "reconciler.serve.persist",
    "SnapshotError": "reconciler.serve.persist",
    "SnapshotMismatch": "reconciler.serve.persist",
    "SnapshotNotPersisted": "reconciler.serve.persist",
    "Snapshot": "reconciler.serve.snapshot",
    "build_snapshot": "reconciler.serve.snapshot",
    "TemplateLoadError": "reconciler.serve.templating",
    "Templates": "reconciler.serve.templating",
    "load_templates": "reconciler.serve.templating",
    "XML_PATH": "reconciler.serve.xmlcurl",
    "Result": "reconciler.serve.outcomes",
    "Section": "reconciler.serve.outcomes",
    "answer": "reconciler.serve.xmlcurl",
    "basic_auth_matches": "reconciler.serve.xmlcurl_app",
    "make_app": "reconciler.serve.xmlcurl_app",
    "readiness": "reconciler.serve.xmlcurl_app",
}
"""Where each name lives: imported on first use (``reconciler.core.lazy``): an xml_curl
worker loads the generation's reader and the listener, not the snapshot builder."""
__getattr__ = lazy_names(globals(), _WHERE)


__all__ = [
    "XML_PATH",
    "EmptySnapshotRefused",
    "ListenerLimits",
    "ListenerUnavailable",
    "PersistStatus",
    "Result",
    "Section",
    "Snapshot",
    "SnapshotError",
    "SnapshotMismatch",
    "SnapshotNotPersisted",
    "TemplateLoadError",
    "Templates",
    "answer",
    "basic_auth_matches",
    "bound_port",
    "build_snapshot",
    "load_templates",
    "make_app",
    "readiness",
    "start_server",
]

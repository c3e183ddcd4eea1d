"""``pbx run``: the long-running process. ``root.Daemon`` composes the rooms; each concern
(database and leadership, the pass loop, served snapshot, live switches, triggers, HTTP and
the xml_curl workers, status) has a module of its own. ``serve_node.ServeNode`` is
``pbx serve``: the served snapshot, the database's notifications and the listeners alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.core.lazy import lazy_names

if TYPE_CHECKING:
    from reconciler.daemon.config import DaemonConfig, default_state_dir
    from reconciler.daemon.root import Daemon
    from reconciler.daemon.startup import run_daemon

_WHERE = {
    "DaemonConfig": "reconciler.daemon.config",
    "default_state_dir": "reconciler.daemon.config",
    "Daemon": "reconciler.daemon.root",
    "run_daemon": "reconciler.daemon.startup",
}
"""Where each name lives: imported on first use (``reconciler.core.lazy``)."""
__getattr__ = lazy_names(globals(), _WHERE)


__all__ = ["Daemon", "DaemonConfig", "default_state_dir", "run_daemon"]

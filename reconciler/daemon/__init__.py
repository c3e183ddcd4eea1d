"""``pbx run``: the long-running process. ``app.Daemon`` composes the rooms; each concern
(database and leadership, the pass loop, served snapshot, live switches, triggers, HTTP,
status) has a module of its own."""

from reconciler.daemon.config import DaemonConfig, default_state_dir
from reconciler.daemon.root import Daemon
from reconciler.daemon.startup import run_daemon

__all__ = ["Daemon", "DaemonConfig", "default_state_dir", "run_daemon"]

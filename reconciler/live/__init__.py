"""The live side: every FreeSWITCH node's mod_callcenter, read and changed over the Event
Socket. What the rest of the program uses is exported here; the modules are internal."""

from reconciler.core.served import managed_domains
from reconciler.live.callcenter import DesiredLive, desired_live
from reconciler.live.nodes import (
    LiveReconciler,
    NodeReport,
    NodeSpec,
    NodeSpecError,
    parse_node_specs,
)

__all__ = [
    "DesiredLive",
    "LiveReconciler",
    "NodeReport",
    "NodeSpec",
    "NodeSpecError",
    "desired_live",
    "managed_domains",
    "parse_node_specs",
]

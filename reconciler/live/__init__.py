"""The live side: every FreeSWITCH node's mod_callcenter, read and changed over the Event
Socket, and what the switches say is happening right now (the presence cache). What the rest
of the program uses is exported here; the modules are internal.

Rooms: ``esl`` (the stdlib-only ESL client; its layers are the ``esl_*`` modules),
``listings`` (mod_callcenter listings read into records), ``desired`` (what every switch
should hold), ``commands`` (the only place that spells ``callcenter_config``, refusing unsafe
values), ``plan`` (pure diff), ``apply`` (read and send), ``report``, ``reconnect``,
``node_spec``, ``nodes`` (one reconciler per switch), ``presence`` (registrations, agents and
callers, kept fresh from events).
"""

from reconciler.core.served import managed_domains
from reconciler.live.apply import (
    ChangeResult,
    LiveApplyReport,
    NodeMemory,
    apply_live,
    next_digests,
    next_owed_statuses,
    read_live,
)
from reconciler.live.desired import (
    DesiredAgent,
    DesiredLive,
    DesiredQueue,
    DesiredTier,
    desired_live,
    is_managed,
)
from reconciler.live.errors import (
    CallcenterError,
    NodeSpecError,
    NodeTimeout,
    NodeUnreachable,
    UnknownAgent,
    UnsafeArgument,
)
from reconciler.live.listings import (
    AGENT_NUMBER_FIELDS,
    LiveAgent,
    LiveQueue,
    LiveState,
    LiveTier,
    parse_agent_list,
    parse_queue_list,
    parse_tier_list,
)
from reconciler.live.node_spec import NodeSpec, parse_node_spec, parse_node_specs
from reconciler.live.nodes import LiveReconciler, NodeReconciler
from reconciler.live.plan import LiveChange, LivePlan, plan_live
from reconciler.live.presence import PresenceCache
from reconciler.live.reconnect import ReconnectPolicy
from reconciler.live.report import NodeReport

__all__ = [
    "AGENT_NUMBER_FIELDS",
    "CallcenterError",
    "ChangeResult",
    "DesiredAgent",
    "DesiredLive",
    "DesiredQueue",
    "DesiredTier",
    "LiveAgent",
    "LiveApplyReport",
    "LiveChange",
    "LivePlan",
    "LiveQueue",
    "LiveReconciler",
    "LiveState",
    "LiveTier",
    "NodeMemory",
    "NodeReconciler",
    "NodeReport",
    "NodeSpec",
    "NodeSpecError",
    "NodeTimeout",
    "NodeUnreachable",
    "PresenceCache",
    "ReconnectPolicy",
    "UnknownAgent",
    "UnsafeArgument",
    "apply_live",
    "desired_live",
    "is_managed",
    "managed_domains",
    "next_digests",
    "next_owed_statuses",
    "parse_agent_list",
    "parse_node_spec",
    "parse_node_specs",
    "parse_queue_list",
    "parse_tier_list",
    "plan_live",
    "read_live",
]

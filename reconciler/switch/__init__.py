"""The switch side: one ``NodeSession`` per FreeSWITCH node (its ESL connections, reconnect
policy, union subscription, event fan-out) and the engines it runs (``engine``: the
protocol). What the rest of the program uses is exported here; the modules are internal.

Rooms: ``session``, ``engine``, ``api`` (an engine's read/write channel), ``errors``,
``reconnect``, ``node_spec``; ``callcenter/`` (mod_callcenter: listings, desired, commands
(the only place that spells ``callcenter_config``), plan, apply, report, engine, preview) and
``presence/`` (registrations, facts, cache: registrations, agents and callers kept fresh from
events). The ESL client itself is ``reconciler.esl``, a library.
"""

from reconciler.core.served import managed_domains
from reconciler.switch.callcenter.apply import (
    ChangeResult,
    LiveApplyReport,
    NodeMemory,
    apply_live,
    next_digests,
    next_owed_statuses,
    read_live,
)
from reconciler.switch.callcenter.desired import (
    DesiredAgent,
    DesiredLive,
    DesiredQueue,
    DesiredTier,
    desired_live,
    is_managed,
)
from reconciler.switch.callcenter.engine import CallcenterEngine, CallcenterEngines
from reconciler.switch.callcenter.listings import (
    AGENT_NUMBER_FIELDS,
    LiveAgent,
    LiveQueue,
    LiveState,
    LiveTier,
    parse_agent_list,
    parse_queue_list,
    parse_tier_list,
)
from reconciler.switch.callcenter.plan import LiveChange, LivePlan, plan_live
from reconciler.switch.callcenter.report import NodeReport
from reconciler.switch.engine import Engine, Lane, Runs
from reconciler.switch.errors import (
    CallcenterError,
    NodeSpecError,
    NodeTimeout,
    NodeUnreachable,
    UnknownAgent,
    UnsafeArgument,
)
from reconciler.switch.node_spec import NodeSpec, parse_node_spec, parse_node_specs
from reconciler.switch.presence.cache import PresenceCache, PresenceEngine
from reconciler.switch.reconnect import ReconnectPolicy
from reconciler.switch.session import NodeSession

__all__ = [
    "AGENT_NUMBER_FIELDS",
    "CallcenterEngine",
    "CallcenterEngines",
    "CallcenterError",
    "ChangeResult",
    "DesiredAgent",
    "DesiredLive",
    "DesiredQueue",
    "DesiredTier",
    "Engine",
    "Lane",
    "LiveAgent",
    "LiveApplyReport",
    "LiveChange",
    "LivePlan",
    "LiveQueue",
    "LiveState",
    "LiveTier",
    "NodeMemory",
    "NodeReport",
    "NodeSession",
    "NodeSpec",
    "NodeSpecError",
    "NodeTimeout",
    "NodeUnreachable",
    "PresenceCache",
    "PresenceEngine",
    "ReconnectPolicy",
    "Runs",
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

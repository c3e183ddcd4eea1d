"""The switch side: one ``NodeSession`` per FreeSWITCH node (its ESL connections, reconnect
policy, union subscription, event fan-out) and the engines it runs (``engine``: the
protocol). What the rest of the program uses is exported here; the modules are internal.

Rooms: ``session``, ``engine``, ``api`` (an engine's read/write channel), ``errors``,
``reconnect``, ``node_spec``; ``callcenter/`` (mod_callcenter: listings, desired, commands
(the only place that spells ``callcenter_config``), plan, apply, report, engine, preview) and
``presence/`` (registrations, facts, cache: registrations, agents and callers kept fresh from
events). The ESL client itself is ``reconciler.esl``, a library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.core.lazy import lazy_names

if TYPE_CHECKING:
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

_WHERE = {
    "AGENT_NUMBER_FIELDS": "reconciler.switch.callcenter.listings",
    "CallcenterEngine": "reconciler.switch.callcenter.engine",
    "CallcenterEngines": "reconciler.switch.callcenter.engine",
    "CallcenterError": "reconciler.switch.errors",
    "ChangeResult": "reconciler.switch.callcenter.apply",
    "DesiredAgent": "reconciler.switch.callcenter.desired",
    "DesiredLive": "reconciler.switch.callcenter.desired",
    "DesiredQueue": "reconciler.switch.callcenter.desired",
    "DesiredTier": "reconciler.switch.callcenter.desired",
    "Engine": "reconciler.switch.engine",
    "Lane": "reconciler.switch.engine",
    "LiveAgent": "reconciler.switch.callcenter.listings",
    "LiveApplyReport": "reconciler.switch.callcenter.apply",
    "LiveChange": "reconciler.switch.callcenter.plan",
    "LivePlan": "reconciler.switch.callcenter.plan",
    "LiveQueue": "reconciler.switch.callcenter.listings",
    "LiveState": "reconciler.switch.callcenter.listings",
    "LiveTier": "reconciler.switch.callcenter.listings",
    "NodeMemory": "reconciler.switch.callcenter.apply",
    "NodeReport": "reconciler.switch.callcenter.report",
    "NodeSession": "reconciler.switch.session",
    "NodeSpec": "reconciler.switch.node_spec",
    "NodeSpecError": "reconciler.switch.errors",
    "NodeTimeout": "reconciler.switch.errors",
    "NodeUnreachable": "reconciler.switch.errors",
    "PresenceCache": "reconciler.switch.presence.cache",
    "PresenceEngine": "reconciler.switch.presence.cache",
    "ReconnectPolicy": "reconciler.switch.reconnect",
    "Runs": "reconciler.switch.engine",
    "UnknownAgent": "reconciler.switch.errors",
    "UnsafeArgument": "reconciler.switch.errors",
    "apply_live": "reconciler.switch.callcenter.apply",
    "desired_live": "reconciler.switch.callcenter.desired",
    "is_managed": "reconciler.switch.callcenter.desired",
    "managed_domains": "reconciler.core.served",
    "next_digests": "reconciler.switch.callcenter.apply",
    "next_owed_statuses": "reconciler.switch.callcenter.apply",
    "parse_agent_list": "reconciler.switch.callcenter.listings",
    "parse_node_spec": "reconciler.switch.node_spec",
    "parse_node_specs": "reconciler.switch.node_spec",
    "parse_queue_list": "reconciler.switch.callcenter.listings",
    "parse_tier_list": "reconciler.switch.callcenter.listings",
    "plan_live": "reconciler.switch.callcenter.plan",
    "read_live": "reconciler.switch.callcenter.apply",
}
"""Where each name lives: imported on first use (``reconciler.core.lazy``): ``pbx run``
parses its ``--freeswitch`` nodes before spawning its xml_curl workers, without loading the
sessions, the engines and the store they reach."""
__getattr__ = lazy_names(globals(), _WHERE)


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

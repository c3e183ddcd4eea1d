"""The only place that spells ``callcenter_config`` commands, and the second wall against a
value that could run code on a switch.

Arguments pass through ``quote_arg`` (FreeSWITCH's blank/quote/backslash tokenizer), but
quoting is not enough: an agent's contact is a dial string the switch expands when it calls
the agent, so ``${system(...)}`` or ``{api_on_answer=...}`` in it would run on the switch.
The spec validation refuses such values first; this module refuses them again, whatever the
caller: any argument holding ``$``, ``{``, ``}`` or a control character, a contact that is
not ``user/<digits>@<the agent's own domain>`` or ``sofia/gateway/<gateway>/<+E.164>``, a
type or status that mod_callcenter does not spell, raises ``UnsafeArgument`` and no command
string exists to be sent.
"""

from __future__ import annotations

from typing import Final

from reconciler.core.switch_args import quote_arg
from reconciler.switch.callcenter.desired import domain_of
from reconciler.switch.errors import UnsafeArgument
from specs_schema import shapes

CC: Final = "callcenter_config"
AGENT_STATUSES: Final = ("Logged Out", "Available", "Available (On Demand)", "On Break")
AGENT_TYPES: Final = ("Callback", "uuid-standby")
FRESH_AGENT_STATUS: Final = "Logged Out"  # the status `agent add` gives a new agent

_FORBIDDEN: Final = frozenset("${}")


def safe(value: str, what: str) -> str:
    """``value`` quoted for the tokenizer, or UnsafeArgument when it could be expanded."""
    for char in value:
        code = ord(char)
        if char in _FORBIDDEN or code < 0x20 or 0x7F <= code < 0xA0 or char in "\u2028\u2029":
            raise UnsafeArgument(f"{what} {value!r}: {char!r} is not allowed in a switch command")
    return quote_arg(value)


def safe_contact(agent: str, contact: str) -> str:
    """An agent's contact, only in one of the two shapes a tenant may dial
    (``specs_schema.shapes``: the same rule the spec validation applies)."""
    safe(contact, "contact")
    domain = domain_of(agent)
    if domain and shapes.is_agent_contact(contact, domain, ()):
        return quote_arg(contact)
    if shapes.gateway_contact_parts(contact) is not None:
        return quote_arg(contact)
    raise UnsafeArgument(
        f"contact {contact!r} of {agent}: only user/<digits>@<its own domain> or "
        "sofia/gateway/<gateway>/<+E.164> are sent"
    )


def _number(value: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsafeArgument(f"{what} {value!r}: not an integer")
    return str(value)


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise UnsafeArgument(f"{what} {value!r}: not one of {', '.join(allowed)}")
    return quote_arg(value)


def queue_command(action: str, queue: str) -> str:
    """``queue load|reload|unload <queue>``."""
    return f"{CC} queue {action} {safe(queue, 'queue')}"


def agent_add(agent: str, agent_type: str) -> str:
    return f"{CC} agent add {safe(agent, 'agent')} {_one_of(agent_type, AGENT_TYPES, 'type')}"


def agent_del(agent: str) -> str:
    return f"{CC} agent del {safe(agent, 'agent')}"


def agent_set(key: str, agent: str, value: str | int) -> str:
    """``agent set <key> <agent> <value>`` for the keys the reconciler owns."""
    name = safe(agent, "agent")
    if key == "contact":
        text = safe_contact(agent, str(value))
    elif key == "type":
        text = _one_of(str(value), AGENT_TYPES, "type")
    elif key == "status":
        text = _one_of(str(value), AGENT_STATUSES, "status")
    else:
        text = _number(value, key) if not isinstance(value, str) else safe(value, key)
    return f"{CC} agent set {safe(key, 'key')} {name} {text}"


def agent_status(agent: str, status: str) -> str:
    """The status a person asks for, always single-quoted (as the portal and the dialplan
    feature codes send it): ``agent set status <agent> '<status>'``."""
    if status not in AGENT_STATUSES:
        raise UnsafeArgument(f"status {status!r}: not one of {', '.join(AGENT_STATUSES)}")
    return f"{CC} agent set status {safe(agent, 'agent')} '{status}'"


def tier_add(queue: str, agent: str, level: int, position: int) -> str:
    return (
        f"{CC} tier add {safe(queue, 'queue')} {safe(agent, 'agent')} "
        f"{_number(level, 'level')} {_number(position, 'position')}"
    )


def tier_set(key: str, queue: str, agent: str, value: int) -> str:
    """``tier set level|position <queue> <agent> <value>``."""
    return (
        f"{CC} tier set {safe(key, 'key')} {safe(queue, 'queue')} {safe(agent, 'agent')} "
        f"{_number(value, key)}"
    )


def tier_del(queue: str, agent: str) -> str:
    return f"{CC} tier del {safe(queue, 'queue')} {safe(agent, 'agent')}"


LIST_AGENTS: Final = f"{CC} agent list"
LIST_TIERS: Final = f"{CC} tier list"
LIST_QUEUES: Final = f"{CC} queue list"


def list_members(queue: str) -> str:
    """``queue list members <queue>``: the callers in one queue."""
    return f"{CC} queue list members {safe(queue, 'queue')}"

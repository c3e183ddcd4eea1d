"""The agent enums of the spec contract, apart from its pydantic models: the served snapshot
and the xml_curl workers need their spellings, not pydantic (``specs_schema.models``
re-exports them)."""

from __future__ import annotations

from enum import StrEnum


class AgentType(StrEnum):
    CALLBACK = "callback"
    UUID_STANDBY = "uuid-standby"


class AgentStatus(StrEnum):
    """mod_callcenter status values, exact spelling (dispatch compares case-sensitively)."""

    LOGGED_OUT = "Logged Out"
    AVAILABLE = "Available"
    AVAILABLE_ON_DEMAND = "Available (On Demand)"
    ON_BREAK = "On Break"

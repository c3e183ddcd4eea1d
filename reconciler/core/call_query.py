"""What a person asks of one tenant's call history, and what they get back.

``CallQuery`` is decided by the portal (filters from the request, and ``only_extensions`` /
``only_agents`` from who is asking: a member sees the calls of their own extensions, an
agent also the queue calls they answered; ``None`` means the whole tenant). The store turns
it into one parameterised query on the tenant's own schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler.core.call_record import CallRecord

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class CallQuery:
    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    outcome: str | None = None
    extension: str | None = None
    queue: str | None = None
    number: str | None = None  # a substring of the caller's or the dialled number
    only_extensions: frozenset[str] | None = None  # None: every call of the tenant
    only_agents: frozenset[str] = frozenset()
    limit: int = PAGE_SIZE
    # keyset paging: the (started_at, uuid) of the last row of the previous page
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class CallPage:
    calls: tuple[CallRecord, ...]
    next_after: tuple[datetime, str] | None  # None on the last page


@dataclass(frozen=True, slots=True)
class QueueLevel:
    queue: str
    calls: int
    answered: int
    answered_within: int  # answered within the service level's seconds


@dataclass(frozen=True, slots=True)
class CallTotals:
    calls: int
    answered: int
    missed: int  # no answer, busy, abandoned
    average_talk_seconds: float
    queues: tuple[QueueLevel, ...]


@dataclass(frozen=True, slots=True)
class TenantVolume:
    """What a super admin sees of a tenant's calls: counts and minutes, no numbers."""

    tenant_id: str
    calls: int
    answered: int
    talk_seconds: int

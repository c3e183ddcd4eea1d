"""How each normalized record maps to a row of a tenant table, in both directions.

Reading and writing share these descriptors, so what ``apply`` writes is by construction what
``read`` rebuilds (the property ``plan(desired, read_state()) == empty`` rests on it).
Column lists are the records' own field names (queue fields are mod_callcenter's params),
except where a record field is not one column: a user's extensions live in the link table,
a DID's destination is two nullable foreign-key columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from reconciler.core.model import (
    Agent,
    Extension,
    InboundNumber,
    Kind,
    Outbound,
    OutboundRoute,
    Queue,
    Record,
    Tenant,
    Tier,
    User,
    outbound_from_values,
)

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A tenant table holding one kind of record."""

    kind: Kind
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    to_row: Callable[[Any], Row]
    from_row: Callable[[Row], Any]

    def key_of(self, record: Record) -> Row:
        row = dict(zip(self.columns, self.to_row(record), strict=True))
        return tuple(row[c] for c in self.key)


def _field_names(record_type: type[Record]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))  # type: ignore[arg-type]


def _plain(record_type: type[Record], name: str, key: tuple[str, ...]) -> Table:
    columns = _field_names(record_type)

    def to_row(record: Any) -> Row:
        return tuple(getattr(record, c) for c in columns)

    def from_row(row: Row) -> Any:
        return record_type(*row)

    return Table(record_type.kind, name, columns, key, to_row, from_row)


def _did_to_row(did: InboundNumber) -> Row:
    if did.destination_kind == "extension":
        return (did.number, did.destination, None)
    if did.destination_kind == "queue":
        return (did.number, None, did.destination)
    raise ValueError(f"unknown destination kind {did.destination_kind!r}")


def _did_from_row(row: Row) -> InboundNumber:
    number, extension, queue = row
    if extension is not None:
        return InboundNumber(number, "extension", extension)
    return InboundNumber(number, "queue", queue)


EXTENSIONS = _plain(Extension, "extensions", ("number",))
AGENTS = _plain(Agent, "agents", ("name",))
QUEUES = _plain(Queue, "queues", ("name",))
TIERS = _plain(Tier, "tiers", ("queue", "agent"))
USERS = Table(
    Kind.USER,
    "users",
    ("email", "name", "role"),
    ("email",),
    lambda u: (u.email, u.name, u.role),
    lambda row: User(row[0], row[1], row[2]),  # extensions are joined in from the links
)
INBOUND_NUMBERS = Table(
    Kind.INBOUND_NUMBER,
    "inbound_numbers",
    ("number", "extension", "queue"),
    ("number",),
    _did_to_row,
    _did_from_row,
)
_OUTBOUND_FIELDS = _field_names(Outbound)
OUTBOUND = Table(
    Kind.OUTBOUND,
    "outbound",
    ("key", *_OUTBOUND_FIELDS),
    ("key",),
    lambda o: (
        o.key,
        *(
            list(v) if isinstance(v, tuple) else v
            for v in (getattr(o, f) for f in _OUTBOUND_FIELDS)
        ),
    ),
    lambda row: outbound_from_values(row[1:]),
)
OUTBOUND_ROUTES = Table(
    Kind.OUTBOUND_ROUTE,
    "outbound_routes",
    ("match", "gateways"),
    ("match",),
    lambda r: (r.match, list(r.gateways)),
    lambda row: OutboundRoute(row[0], tuple(row[1])),
)
USER_EXTENSIONS = "user_extensions"
SIP_CREDENTIALS = "sip_credentials"
RETIRED_CREDENTIALS = "retired_credentials"
VOICEMAIL_PINS = "voicemail_pins"

TABLES: dict[Kind, Table] = {
    t.kind: t
    for t in (EXTENSIONS, USERS, AGENTS, QUEUES, TIERS, INBOUND_NUMBERS, OUTBOUND, OUTBOUND_ROUTES)
}

TENANT_COLUMNS: tuple[str, ...] = _field_names(Tenant)
"""Registry (``pbx.tenants``) columns that hold the ``Tenant`` record, in field order."""


def tenant_from_row(row: Sequence[Any]) -> Tenant:
    return Tenant(*row)

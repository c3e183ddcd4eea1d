"""The engine protocol: one long-lived activity on one switch (mod_callcenter's queues and
agents, the presence cache; next voicemail, call records, gateways), run by that node's
``NodeSession`` without knowing the others.

An engine says what events it subscribes to, what it does on every (re)connect (resync, or
a session that lives as long as the connection), what it does with each event, and which
lane it rides (``Lane``). How it reconciles its desired state is its own typed method
(``CallcenterEngine.set_desired``, ``PresenceCache.set_managed``): the desired states have
nothing in common but the session.

Where an engine runs (``Runs``), decided once per engine:

* ``EVERY_DAEMON`` — it only reads the switch and serves this daemon's memory (presence:
  each daemon serves its own portal);
* ``LEADER`` — it changes a switch or the database, so one daemon acts: the callcenter
  engine is connected on every daemon (a new leader resyncs at once) but holds a desired
  state only while its daemon leads (``clear_desired`` on lost leadership). An engine that
  stores what it sees (call records) is ``LEADER`` too, or writes idempotently keyed by the
  switch's own id (a call's UUID) so that every daemon that saw it stores it once.
"""

from __future__ import annotations

import enum
from typing import Protocol

from reconciler.esl import EslClient, EslConnection, EslEvent


class Lane(enum.Enum):
    """Which of a node's ESL connections an engine rides (see ``session``)."""

    EVENTS = "events"  # subscribed to the union of its engines' events, drained by a reader
    COMMANDS = "commands"  # no events: bulk pushes that must not stall the event stream


class Runs(enum.Enum):
    EVERY_DAEMON = "every daemon"
    LEADER = "leader"


class Engine(Protocol):
    """What a ``NodeSession`` needs of an engine; engines are added before it starts."""

    @property
    def lane(self) -> Lane: ...

    @property
    def runs(self) -> Runs: ...

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Event names for ``event plain`` (CUSTOM subclasses too); EVENTS lane only."""

    def attach(self, client: EslClient) -> None:
        """The lane's client, given once when the session builds it (for later commands)."""

    async def on_connect(self, conn: EslConnection) -> None:
        """Every (re)connect, after the subscription: resync; may run for the connection's
        life. Errors are logged by the session; they never reach another engine."""

    def on_event(self, event: EslEvent) -> None:
        """Called in the reader (keep it quick; never block): the lane's events, each once."""

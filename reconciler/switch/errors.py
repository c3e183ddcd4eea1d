"""The live side's leaves of the project's exception tree (``reconciler.core.errors``).

The ESL client keeps its own stdlib-only ``EslError`` tree; everything above it translates
those errors into these at the boundary (``raise NodeUnreachable(...) from exc``), so callers
decide by branch: a ``Permanent`` error waits for a person, a ``Transient`` one for time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.core.errors import Permanent, Transient
from reconciler.esl import EslError, EslTimeout


class NodeUnreachable(Transient):
    """A FreeSWITCH event socket is down, refused us, or dropped mid-command."""


class CallcenterError(Permanent):
    """mod_callcenter refused a command or answered something unreadable."""

    def __init__(self, message: str, *, command: str | None = None, reply: str | None = None):
        super().__init__(message)
        self.command = command
        self.reply = reply


class NodeSpecError(Permanent, ValueError):
    """A ``--freeswitch`` value we cannot use; the message never holds the password."""


class UnsafeArgument(Permanent, ValueError):
    """A value that could run code on the switch (``${...}``, ``{var=...}``, a control
    character, a contact that is not one of the two allowed shapes): never sent."""


class UnknownAgent(Permanent, LookupError):
    """A status change asked for an agent that is not one of the declared ``name@domain``."""


class NodeTimeout(Transient):
    """A switch did not answer one command in time (the connection may still be up)."""


@contextmanager
def translated(node: str) -> Iterator[None]:
    """Turn the stdlib-only ESL client's errors into this tree, at the boundary."""
    try:
        yield
    except EslTimeout as exc:
        raise NodeTimeout(f"{node}: {exc}") from exc
    except EslError as exc:
        raise NodeUnreachable(f"{node}: {exc}") from exc

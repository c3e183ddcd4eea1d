"""Asyncio client for FreeSWITCH's inbound Event Socket (mod_event_socket), stdlib only.

This package is a library: import from here, not from the modules below, which are split
by concern and may move. It imports only the standard library (one import-linter contract in
pyproject.toml fences the whole package; tests/test_import_contracts.py proves the fence by
planting an import), because it knows ESL, nothing PBX-specific.

Layers, bottom up (wire facts are in each module's docstring, from
shared/freeswitch/REFERENCE.md and the ESL transcripts):

* :mod:`.errors` — the exception tree below.
* :mod:`.frames` — sans-IO framing (:class:`EslFrameParser`, :func:`parse_event_plain`)
  and what we write (:func:`build_event_command`).
* :mod:`.router` — sans-IO: replies matched in order to waiting requests, background
  jobs by Job-UUID, events into a bounded buffer; knows every content type.
* :mod:`.connection` — :class:`EslConnection`, one authenticated socket: the I/O around
  the router, and the ESL verbs (auth, api, bgapi, event, exit).
* :mod:`.client` — :class:`EslClient`, one node kept connected: an explicit
  :class:`EslClientState`, reconnecting after the delay an injected policy gives, an
  ``on_connect`` hook after every connect. How the socket is opened (``connect``) and how long
  to wait between attempts (``retry_delay``) are the caller's.

Exceptions: the ``EslError`` tree, drawn in ``errors``.

``api()`` returns the api/response body verbatim (``"+OK\\n"``, ``"-ERR Agent not found!\\n"``,
``"Waiting"``): interpreting it is the caller's business.
"""

from __future__ import annotations

import logging
from typing import Final

from reconciler.esl.client import EslClient, EslClientState, RetryDelay
from reconciler.esl.client import OnConnect as OnConnect
from reconciler.esl.connection import EslConnection, OpenStream
from reconciler.esl.errors import (
    EslAuthError,
    EslCommandError,
    EslConnectionError,
    EslError,
    EslProtocolError,
    EslTimeout,
)
from reconciler.esl.frames import (
    EslEvent,
    EslFrame,
    EslFrameParser,
    build_event_command,
    parse_event_plain,
)
from reconciler.esl.router import EventCallback as EventCallback

__all__ = [
    "EslAuthError",
    "EslClient",
    "EslClientState",
    "EslCommandError",
    "EslConnection",
    "EslConnectionError",
    "EslError",
    "EslEvent",
    "EslFrame",
    "EslFrameParser",
    "EslProtocolError",
    "EslTimeout",
    "OpenStream",
    "RetryDelay",
    "build_event_command",
    "parse_event_plain",
]

# The logger every module of the package writes to (they name it, not __name__): one name.
log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8021

"""``Api``: one api command in, its reply text out; what every engine reads and writes a
switch through. ``connection_api`` binds it to one ESL connection, translating the stdlib
client's errors into the project's tree at this boundary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reconciler.esl import EslConnection
from reconciler.switch.errors import translated

Api = Callable[[str], Awaitable[str]]


def connection_api(conn: EslConnection, node: str, timeout: float) -> Api:
    """``api`` on one connection, its ESL errors translated at this boundary."""

    async def api(command: str) -> str:
        with translated(node):
            return await conn.api(command, timeout=timeout)

    return api

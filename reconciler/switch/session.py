"""One switch, one session per daemon: its ESL connections, their reconnect policy, the one
event subscription its engines need, and the fan-out of events and connects to them.

Two lanes, one ``EslClient`` each, built when the session starts and only for lanes that have
engines: ``EVENTS`` (subscribed to the union of its engines' events; every event goes to
every engine of the lane, in the reader) and ``COMMANDS`` (no events). They are kept apart on
purpose: the switch sends events only between the commands it runs and kills a listener that
falls more than 500 events behind, so a push of thousands of pipelined ``callcenter_config``
commands (or a ``queue load`` waiting on xml_curl) on the event connection could get the event
stream killed, and the events would in turn sit behind the push. So a daemon holds at most two
connections per node, whatever the number of engines: one per lane.

Both lanes share the reconnect policy (``reconnect``): a node that is down is probed every
0.2-1 s and every (re)connect runs each engine's ``on_connect`` at once (the resync), on that
very connection, concurrently, one engine's failure logged and kept from the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from reconciler.core.logs import register_secret
from reconciler.esl import (
    EslClient,
    EslClientState,
    EslConnection,
    EslError,
    EslEvent,
    OpenStream,
)
from reconciler.switch.engine import Engine, Lane
from reconciler.switch.node_spec import NodeSpec
from reconciler.switch.reconnect import ReconnectPolicy

log = logging.getLogger(__name__)


def union(subscriptions: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Every engine's event names once, in first-seen order (``build_event_command`` puts
    CUSTOM and its subclasses last)."""
    seen: dict[str, None] = {}
    for names in subscriptions:
        seen.update(dict.fromkeys(names))
    return tuple(seen)


class NodeSession:
    """One node's lanes and engines. ``start``/``stop`` are idempotent: every facade that
    uses the session may start it; the first start builds the clients."""

    def __init__(
        self,
        spec: NodeSpec,
        *,
        reconnect: ReconnectPolicy | None = None,
        connect: OpenStream | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        register_secret(spec.password)
        self.spec = spec
        self.name = spec.name
        self._policy = reconnect or ReconnectPolicy()
        self._connect = connect
        self._connect_timeout = connect_timeout
        self._engines: dict[Lane, list[Engine]] = {lane: [] for lane in Lane}
        self._clients: dict[Lane, EslClient] = {}

    def __repr__(self) -> str:
        lanes = ", ".join(f"{lane.value}={c.state.value}" for lane, c in self._clients.items())
        return f"<NodeSession {self.name} {lanes}>"

    def add(self, engine: Engine) -> None:
        """Add an engine to its lane; a lane's engines are fixed once its client exists."""
        if engine.lane in self._clients:
            raise RuntimeError(f"{self.name}: the {engine.lane.value} lane is already running")
        self._engines[engine.lane].append(engine)

    @property
    def engines(self) -> tuple[Engine, ...]:
        return tuple(e for lane in Lane for e in self._engines[lane])

    def client(self, lane: Lane) -> EslClient:
        """The lane's client (built on first use: every engine of the lane is added)."""
        if lane not in self._clients:
            self._clients[lane] = self._build(lane)
        return self._clients[lane]

    def connected(self, lane: Lane) -> bool:
        client = self._clients.get(lane)
        return client is not None and client.state is EslClientState.CONNECTED

    async def start(self) -> None:
        """Start connecting every lane that has engines (in the background)."""
        for lane in Lane:
            if self._engines[lane]:
                await self.client(lane).start()

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self._clients.values()), return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    def _build(self, lane: Lane) -> EslClient:
        engines = tuple(self._engines[lane])
        events = lane is Lane.EVENTS
        client = EslClient(
            self.spec.host,
            self.spec.port,
            self.spec.password,
            on_connect=self._connected(engines),
            on_event=self._fan_out(engines) if events else None,
            subscriptions=union([e.subscriptions for e in engines]) if events else (),
            connect=self._connect,
            connect_timeout=self._connect_timeout,
            retry_delay=self._policy.probe_delay,
            auth_retry_delay=self._policy.auth_delay,
            stable_after=self._policy.stable_after,
            name=self.name if lane is Lane.COMMANDS else f"{self.name} ({lane.value})",
        )
        for engine in engines:
            engine.attach(client)
        return client

    def _connected(self, engines: tuple[Engine, ...]) -> Callable[[EslConnection], Awaitable[None]]:
        async def on_connect(conn: EslConnection) -> None:
            # a lane's connect is over when its engines' are; a lone engine runs in place
            # (no task between it and the client: its end is the connection's end)
            if len(engines) == 1:
                await self._guarded_connect(engines[0], conn)
            else:
                await asyncio.gather(*(self._guarded_connect(e, conn) for e in engines))

        return on_connect

    async def _guarded_connect(self, engine: Engine, conn: EslConnection) -> None:
        """One engine's ``on_connect``; its failure is logged and kept from the others."""
        try:
            await engine.on_connect(conn)
        except EslError as exc:
            log.warning(
                "engine on_connect failed",
                extra={"fields": self._fields(engine, error=str(exc))},
            )
        except Exception:
            log.exception("engine on_connect raised", extra={"fields": self._fields(engine)})

    def _fields(self, engine: Engine, **more: str) -> dict[str, str]:
        return {"node": self.name, "engine": type(engine).__name__, **more}

    def _fan_out(self, engines: tuple[Engine, ...]) -> Callable[[EslEvent], None]:
        def on_event(event: EslEvent) -> None:
            for engine in engines:
                try:
                    engine.on_event(event)
                except Exception:
                    log.exception("engine on_event failed", extra={"fields": self._fields(engine)})

        return on_event

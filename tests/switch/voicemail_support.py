"""The switches' voicemail engine connected to a fake switch, for the tests that need one
(switch, web, daemon)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from reconciler.switch import NodeSession, NodeSpec, ReconnectPolicy
from reconciler.switch.voicemail.engine import VoicemailSwitches
from tests.fakes.freeswitch import FakeFreeSwitch

FAST = ReconnectPolicy(probe_base=0.02, probe_cap=0.1, probe_floor=0.01)


@contextlib.asynccontextmanager
async def connected_voicemail(fs: FakeFreeSwitch) -> AsyncIterator[VoicemailSwitches]:
    session = NodeSession(NodeSpec(fs.host, fs.port, fs.password), reconnect=FAST)
    switches = VoicemailSwitches([session], api_timeout=2.0)
    await session.start()
    try:
        async with asyncio.timeout(5):
            while not all(node.connected for node in switches.nodes):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        yield switches
    finally:
        await session.stop()

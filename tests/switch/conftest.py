"""The fake switch and the voicemail engine connected to it, for the voicemail modules."""

from collections.abc import AsyncIterator

import pytest

from reconciler.switch.voicemail.engine import VoicemailSwitches
from tests.fakes.freeswitch import FakeFreeSwitch
from tests.switch.voicemail_support import connected_voicemail


@pytest.fixture
async def fs() -> AsyncIterator[FakeFreeSwitch]:
    async with FakeFreeSwitch() as switch:
        yield switch


@pytest.fixture
async def boxes(fs: FakeFreeSwitch) -> AsyncIterator[VoicemailSwitches]:
    async with connected_voicemail(fs) as switches:
        yield switches

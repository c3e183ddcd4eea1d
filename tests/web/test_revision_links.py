"""Revisions link to their commit once ``--portal-revision-url`` is set (https only, exactly
one ``{revision}``); without it they stay plain text."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.config import config_from_settings
from tests.fakes.portal import SUPER, FakePortalDeps, history_entry
from tests.web.support import login, make_account

URL = "https://git.example.com/pbx/commit/{revision}"


@pytest.mark.parametrize(
    "bad",
    [
        "http://git.example.com/commit/{revision}",
        "https://git.example.com/commit/",
        "https://git.example.com/{revision}/{revision}",
        "https://git.example.com/commit/{revision}?x={other}",
        "https://{revision}.example.com/",
        "javascript:alert(1)//{revision}",
        "https://git.example.com/commit/{revision} x",
    ],
)
def test_a_bad_template_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="revision URL"):
        config_from_settings(revision_url=bad)


async def test_revisions_link_to_their_commit_in_activity_and_overview(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    deps.history_rows = [history_entry("acme", 1)]
    config = PortalConfig(public_url="http://portal.test", revision_url=URL)
    async with TestClient(TestServer(make_portal_app(deps, config))) as client:
        await login(client, SUPER, secret=make_account(portal_dsn, deps, SUPER), dsn=portal_dsn)
        activity = await (await client.get("/platform/activity")).text()
        commit = deps.history_rows[0].revision
        assert f'href="https://git.example.com/pbx/commit/{commit}"' in activity
        overview = await (await client.get("/platform")).text()
        assert 'href="https://git.example.com/pbx/commit/4f2a9c1e0b7d"' in overview


async def test_without_a_template_revisions_are_not_links(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await login(client, SUPER, secret=make_account(portal_dsn, deps, SUPER), dsn=portal_dsn)
    overview = await (await client.get("/platform")).text()
    assert "4f2a9c1e0b7d" in overview and "/commit/" not in overview

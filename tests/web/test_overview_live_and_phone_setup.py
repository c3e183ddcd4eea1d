"""The super admin's overview updates live (a node going down, a tenant turning invalid);
the extension and credentials pages say what a phone needs (registrar, port, transport),
the password only on the owner's reveal."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from urllib.parse import unquote

from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.ports import NodeStatus
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.support import csrf_of, login, make_account

CAROL = "carol@acme.example.com"  # member, extension 1010


async def test_the_overview_updates_live(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await login(client, SUPER, secret=make_account(portal_dsn, deps, SUPER), dsn=portal_dsn)
    page = await (await client.get("/platform?sync=invalid")).text()
    assert 'data-live="/platform/live?sync=invalid"' in page
    response = await client.get("/platform/live")
    assert response.headers["Content-Type"].startswith("text/event-stream")

    async def next_overview() -> str:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                message = json.loads(line[6:])
                assert message["id"] == "live-overview"
                return str(message["html"])

    first = await asyncio.wait_for(next_overview(), 10)
    assert "fs1:8021" in first and "disconnected" not in first
    deps.node_list = [NodeStatus("fs1:8021", False)]
    deps.sync = {
        **deps.sync,
        "acme": replace(deps.sync["acme"], spec_errors=("acme.yaml:3:1: bad",)),
    }
    update = await asyncio.wait_for(next_overview(), 10)
    assert "disconnected" in update and "acme.yaml:3:1: bad" in update
    response.close()


async def test_others_get_no_overview_stream(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await login(client, CAROL, secret=make_account(portal_dsn, deps, CAROL), dsn=portal_dsn)
    assert (await client.get("/platform/live")).status == 404


async def test_phone_setup_rows_and_the_password_only_on_reveal(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    config = PortalConfig(
        public_url="http://portal.test", sip_host="sip.example.net", sip_tls_port=5071
    )
    async with TestClient(TestServer(make_portal_app(deps, config))) as client:
        await login(client, CAROL, secret=make_account(portal_dsn, deps, CAROL), dsn=portal_dsn)
        password = deps.passwords["acme", "1010"]
        page = await (await client.get("/t/acme/extensions/1010")).text()
        for row in (
            "sip.example.net:5060;transport=udp",
            "sip.example.net:5060;transport=tcp",
            "sip.example.net:5071;transport=tls",
        ):
            assert row in page
        assert 'aria-label="Copy host for TLS"' in page and password not in page
        reveal = await client.post("/t/acme/extensions/1010/reveal", data={"csrf": csrf_of(page)})
        shown = await reveal.text()
        assert password in shown and 'aria-label="Copy password"' in shown
        assert "sip.example.net:5071;transport=tls" in shown


async def test_without_a_sip_host_phones_use_the_tenant_domain(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await login(client, CAROL, secret=make_account(portal_dsn, deps, CAROL), dsn=portal_dsn)
    page = unquote(await (await client.get("/t/acme/extensions/1010")).text())
    assert "acme.example.com:5060;transport=udp" in page
    assert "acme.example.com:5061;transport=tls" in page


def test_the_wave_qr_holds_the_account_as_grandstream_wave_reads_it() -> None:
    import xml.etree.ElementTree as ET

    from reconciler.store import SipCredentials
    from reconciler.web.phone_setup import transports, wave_account_xml

    creds = SipCredentials("1010", "acme.example.com", "pw<&>x")
    config = PortalConfig(public_url="http://portal.test", sip_host="sip.example.net")
    account = ET.fromstring(
        wave_account_xml(creds, transports(config, creds.domain)[0], "1010 Acme & Co")
    ).find("Account")
    assert account is not None
    fields = {child.tag: child.text or "" for child in account}
    assert fields["RegisterServer"] == "acme.example.com"
    assert fields["OutboundServer"] == "sip.example.net:5060"
    assert (fields["UserID"], fields["AuthID"], fields["AuthPass"]) == ("1010", "1010", "pw<&>x")
    assert fields["AccountName"] == "1010 Acme & Co"
    plain = PortalConfig(public_url="http://portal.test")
    xml = wave_account_xml(creds, transports(plain, creds.domain)[0], "x")
    assert "<OutboundServer></OutboundServer>" in xml

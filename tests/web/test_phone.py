"""The browser phone's server side: what ``POST /api/v1/.../phone`` hands the page (the HA1
of the tenant's realm, never the password; own enabled extensions only; session only;
audited; not cached), the phone page's states, its Content-Security-Policy and
Permissions-Policy, the content-hashed bundle, and the ``--phone-wss`` setting."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.cli.settings import resolve
from reconciler.cli.users import portal_config
from reconciler.core.errors import SettingsError
from reconciler.web import PortalConfig, make_portal_app, softphone
from reconciler.web.features import openapi_document
from reconciler.web.middleware import CSP
from reconciler.web.phone_bundle import BundleFinder
from reconciler.web.wss import parse_wss_url, parse_wss_urls
from tests.fakes.portal import SUPER, FakePortalDeps
from tests.web.support import login, make_account

ALICE, BOB, CAROL, GINA = (
    "alice@acme.example.com",
    "bob@acme.example.com",
    "carol@acme.example.com",
    "gina@globex.example.com",
)
WSS = ("wss://fs1.example.net:7443", "wss://fs2.example.net:7443")
PHONE = "/api/v1/tenants/{}/extensions/{}/phone"


@pytest.fixture
def config() -> PortalConfig:
    return PortalConfig(public_url="http://portal.test", phone_wss=WSS)


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A built phone script (what ``npm run build`` leaves in ``phone/dist``)."""
    name = "phone-ABCD1234.js"
    (tmp_path / name).write_text("/* phone */")
    (tmp_path / "manifest.json").write_text(json.dumps({"phone.js": name}))
    monkeypatch.setattr(softphone, "BUNDLE", BundleFinder(tmp_path))
    return name


@pytest.fixture
def no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(softphone, "BUNDLE", BundleFinder(tmp_path / "nothing"))


async def as_user(client: TestClient, deps: FakePortalDeps, dsn: str, email: str) -> str:
    secret = make_account(dsn, deps, email)
    return await login(client, email, secret=secret, dsn=dsn)


def audit_rows(dsn: str) -> list[tuple[str | None, str, str, str | None, str | None]]:
    from reconciler.store import connect
    from reconciler.store.accounts import read_audit

    with connect(dsn) as conn:
        return [(a.actor, a.action, a.result, a.target, a.detail) for a in read_audit(conn)]


async def test_the_phone_gets_the_ha1_of_its_realm_never_the_password_and_each_start_is_audited(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    response = await client.post(PHONE.format("acme", "1010"), headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    password = deps.passwords["acme", "1010"]
    expected = hashlib.md5(f"1010:acme.example.com:{password}".encode()).hexdigest()
    assert body == {
        "tenant": "acme",
        "extension": "1010",
        "uri": "sip:1010@acme.example.com",
        "realm": "acme.example.com",
        "authorization_username": "1010",
        "authorization_ha1": expected,
        "display_name": "Desk 1010",
        "wss_servers": list(WSS),
        "voicemail": False,
    }
    assert password not in await response.text()
    await client.post(PHONE.format("acme", "1010"), headers={"X-CSRF-Token": csrf})
    rows = [r for r in audit_rows(portal_dsn) if r[1] == "phone"]
    assert [r[:4] for r in rows] == [(CAROL, "phone", "ok", "1010")] * 2
    assert all(expected not in str(r) and password not in str(r) for r in audit_rows(portal_dsn))


async def test_without_the_csrf_header_the_phone_gets_nothing(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    await as_user(client, deps, portal_dsn, CAROL)
    response = await client.post(PHONE.format("acme", "1010"))
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf"
    assert not [r for r in audit_rows(portal_dsn) if r[1] == "phone"]


async def test_a_running_phone_may_go_on_only_while_the_extension_is_its_own(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    """The check a running phone makes before each call: no secret, not audited, and it
    stops being yes once the person is unlinked in git or logged out."""
    await as_user(client, deps, portal_dsn, CAROL)
    mine = await client.get(PHONE.format("acme", "1010"))
    assert mine.status == 204 and mine.headers["Cache-Control"] == "no-store"
    assert await mine.read() == b""
    assert (await client.get(PHONE.format("acme", "1001"))).status == 404  # a colleague's
    assert not [r for r in audit_rows(portal_dsn) if r[1] == "phone"]
    acme = deps.state["acme"]
    users = dict(acme.users)
    users[CAROL] = replace(users[CAROL], extensions=())
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    assert (await client.get(PHONE.format("acme", "1010"))).status == 404
    deps.replace_state({**deps.state, "acme": acme})
    client.session.cookie_jar.clear()
    assert (await client.get(PHONE.format("acme", "1010"))).status == 401


@pytest.mark.parametrize(
    ("who", "tenant", "number"),
    [
        (CAROL, "acme", "1001"),  # a colleague's extension
        (ALICE, "acme", "1010"),  # a tenant admin: sees it, but it is not hers to register
        (GINA, "acme", "1001"),  # another tenant's
        (SUPER, "globex", "2001"),  # a super admin sees everything, registers nothing
        (CAROL, "acme", "9999"),  # unknown
        (CAROL, "nosuch", "1010"),
    ],
)
async def test_anything_but_ones_own_extension_is_404(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, who: str, tenant: str, number: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, who)
    response = await client.post(PHONE.format(tenant, number), headers={"X-CSRF-Token": csrf})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_an_api_token_cannot_start_a_phone(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    created = await client.post(
        "/api/v1/tokens", json={"name": "script"}, headers={"X-CSRF-Token": csrf}
    )
    token = (await created.json())["token"]
    client.session.cookie_jar.clear()
    response = await client.post(
        PHONE.format("acme", "1010"), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    check = await client.get(
        PHONE.format("acme", "1010"), headers={"Authorization": f"Bearer {token}"}
    )
    assert check.status == 403


async def test_removed_unlinked_or_disabled_in_git_the_next_start_fails(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, BOB)
    url = PHONE.format("acme", "1003")
    headers = {"X-CSRF-Token": csrf}
    assert (await client.post(url, headers=headers)).status == 200
    acme = deps.state["acme"]
    users = dict(acme.users)
    users[BOB] = replace(users[BOB], extensions=("1002",))
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    assert (await client.post(url, headers=headers)).status == 404
    extensions = dict(acme.extensions)
    extensions["1002"] = replace(extensions["1002"], enabled=False)
    deps.replace_state({**deps.state, "acme": replace(acme, users=users, extensions=extensions)})
    assert (await client.post(PHONE.format("acme", "1002"), headers=headers)).status == 404
    users.pop(BOB)
    deps.replace_state({**deps.state, "acme": replace(acme, users=users)})
    response = await client.post(PHONE.format("acme", "1002"), headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "access_removed"


async def test_the_phone_page_allows_exactly_the_configured_wss_origins_and_the_microphone(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, bundle: str
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    page = await client.get("/phone")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["connect-src"] == "'self' " + " ".join(WSS)
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
    assert "microphone=(self)" in page.headers["Permissions-Policy"]
    html = await page.text()
    assert f'src="/phone/assets/{bundle}"' in html
    assert 'data-number="1002"' in html and 'data-number="1003"' in html
    assert 'data-number="1001"' not in html  # a colleague's
    assert page.headers["Cache-Control"] == "no-store"
    other = await client.get("/t/acme")
    assert other.headers["Content-Security-Policy"] == CSP
    assert "microphone=()" in other.headers["Permissions-Policy"]
    assert 'href="/phone"' in await other.text()  # the nav entry


async def test_the_bundle_is_served_by_its_hash_with_a_long_cache(
    client: TestClient, bundle: str
) -> None:
    response = await client.get(f"/phone/assets/{bundle}")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert (await client.get("/phone/assets/phone-OTHER123.js")).status == 404
    assert (await client.get("/phone/assets/..%2Fmanifest.json")).status == 404


async def test_without_a_build_the_page_names_the_command(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, no_bundle: None
) -> None:
    await as_user(client, deps, portal_dsn, BOB)
    html = await (await client.get("/phone")).text()
    assert 'id="phone-unbuilt"' in html
    assert "cd reconciler/web/phone &amp;&amp; npm ci &amp;&amp; npm run build" in html
    assert '<script src="/phone/assets/' not in html


@pytest.fixture
async def unconfigured(deps: FakePortalDeps) -> AsyncIterator[TestClient]:
    app = make_portal_app(deps, PortalConfig(public_url="http://portal.test"))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_without_a_wss_setting_the_page_says_so_and_no_call_links_show(
    unconfigured: TestClient, deps: FakePortalDeps, portal_dsn: str, bundle: str
) -> None:
    csrf = await as_user(unconfigured, deps, portal_dsn, BOB)
    page = await unconfigured.get("/phone")
    assert 'id="phone-unconfigured"' in await page.text()
    assert "wss:" not in page.headers["Content-Security-Policy"]
    assert "data-dial" not in await (await unconfigured.get("/t/acme")).text()
    revealed = await unconfigured.post("/t/acme/extensions/1002/reveal", data={"csrf": csrf})
    assert "Transport WSS" not in await revealed.text()
    response = await unconfigured.post(PHONE.format("acme", "1002"), headers={"X-CSRF-Token": csrf})
    assert response.status == 404


async def test_people_without_extensions_get_no_phone_and_numbers_dial(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str, bundle: str
) -> None:
    await as_user(client, deps, portal_dsn, SUPER)
    overview = await client.get("/platform")
    assert 'href="/phone"' not in await overview.text()
    assert 'id="phone-none"' in await (await client.get("/phone")).text()
    client.session.cookie_jar.clear()
    await as_user(client, deps, portal_dsn, ALICE)
    tenant = await (await client.get("/t/acme")).text()
    assert 'data-dial="1002"' in tenant and 'data-dial="1001"' not in tenant  # not herself
    people = await (await client.get("/t/acme/people")).text()
    assert 'data-dial="1010"' in people


def test_the_phone_is_in_the_openapi_document() -> None:
    doc = openapi_document("http://portal.test")
    operation = doc["paths"]["/tenants/{tenant}/extensions/{number}/phone"]["post"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert "authorization_ha1" in ok["required"] and "password" not in ok["properties"]
    check = doc["paths"]["/tenants/{tenant}/extensions/{number}/phone"]["get"]
    assert "content" not in check["responses"]["204"]


# -- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("wss://fs1.example.net:7443", "wss://fs1.example.net:7443"),
        ("WSS://FS1.Example.NET:7443/", "wss://fs1.example.net:7443"),
        ("wss://pbx.example.net", "wss://pbx.example.net:443"),
        ("wss://127.0.0.1:7443", "wss://127.0.0.1:7443"),
        ("wss://[2001:db8::1]:7443", "wss://[2001:db8::1]:7443"),
    ],
)
def test_a_wss_url_becomes_its_origin(given: str, origin: str) -> None:
    assert parse_wss_url(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "ws://fs1.example.net:5066",  # not TLS
        "https://fs1.example.net",
        "wss://user:pw@fs1.example.net:7443",  # userinfo
        "wss://fs1.example.net:7443/ws",  # a path
        "wss://fs1.example.net:7443?x=1",
        "wss://fs1.example.net:7443#x",
        "wss://*.example.net:7443",  # a wildcard would widen the CSP
        "wss://fs1.example.net:7443 'unsafe-inline'",
        "wss://fs1.example.net;script-src *",
        "wss://fs1.example.net:0",
        "wss://fs1.example.net:99999",
        "wss://-bad-.example.net",
        "wss://[::zz]:7443",
        "wss://",
    ],
)
def test_anything_but_a_plain_wss_origin_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="phone-wss"):
        parse_wss_url(given)


def test_the_wss_urls_come_from_the_flag_the_environment_or_the_config_file() -> None:
    assert parse_wss_urls(["wss://a.example:1", "wss://A.example:1/", "wss://b.example:2"]) == (
        "wss://a.example:1",
        "wss://b.example:2",
    )
    env = {"PBX_PHONE_WSS": "wss://fs1.example.net:7443, wss://fs2.example.net:7443"}
    config = portal_config(resolve({}, environ=env))
    assert config is not None and config.phone_wss == WSS
    flagged = portal_config(resolve({"phone_wss": ("wss://fs3.example.net",)}, environ=env))
    assert flagged is not None and flagged.phone_wss == ("wss://fs3.example.net:443",)
    from_file = portal_config(resolve({}, environ={}, config={"phone_wss": ["wss://x.example"]}))
    assert from_file is not None and from_file.phone_wss == ("wss://x.example:443",)
    default = portal_config(resolve({}, environ={}))
    assert default is not None and default.phone_wss == ()
    with pytest.raises(SettingsError, match="phone-wss"):
        portal_config(resolve({"phone_wss": ("wss://u:p@x.example",)}, environ={}))
    assert "--phone-wss" in CliRunner().invoke(main, ["run", "--help"]).output


async def test_the_credentials_page_names_each_wss_transport(
    client: TestClient, deps: FakePortalDeps, portal_dsn: str
) -> None:
    csrf = await as_user(client, deps, portal_dsn, CAROL)
    page = await client.post("/t/acme/extensions/1010/reveal", data={"csrf": csrf})
    html = await page.text()
    for n, url in enumerate(WSS, 1):
        assert f"<dt>Transport WSS ({n})</dt><dd><code>{url}</code></dd>" in html

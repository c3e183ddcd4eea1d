"""With mail configured, links reach the person: invitations from the portal are mailed to
the declared address through a real SMTP server, the inviter sees only where it went."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.web import PortalConfig, make_portal_app
from reconciler.web.mail import MailSettings, masked
from tests.fakes.portal import FakePortalDeps
from tests.mail_server import Inbox, smtp_server
from tests.web.support import csrf_of, login, make_account

ALICE, CAROL = "alice@acme.example.com", "carol@acme.example.com"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def mail_client(deps: FakePortalDeps, inbox: Inbox) -> AsyncIterator[TestClient]:
    config = PortalConfig(
        public_url="http://portal.test", mail=MailSettings.parse(inbox.url, "pbx@portal.test")
    )
    async with TestClient(TestServer(make_portal_app(deps, config))) as client:
        yield client


def test_addresses_are_masked() -> None:
    assert masked("alice@acme.example.com") == "a...@acme.example.com"


async def test_an_invitation_is_mailed_to_the_person_and_the_inviter_never_sees_the_link(
    mail_client: TestClient,
    deps: FakePortalDeps,
    portal_dsn: str,
    inbox: Inbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    make_account(portal_dsn, deps, ALICE)
    csrf = await login(mail_client, ALICE)
    response = await mail_client.post(
        "/api/v1/invitations", json={"email": CAROL}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201
    body = await response.json()
    assert body["url"] is None and body["sent_to"] == "c...@acme.example.com"
    (message,) = inbox.messages
    assert message["To"] == CAROL and message["From"] == "pbx@portal.test"
    (link,) = inbox.links()
    assert link.startswith("http://portal.test/activate/")
    token = link.rsplit("/", 1)[1]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert token not in ours and token not in await response.text()  # mail.log: the server's

    page = await mail_client.post("/invite", data={"csrf": csrf, "email": CAROL})
    text = await page.text()
    assert page.status == 200 and "c...@acme.example.com" in text and "/activate/" not in text
    (_, second) = inbox.links()

    mail_client.session.cookie_jar.clear()
    path = second.split("portal.test", 1)[1]
    form = await mail_client.get(path)
    password = "carol's own passphrase"
    activated = await mail_client.post(
        path,
        data={"csrf": csrf_of(await form.text()), "password": password, "confirmation": password},
    )
    assert activated.status == 200
    assert (await mail_client.get(link.split("portal.test", 1)[1])).status == 404  # replaced


async def test_an_unreachable_mail_server_is_a_clear_503(
    deps: FakePortalDeps, portal_dsn: str
) -> None:
    from tests.mail_server import free_port

    config = PortalConfig(
        public_url="http://portal.test",
        mail=MailSettings.parse(f"smtp://127.0.0.1:{free_port()}", "pbx@portal.test"),
    )
    async with TestClient(TestServer(make_portal_app(deps, config))) as client:
        make_account(portal_dsn, deps, ALICE)
        csrf = await login(client, ALICE)
        response = await client.post(
            "/api/v1/invitations", json={"email": CAROL}, headers={"X-CSRF-Token": csrf}
        )
        assert response.status == 503
        assert "mail could not be sent" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    "url", ["http://mail.example.net", "smtp://", "smtp://host:notaport", "mail.example.net"]
)
def test_a_malformed_smtp_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        MailSettings.parse(url.replace("://", "://user:s3cret@", 1), "pbx@example.net")
    assert "s3cret" not in str(caught.value)


async def test_a_forgotten_password_is_reset_through_the_mailbox_with_the_same_answer_for_all(
    mail_client: TestClient, deps: FakePortalDeps, portal_dsn: str, inbox: Inbox
) -> None:
    make_account(portal_dsn, deps, ALICE)
    answers = []
    for email in (ALICE, CAROL, "nobody@example.com", ALICE):  # Carol has no account yet
        page = await mail_client.get("/login/reset")
        response = await mail_client.post(
            "/login/reset", data={"csrf": csrf_of(await page.text()), "email": email}
        )
        assert response.status == 200
        answers.append((await response.text()).replace(masked(email), "X"))
    assert len(set(answers)) == 1 and "/activate/" not in answers[0]
    (link,) = inbox.links()  # one mail: to Alice, once (the second ask was too soon)
    assert inbox.messages[0]["To"] == ALICE
    path = link.split("portal.test", 1)[1]
    form = await mail_client.get(path)
    new = "alice's new passphrase"
    done = await mail_client.post(
        path, data={"csrf": csrf_of(await form.text()), "password": new, "confirmation": new}
    )
    assert done.status == 200
    csrf = await login(mail_client, ALICE, password=new)
    assert csrf


async def test_an_admin_mails_a_reset_to_their_agent_and_never_sees_the_link(
    mail_client: TestClient, deps: FakePortalDeps, portal_dsn: str, inbox: Inbox
) -> None:
    make_account(portal_dsn, deps, "bob@acme.example.com")
    make_account(portal_dsn, deps, ALICE)
    csrf = await login(mail_client, ALICE)
    response = await mail_client.post(
        "/api/v1/resets", json={"email": "bob@acme.example.com"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201
    assert (await response.json())["sent_to"] == "b...@acme.example.com"
    assert "/activate/" not in await response.text()
    assert len(inbox.links()) == 1
    assert (
        inbox.messages[0]["To"] == "bob@acme.example.com"
        and "Reset" in inbox.messages[0]["Subject"]
    )
    refused = await mail_client.post(
        "/api/v1/resets", json={"email": "gina@globex.example.com"}, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status == 400 and len(inbox.links()) == 1

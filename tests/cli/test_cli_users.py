"""``pbx users invite`` and ``pbx users reset`` against a real PostgreSQL: the link uses the
configured portal address, lifetimes are validated, an activated account is never
re-invited, resets go to the person (printed on the host, or mailed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.store import connect
from reconciler.web.invitations import activate, pending_invitation
from tests.conftest import EXAMPLE_TENANTS
from tests.fakes.portal import PASSWORD
from tests.mail_server import smtp_server

BOB = "bob@acme.example.com"


@pytest.fixture
def applied(pg_dsn: str, tmp_path: Path) -> tuple[str, Path]:
    tenants = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, tenants)
    code, _, err = pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 0, err
    return pg_dsn, tenants


def pbx(
    dsn: str, tenants: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [*args, "--database-url", dsn, "--tenants", str(tenants), "--freeswitch", "127.0.0.1:1:x"],
        env={"PBX_PORTAL_URL": "", "PBX_PORTAL_LISTEN": "", "PBX_SMTP_URL": "", **(env or {})},
    )
    return result.exit_code, result.stdout, result.stderr


def users(applied: tuple[str, Path], *args: str, **env: str) -> tuple[int, str, str]:
    return pbx(*applied, "users", *args, env=env)


def use_link(dsn: str, url: str, password: str = PASSWORD) -> str:
    token = url.strip().rsplit("/", 1)[1]
    with connect(dsn) as conn:
        return activate(conn, token, password=password, confirmation=password)


@pytest.mark.parametrize("ttl", ["-100", "0", "1e12", "nan", "inf"])
def test_an_invitation_lifetime_out_of_range_is_a_clear_usage_error(
    applied: tuple[str, Path], ttl: str
) -> None:
    code, first, _ = users(applied, "invite", BOB)
    assert code == 0
    code, out, err = users(applied, "invite", BOB, "--ttl", ttl)
    assert code == 2 and "60 to 2592000" in err and "Traceback" not in out + err
    with connect(applied[0]) as conn:  # the pending link was not replaced by a dead one
        assert pending_invitation(conn, first.strip().rsplit("/", 1)[1]).email == BOB


def test_the_link_uses_the_configured_portal_address(applied: tuple[str, Path]) -> None:
    code, out, _ = users(applied, "invite", BOB, "--portal-listen", "127.0.0.1:9443")
    assert code == 0 and out.startswith("http://127.0.0.1:9443/activate/")
    code, out, _ = users(applied, "invite", BOB, PBX_PORTAL_LISTEN="10.1.2.3:8443")
    assert code == 0 and out.startswith("http://10.1.2.3:8443/activate/")
    code, out, _ = users(applied, "invite", BOB, PBX_PORTAL_URL="https://pbx.example.net/")
    assert code == 0 and out.startswith("https://pbx.example.net/activate/")


def test_a_wildcard_portal_address_needs_a_public_url(applied: tuple[str, Path]) -> None:
    code, out, err = users(applied, "invite", BOB, "--portal-listen", "0.0.0.0:8443")
    assert code == 2 and "--portal-url" in err and "/activate/" not in out


def test_an_activated_account_is_reset_never_reinvited(applied: tuple[str, Path]) -> None:
    dsn = applied[0]
    code, out, _ = users(applied, "invite", BOB)
    use_link(dsn, out)
    code, _, err = users(applied, "invite", BOB)
    assert code == 1 and "already has an account" in err
    code, out, err = users(applied, "reset", BOB)
    assert code == 0 and "/activate/" in out
    assert use_link(dsn, out, "a brand new passphrase") == BOB


def test_a_reset_without_an_account_exits_1(applied: tuple[str, Path]) -> None:
    code, _, err = users(applied, "reset", BOB)
    assert code == 1 and "no activated account" in err


def test_with_mail_configured_links_are_mailed_and_only_the_masked_address_printed(
    applied: tuple[str, Path],
) -> None:
    with smtp_server() as inbox:
        env = {"PBX_SMTP_URL": inbox.url, "PBX_SMTP_FROM": "pbx@example.net"}
        code, out, err = users(applied, "invite", BOB, **env)
        assert code == 0, err
        assert out.strip() == "sent to b...@acme.example.com" and "/activate/" not in out + err
        (link,) = inbox.links()
        use_link(applied[0], link)
        code, out, _ = users(applied, "reset", BOB, **env)
        assert code == 0 and "/activate/" not in out
        assert len(inbox.links()) == 2 and inbox.messages[1]["To"] == BOB

"""SIP credentials: generated, hashed, kept, re-hashed, rotated, shown; never leaked."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from reconciler.core.plan import plan
from reconciler.core.plan_text import render_text, to_json
from reconciler.store import (
    StoreError,
    UnknownExtension,
    UnknownTenant,
    connect,
    read_a1_hashes,
    read_history,
    rotate_credentials,
    show_credentials,
)
from reconciler.store import credentials as credentials_module
from reconciler.store import writer as writer_module
from reconciler.store.credentials import PASSWORD_ALPHABET, new_password
from specs_schema.models import TenantSpec
from tests.store.test_support import converge, desired_of, make_spec, spec_data


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with connect(pg_dsn) as connection:
        yield connection


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _passwords(conn: psycopg.Connection, tenant_id: str) -> dict[str, str]:
    return {
        number: show_credentials(conn, tenant_id, number).password
        for number in ("101", "102", "103")
    }


def test_each_new_extension_gets_a_random_password_of_at_least_128_bits(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    passwords = _passwords(conn, "acme")
    assert len(set(passwords.values())) == 3
    for password in passwords.values():
        assert len(password) * math.log2(len(PASSWORD_ALPHABET)) >= 128
        assert set(password) <= set(PASSWORD_ALPHABET)


def test_passwords_are_phone_friendly_letters_and_digits() -> None:
    """1.5 % of the former URL-safe passwords began with '-', which some phones' config
    tools read as an option; look-alike characters are left out for people typing them."""
    drawn = [new_password() for _ in range(3000)]
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", p) for p in drawn)
    assert not set("".join(drawn)) & set("0O1lI-_")
    assert len(set(drawn)) == len(drawn)
    counts = Counter("".join(drawn))  # 96,000 characters: about 1,684 of each, give or take 40
    assert set(counts) == set(PASSWORD_ALPHABET)
    assert all(
        0.75 < n / (len(drawn) * 32 / len(PASSWORD_ALPHABET)) < 1.25 for n in counts.values()
    )


def test_the_a1_hash_is_md5_of_number_domain_and_password(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    hashes = read_a1_hashes(conn)
    for number, password in _passwords(conn, "acme").items():
        assert hashes[("acme", number)] == _md5(f"{number}:acme.example.com:{password}")
    creds = show_credentials(conn, "acme", "101")
    assert creds.to_dict() == {
        "username": "101",
        "domain": "acme.example.com",
        "password": creds.password,
    }
    assert creds.password not in repr(creds)


def test_updating_an_extension_keeps_its_credentials(conn: psycopg.Connection) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    before, hashes = _passwords(conn, "acme"), read_a1_hashes(conn)
    data = spec_data("acme")
    data["extensions"][0].update(name="Alice renamed", max_registrations=7, enabled=False)
    data["name"] = "Acme renamed"
    assert converge(conn, desired_of([TenantSpec.model_validate(data)])).ok
    assert _passwords(conn, "acme") == before
    assert read_a1_hashes(conn) == hashes


def test_a_domain_change_rehashes_every_extension_and_keeps_passwords(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    passwords = _passwords(conn, "acme")
    assert converge(conn, desired_of([make_spec("acme", domain="voip.acme.test")])).ok
    assert _passwords(conn, "acme") == passwords
    hashes = read_a1_hashes(conn)
    for number, password in passwords.items():
        assert hashes[("acme", number)] == _md5(f"{number}:voip.acme.test:{password}")
    assert show_credentials(conn, "acme", "101").domain == "voip.acme.test"


def test_rotation_replaces_one_password_and_its_hash_only(pg_dsn: str) -> None:
    with connect(pg_dsn) as conn, connect(pg_dsn) as listener:
        assert converge(conn, desired_of([make_spec("acme")])).ok
        before, hashes = _passwords(conn, "acme"), read_a1_hashes(conn)
        listener.execute("LISTEN pbx_applied")
        rotate_credentials(conn, "acme", "102", host="ops")
        after = _passwords(conn, "acme")
        assert after["102"] != before["102"]
        assert {k: v for k, v in after.items() if k != "102"} == {
            k: v for k, v in before.items() if k != "102"
        }
        new_hashes = read_a1_hashes(conn)
        assert new_hashes[("acme", "102")] == _md5(f"102:acme.example.com:{after['102']}")
        assert new_hashes[("acme", "101")] == hashes[("acme", "101")]
        assert [n.payload for n in listener.notifies(timeout=2, stop_after=1)] == ["acme"]
        latest = read_history(conn, tenant_id="acme")[0]
        assert (latest.action, latest.host) == ("rotate", "ops")


@pytest.mark.parametrize("action", ["show", "rotate"])
def test_unknown_tenants_and_extensions_are_errors(conn: psycopg.Connection, action: str) -> None:
    call = show_credentials if action == "show" else rotate_credentials
    with pytest.raises(UnknownTenant):
        call(conn, "acme", "101")  # nothing migrated yet
    assert converge(conn, desired_of([make_spec("acme")])).ok
    for tenant in ("nobody", "Not A Tenant!"):
        with pytest.raises(UnknownTenant):
            call(conn, tenant, "101")
    with pytest.raises(UnknownExtension) as excinfo:
        call(conn, "acme", "999")
    assert (excinfo.value.tenant_id, excinfo.value.extension) == ("acme", "999")


def test_passwords_appear_in_no_plan_history_log_or_error(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    desired = desired_of([make_spec("acme")])
    assert converge(conn, desired).ok
    data = spec_data("acme")
    data["domain"] = "other.example.com"
    data["extensions"].append({"number": "104", "name": "Dave"})
    changed = desired_of([TenantSpec.model_validate(data)])
    assert converge(conn, changed).ok
    rotate_credentials(conn, "acme", "101")
    passwords = list(_passwords(conn, "acme").values())
    passwords.append(show_credentials(conn, "acme", "104").password)

    # A credentials write that the database rejects: its DETAIL would quote the row.
    leaked = "S3cret-but-too-short"
    monkeypatch.setattr(
        writer_module,
        "credential_rows",
        lambda numbers, domain: [(n, leaked, "0" * 32) for n in numbers],
    )
    data["extensions"].append({"number": "105", "name": "Eve"})
    failing = desired_of([TenantSpec.model_validate(data)])
    report = converge(conn, failing)
    error = report.failed["acme"]
    assert "sip_credentials" in str(error)
    passwords.append(leaked)

    pending = plan(failing, {})
    texts = [
        render_text(pending),
        json.dumps(to_json(pending)),
        str(error),
        repr(error),
        repr(error.__cause__),
        repr(error.__context__),
        caplog.text,
        json.dumps([(h.changes, h.error) for h in read_history(conn)], default=str),
        json.dumps(
            conn.execute("SELECT row_to_json(t) FROM pbx.tenants t").fetchall(), default=str
        ),
    ]
    for password in passwords:
        for text in texts:
            assert password not in text


def test_a_failed_rotation_reports_without_the_new_password(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    leaked = "tooshort"
    monkeypatch.setattr(credentials_module, "new_password", lambda: leaked)
    with pytest.raises(StoreError) as excinfo:
        rotate_credentials(conn, "acme", "101")
    assert excinfo.value.__cause__ is None
    assert leaked not in str(excinfo.value)
    assert show_credentials(conn, "acme", "101").password != leaked


def _without_103(**kwargs: object) -> TenantSpec:
    data = spec_data("acme", **kwargs)  # type: ignore[arg-type]
    data["extensions"] = [e for e in data["extensions"] if e["number"] != "103"]
    data["users"][1]["extensions"] = ["102"]
    return TenantSpec.model_validate(data)


def _retired_rows(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    return conn.execute(
        "SELECT extension, expires_at > now() FROM tenant_acme.retired_credentials"
    ).fetchall()


def test_an_extension_re_added_within_the_grace_gets_its_password_back(
    conn: psycopg.Connection,
) -> None:
    """A file caught mid-write, or a removal undone: the phone's password still works."""
    assert converge(conn, desired_of([make_spec("acme")])).ok
    before, hashes = _passwords(conn, "acme"), read_a1_hashes(conn)
    assert converge(conn, desired_of([_without_103()])).ok
    with pytest.raises(UnknownExtension):  # kept, never shown
        show_credentials(conn, "acme", "103")
    assert ("acme", "103") not in read_a1_hashes(conn)
    assert converge(conn, desired_of([make_spec("acme")])).ok
    assert _passwords(conn, "acme") == before
    assert read_a1_hashes(conn) == hashes
    assert _retired_rows(conn) == []


def test_a_re_added_extension_is_hashed_for_the_domain_it_returns_to(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    password = show_credentials(conn, "acme", "103").password
    assert converge(conn, desired_of([_without_103()])).ok
    assert converge(conn, desired_of([_without_103(domain="voip.acme.test")])).ok
    assert converge(conn, desired_of([make_spec("acme", domain="voip.acme.test")])).ok
    assert show_credentials(conn, "acme", "103").password == password
    assert read_a1_hashes(conn)[("acme", "103")] == _md5(f"103:voip.acme.test:{password}")


def test_expired_retired_credentials_are_purged_and_never_reused(
    conn: psycopg.Connection,
) -> None:
    assert converge(conn, desired_of([make_spec("acme")])).ok
    password = show_credentials(conn, "acme", "103").password
    assert converge(conn, desired_of([_without_103()])).ok
    assert _retired_rows(conn) == [("103", True)]
    conn.execute("UPDATE tenant_acme.retired_credentials SET expires_at = now() - interval '1s'")
    assert converge(conn, desired_of([make_spec("acme")])).ok
    assert show_credentials(conn, "acme", "103").password != password
    assert _retired_rows(conn) == []
    # and a later write of the tenant forgets expired ones it was not asked about
    assert converge(conn, desired_of([_without_103()])).ok
    conn.execute("UPDATE tenant_acme.retired_credentials SET expires_at = now() - interval '1s'")
    data = spec_data("acme")
    data["name"] = "Acme renamed"
    data["extensions"] = [e for e in data["extensions"] if e["number"] != "103"]
    data["users"][1]["extensions"] = ["102"]
    assert converge(conn, desired_of([TenantSpec.model_validate(data)])).ok
    assert _retired_rows(conn) == []


def test_a_zero_grace_keeps_nothing(conn: psycopg.Connection) -> None:
    from datetime import timedelta

    assert converge(conn, desired_of([make_spec("acme")])).ok
    password = show_credentials(conn, "acme", "103").password
    assert converge(conn, desired_of([_without_103()]), credentials_grace=timedelta(0)).ok
    assert _retired_rows(conn) == []
    assert converge(conn, desired_of([make_spec("acme")])).ok
    assert show_credentials(conn, "acme", "103").password != password

"""``pbx plan`` skipping settled tenants prints exactly what a plan that parses and reads
everything prints (``--read-all``), whatever changed since the last apply: a hand edit in
the database, a changed, new, removed or conflicting file, a sound, a code upgrade."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import reconcile
from reconciler.cli.main import main
from reconciler.reconcile import Reconciler
from reconciler.store import PostgresStore
from tests.conftest import EXAMPLE_TENANTS

ALL = frozenset({"acme", "globex", "initech"})


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    target = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, target)
    return target


@pytest.fixture
def applied(pg_dsn: str, tenants: Path) -> str:
    code, _, err = _pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 0, err
    return pg_dsn


@pytest.fixture
def store(applied: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(applied)
    yield opened
    opened.close()


def _pbx(dsn: str, tenants: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [*args, "--database-url", dsn, "--tenants", str(tenants), "--freeswitch", "127.0.0.1:1:x"],
    )
    return result.exit_code, result.stdout, result.stderr


def _settled(store: PostgresStore, tenants: Path) -> frozenset[str]:
    return Reconciler(tenants, store, one_shot=True).plan_pass(full=True, settled=True).settled


def _same_as_full(dsn: str, tenants: Path, *extra: str) -> tuple[int, str, str]:
    """Text and JSON, with and without ``--detailed-exitcode``: the fast plan's output and
    exit code equal the full one's."""
    first: tuple[int, str, str] | None = None
    for args in (
        ("--no-live",),
        ("--no-live", "--detailed-exitcode"),
        ("--no-live", "--output", "json"),
        ("--live",),  # the live diff (an unreachable node) reads the settled tenants' records
    ):
        fast = _pbx(dsn, tenants, "plan", *args, *extra)
        full = _pbx(dsn, tenants, "plan", *args, *extra, "--read-all")
        assert fast == full, args
        first = first or fast
    assert first is not None
    return first


def test_apply_records_every_tenant_and_a_plan_then_skips_them(
    applied: str, tenants: Path, store: PostgresStore
) -> None:
    assert set(store.read_settled()) == ALL
    assert _settled(store, tenants) == ALL
    code, out, _ = _same_as_full(applied, tenants)
    assert (code, out) == (0, "No changes. The database matches the specs.\n")


def test_a_hand_edit_in_the_database_is_planned_back(
    applied: str, tenants: Path, store: PostgresStore
) -> None:
    with psycopg.connect(applied, autocommit=True) as conn:
        conn.execute("UPDATE tenant_acme.extensions SET name = 'Hand made' WHERE number = '1001'")
    assert _settled(store, tenants) == ALL - {"acme"}
    code, out, _ = _same_as_full(applied, tenants, "--detailed-exitcode")
    assert code == 2 and '~ extension 1001: name: "Hand made"' in out


def test_a_changed_file_is_parsed(applied: str, tenants: Path, store: PostgresStore) -> None:
    initech = tenants / "initech.yaml"
    initech.write_text(initech.read_text().replace("name: Peter Gibbons}", "name: Peter G}"))
    assert _settled(store, tenants) == ALL - {"initech"}
    code, out, _ = _same_as_full(applied, tenants, "--detailed-exitcode")
    assert code == 2 and "initech" in out


def test_a_removed_file_orphans_its_tenant(
    applied: str, tenants: Path, store: PostgresStore
) -> None:
    (tenants / "initech.yaml").unlink()
    assert _settled(store, tenants) == ALL - {"initech"}
    code, out, _ = _same_as_full(applied, tenants, "--detailed-exitcode")
    assert code == 2 and "initech" in out


def test_a_new_file_conflicting_with_a_settled_one_freezes_both(
    applied: str, tenants: Path, store: PostgresStore
) -> None:
    """The copy claims initech's domain and number: the cross-tenant rule names both files,
    so the settled one is parsed after all and reported frozen, as a full plan does."""
    text = (tenants / "initech.yaml").read_text()
    (tenants / "initrode.yaml").write_text(text.replace("id: initech", "id: initrode"))
    code, _, err = _same_as_full(applied, tenants)
    assert code == 1 and "initech.yaml" in err and "initrode.yaml" in err


def test_a_file_claiming_a_settled_tenant_id_freezes_it(applied: str, tenants: Path) -> None:
    (tenants / "stray.yaml").write_text("id: initech\ndomain: stray.example.org\nname: Stray\n")
    code, _, err = _same_as_full(applied, tenants)
    assert code == 1 and "stray.yaml" in err
    fast = _pbx(applied, tenants, "plan", "--no-live", "--output", "json")[1]
    assert '"initech"' in fast.split('"frozen_tenants"')[1]


def test_a_new_valid_file_is_planned(applied: str, tenants: Path) -> None:
    (tenants / "hooli.yaml").write_text(
        "id: hooli\ndomain: hooli.example.org\nname: Hooli\n"
        'extensions:\n  - {number: "201", name: Gavin}\n'
    )
    code, out, _ = _same_as_full(applied, tenants, "--detailed-exitcode")
    assert code == 2 and "+ extension 201" in out


def test_a_sound_added_beside_a_settled_tenant_is_validated(
    applied: str, tenants: Path, store: PostgresStore
) -> None:
    sounds = tenants / "acme" / "sounds"
    sounds.mkdir(parents=True)
    (sounds / "broken.wav").write_bytes(b"not a wave file")
    assert "acme" not in _settled(store, tenants)
    code, _, err = _same_as_full(applied, tenants)
    assert code == 1 and "broken.wav" in err


def test_another_version_of_the_code_trusts_no_recorded_digest(
    applied: str, tenants: Path, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "code_digest", lambda: "another release")
    assert _settled(store, tenants) == frozenset()
    code, out, _ = _same_as_full(applied, tenants)
    assert (code, out) == (0, "No changes. The database matches the specs.\n")


def test_a_daemon_full_pass_records_what_it_holds_fingerprints_of(
    applied: str, tenants: Path, store: PostgresStore
) -> None:
    """The daemon reads fingerprints before every full read, its start's included; its
    passes then record the tenants in sync (and only those)."""
    with psycopg.connect(applied, autocommit=True) as conn:
        conn.execute("DELETE FROM pbx.settled_tenants")
    daemon = Reconciler(tenants, store)
    daemon.run_pass(full=True)
    assert set(store.read_settled()) == ALL, "a start's fingerprints vouch for its first pass"
    with psycopg.connect(applied, autocommit=True) as conn:
        conn.execute("UPDATE tenant_acme.extensions SET name = 'Hand made' WHERE number = '1001'")
    daemon.run_pass(full=True)  # repairs acme: read again without a fingerprint
    assert _settled(store, tenants) == ALL - {"acme"}  # its row vouches for the old records
    daemon.run_pass(full=True)
    assert set(store.read_settled()) == ALL
    assert _settled(store, tenants) == ALL


HAND_EDITS = {
    "a queue's tiers truncated": "TRUNCATE tenant_acme.tiers",
    "a tier's level changed": "UPDATE tenant_acme.tiers SET level = level + 1",
    "a user added": "INSERT INTO tenant_globex.users (email, name, role)"
    " VALUES ('mallory@globex.example.com', 'Mallory', 'admin')",
    "an extension disabled": "UPDATE tenant_initech.extensions SET enabled = NOT enabled",
    "a password rotated": "UPDATE tenant_acme.sip_credentials SET a1_hash = md5('rotated')",
    "a counter row deleted": "DELETE FROM pbx.tenant_changes WHERE schema_name = 'tenant_globex'",
    "an extension renamed, counter row gone": "DELETE FROM pbx.tenant_changes"
    " WHERE schema_name = 'tenant_initech';"
    " UPDATE tenant_initech.extensions SET name = 'Hand made'",
}


def _hand_edit(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "edit", ["a queue's tiers truncated", "an extension renamed, counter row gone"]
)
def test_a_hand_edit_of_any_kind_is_planned_back(
    applied: str, tenants: Path, store: PostgresStore, edit: str
) -> None:
    """By its change counter, or by its rows where the tenant has no counter."""
    _hand_edit(applied, HAND_EDITS[edit])
    assert len(_settled(store, tenants)) == len(ALL) - 1
    code, out, _ = _same_as_full(applied, tenants, "--detailed-exitcode")
    assert code == 2 and out != "No changes. The database matches the specs.\n"


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(st.sampled_from(sorted(HAND_EDITS)), max_size=3, unique=True))
def test_the_plan_skipping_settled_tenants_is_the_plan_reading_all(
    applied: str, tenants: Path, edits: list[str]
) -> None:
    """Whatever hand edits follow an apply, the shortcut prints what reading all prints."""
    code, _, err = _pbx(applied, tenants, "apply", "--yes")  # back in sync, settled again
    assert code == 0, err
    for edit in edits:
        _hand_edit(applied, HAND_EDITS[edit])
    for args in (("--no-live", "--detailed-exitcode"), ("--no-live", "--output", "json")):
        fast = _pbx(applied, tenants, "plan", *args)
        assert fast == _pbx(applied, tenants, "plan", *args, "--read-all"), (edits, args)

"""The database commands of the CLI against a real PostgreSQL: plan, apply, credentials,
prune, render and status, with the exit codes INTERFACE.md fixes."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.conftest import EXAMPLE_TENANTS


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    target = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, target)
    return target


def pbx(dsn: str, tenants: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [*args, "--database-url", dsn, "--tenants", str(tenants), "--freeswitch", "127.0.0.1:1:x"],
        input=stdin,
    )
    return result.exit_code, result.stdout, result.stderr


def test_plan_apply_plan_cycle_with_detailed_exit_codes(pg_dsn: str, tenants: Path) -> None:
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--detailed-exitcode", "--no-live")
    assert code == 2
    assert "+ extension 1001" in out
    assert out.rstrip().endswith("Plan: 57 to add, 0 to change, 0 to destroy.")
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--no-live")
    assert code == 0, "without --detailed-exitcode changes exit 0"

    code, out, _ = pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 0
    assert "applied acme: 25 change(s)" in out
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--detailed-exitcode", "--no-live")
    assert (code, out) == (0, "No changes. The database matches the specs.\n")
    code, out, _ = pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 0 and "No changes" in out


def test_plan_shows_field_changes_and_json(pg_dsn: str, tenants: Path) -> None:
    assert pbx(pg_dsn, tenants, "apply", "--yes")[0] == 0
    acme = tenants / "acme.yaml"
    acme.write_text(acme.read_text().replace("name: Bob desk phone", "name: Bob's desk"))
    code, out, _ = pbx(
        pg_dsn, tenants, "plan", "--detailed-exitcode", "--no-live", "--tenant", "acme"
    )
    assert code == 2
    assert '~ extension 1002: name: "Bob desk phone" -> "Bob\'s desk"' in out
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--output", "json", "--no-live")
    payload = json.loads(out)
    assert payload["summary"] == {"add": 0, "change": 1, "destroy": 0}
    (change,) = payload["changes"]
    assert change["changed"] == {"name": {"old": "Bob desk phone", "new": "Bob's desk"}}


def test_plan_shows_and_apply_applies_the_platform_changes(pg_dsn: str, tenants: Path) -> None:
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--no-live")
    assert out.startswith("platform (_platform.yaml)\n")
    assert '  + platform_admin ops@pbx.example.net (name="Platform Operator")' in out
    payload = json.loads(pbx(pg_dsn, tenants, "plan", "--output", "json", "--no-live")[1])
    first, *rest = payload["changes"]
    assert first["scope"] == "platform" and "tenant" not in first
    assert first["kind"] == "platform_admin" and first["action"] == "create"
    assert rest[-1]["scope"] == "tenant" and rest[-1]["tenant"] == "initech"
    assert payload["summary"]["add"] == 57  # acme: outbound settings and 2 routes; 3 gateways

    code, out, _ = pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 0 and "applied platform: 5 change(s)" in out
    platform = tenants / "_platform.yaml"
    platform.write_text(platform.read_text().replace("On-call Engineer", "On-call"))
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--detailed-exitcode", "--no-live")
    assert code == 2
    assert out.splitlines()[:2] == [
        "platform (_platform.yaml)",
        '  ~ platform_admin oncall@pbx.example.net: name: "On-call Engineer" -> "On-call"',
    ]
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in out
    assert pbx(pg_dsn, tenants, "apply", "--yes")[0] == 0
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT result, changes->0->>'scope', changes->0->>'key' FROM pbx.apply_history"
            " WHERE tenant_id = '_platform' ORDER BY id"
        ).fetchall()
        names = dict(conn.execute("SELECT email, name FROM pbx.platform_admins").fetchall())
    assert rows == [
        ("applied", "platform", "oncall@pbx.example.net"),
        ("applied", "platform", "oncall@pbx.example.net"),
    ]
    assert names["oncall@pbx.example.net"] == "On-call"


def test_apply_refuses_without_yes_when_not_a_terminal(pg_dsn: str, tenants: Path) -> None:
    code, _, err = pbx(pg_dsn, tenants, "apply")
    assert code == 1
    assert "--yes" in err
    with psycopg.connect(pg_dsn) as conn:
        exists = conn.execute("SELECT to_regclass('pbx.tenants')").fetchone()
        rows = (
            conn.execute("SELECT count(*) FROM pbx.tenants").fetchone()
            if exists and exists[0]
            else (0,)
        )
    assert rows == (0,), "nothing applied"


def test_invalid_tenant_is_reported_and_skipped(pg_dsn: str, tenants: Path) -> None:
    globex = tenants / "globex.yaml"
    globex.write_text(globex.read_text().replace("name: Globex Corporation", "nmae: Globex"))
    code, out, err = pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 1
    assert "globex.yaml:" in err and "nmae: unknown key" in err
    assert "tenants left untouched: globex" in err
    assert "applied acme" in out and "globex" not in out.split("Apply complete")[0]
    with psycopg.connect(pg_dsn) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM pbx.tenants")}
    assert ids == {"acme", "initech"}


def test_credentials_show_rotate_and_unknown(pg_dsn: str, tenants: Path) -> None:
    assert pbx(pg_dsn, tenants, "apply", "--yes")[0] == 0
    code, out, _ = pbx(pg_dsn, tenants, "credentials", "show", "acme", "1001", "--output", "json")
    assert code == 0
    first = json.loads(out)
    assert set(first) == {"username", "domain", "password"}
    assert first["username"] == "1001" and first["domain"] == "acme.example.com"
    assert len(first["password"]) >= 22

    code, out, _ = pbx(pg_dsn, tenants, "credentials", "rotate", "acme", "1001")
    assert code == 0
    assert first["password"] not in out
    second = json.loads(
        pbx(pg_dsn, tenants, "credentials", "show", "acme", "1001", "--output", "json")[1]
    )
    assert second["password"] != first["password"]

    assert pbx(pg_dsn, tenants, "credentials", "show", "acme", "9999")[0] == 1
    assert pbx(pg_dsn, tenants, "credentials", "show", "nosuch", "1001")[0] == 1
    assert pbx(pg_dsn, tenants, "credentials", "rotate", "acme", "9999")[0] == 1


def test_removed_tenant_is_orphaned_then_pruned(pg_dsn: str, tenants: Path) -> None:
    assert pbx(pg_dsn, tenants, "apply", "--yes")[0] == 0
    assert pbx(pg_dsn, tenants, "prune", "globex", "--yes")[0] == 1, "active tenants are not pruned"
    (tenants / "globex.yaml").unlink()
    code, out, _ = pbx(pg_dsn, tenants, "plan", "--no-live", "--detailed-exitcode")
    assert code == 2
    assert '~ tenant globex: status: "active" -> "orphaned"' in out
    assert pbx(pg_dsn, tenants, "apply", "--yes")[0] == 0
    code, out, _ = pbx(
        pg_dsn,
        tenants,
        "render",
        "--section",
        "directory",
        "--domain",
        "globex.example.com",
        "--user",
        "2001",
    )
    assert code == 1 and 'status="not found"' in out
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM tenant_globex.extensions").fetchone() == (4,)
    assert pbx(pg_dsn, tenants, "prune", "globex")[0] == 1, "no --yes and no terminal"
    code, out, _ = pbx(pg_dsn, tenants, "prune", "globex", "--yes")
    assert code == 0
    archive = out.split("schema archived as ")[1].split()[0]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('tenant_globex')").fetchone() == (None,)
        count = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}.extensions").format(
                psycopg.sql.Identifier(archive)
            )
        ).fetchone()
    assert count == (4,)


def test_render_each_section(pg_dsn: str, tenants: Path) -> None:
    assert pbx(pg_dsn, tenants, "apply", "--yes")[0] == 0
    code, out, _ = pbx(
        pg_dsn,
        tenants,
        "render",
        "--section",
        "directory",
        "--domain",
        "acme.example.com",
        "--user",
        "1001",
    )
    assert code == 0
    user = ET.fromstring(out).find(".//user")
    assert user is not None and user.get("id") == "1001"
    params = {p.get("name"): p.get("value") for p in user.iter("param")}
    assert len(params["a1-hash"]) == 32 and "password" not in params

    code, out, _ = pbx(
        pg_dsn,
        tenants,
        "render",
        "--section",
        "dialplan",
        "--context",
        "acme.example.com",
        "--number",
        "7000",
    )
    assert code == 0
    actions = [(a.get("application"), a.get("data")) for a in ET.fromstring(out).iter("action")]
    assert ("callcenter", "support@acme.example.com") in actions

    code, out, _ = pbx(
        pg_dsn, tenants, "render", "--section", "configuration", "--queue", "sales@acme.example.com"
    )
    assert code == 0
    queues = [q.get("name") for q in ET.fromstring(out).iter("queue")]
    assert queues == ["sales@acme.example.com"]
    assert ET.fromstring(out).find(".//agents") is None

    assert pbx(pg_dsn, tenants, "render", "--section", "directory")[0] == 2, "usage error"


def test_status_unreachable_exits_1() -> None:
    result = CliRunner().invoke(main, ["status", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "not reachable" in result.stderr


def test_apply_does_what_a_daemon_pass_does_admins_and_spec_status(
    pg_dsn: str, tenants: Path
) -> None:
    (tenants / "globex.yaml").write_text(
        (tenants / "globex.yaml").read_text().replace("name: ", "nmae: ", 1)
    )
    code, _, err = pbx(pg_dsn, tenants, "apply", "--yes")
    assert code == 1 and "globex.yaml:" in err
    with psycopg.connect(pg_dsn) as conn:
        admins = conn.execute("SELECT email FROM pbx.platform_admins ORDER BY email").fetchall()
        invalid = conn.execute("SELECT tenant_id, errors FROM pbx.spec_status").fetchall()
    assert admins == [("oncall@pbx.example.net",), ("ops@pbx.example.net",)]
    assert [t for t, _ in invalid] == ["globex"]
    assert any("globex.yaml:" in e for e in invalid[0][1])


def test_the_invalid_spec_status_outlives_the_process_that_found_it(
    pg_dsn: str, tenants: Path
) -> None:
    from reconciler.daemon.status import tenant_rows
    from reconciler.reconcile import Reconciler
    from reconciler.store import PostgresStore

    acme = tenants / "acme.yaml"
    acme.write_text(acme.read_text().replace("status: active", "status: activ"))
    finder = PostgresStore(pg_dsn)
    Reconciler(tenants, finder).run_pass(full=True)
    finder.close()
    restarted = Reconciler(tenants / "nowhere", PostgresStore(pg_dsn))  # a follower reads no specs
    restarted.bootstrap()
    rows = tenant_rows(restarted.applied, None, {})
    assert rows["acme"]["sync"] == "invalid"
    assert any("acme.yaml:" in e and "status" in e for e in rows["acme"]["spec_errors"])
    assert rows["globex"]["sync"] == "synced" or rows["globex"]["spec_errors"] == []
    restarted.store.reset()

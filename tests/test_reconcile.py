"""THE pass, on the in-memory store: the pipeline without PostgreSQL or a switch."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from reconciler.core.errors import SpecsUnavailable
from reconciler.reconcile import PassGuards, Reconciler
from reconciler.store import StoreUnavailable
from tests.conftest import EXAMPLE_TENANTS
from tests.fakes.memory_store import MemoryStore


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    directory = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLE_TENANTS, directory)
    return directory


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_a_pass_applies_the_specs_and_the_next_one_has_nothing_to_do(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    first = reconciler.run_pass(full=True)
    assert first.ok and set(first.report.applied) == {"acme", "globex", "initech"}
    assert store.state["acme"].extensions["1001"].name == "Alice Smith"
    assert ("acme", "1001") in store.passwords
    second = reconciler.run_pass(full=True)
    assert second.planned.plan.empty and not second.state_changed
    incremental = reconciler.run_pass(full=False)
    assert incremental.planned.candidates == frozenset()


def test_pbx_apply_and_the_daemon_sync_platform_admins_through_the_same_pass(
    tenants: Path, store: MemoryStore
) -> None:
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert outcome.platform.result == "applied"
    assert "ops@pbx.example.net" in store.admins
    keys = [c.key for c in outcome.applied_changes().platform]
    assert keys == sorted(store.admins) + sorted(store.gateways)
    (tenants / "_platform.yaml").write_text(
        "super_admins:\n  - {email: new@pbx.example.net, name: New}\n"
    )
    Reconciler(tenants, store).run_pass(full=True)
    assert store.admins == {"new@pbx.example.net": "New"}


def test_the_platform_applies_first_in_its_own_scope_and_is_recorded(
    tenants: Path, store: MemoryStore
) -> None:
    outcome = Reconciler(tenants, store).run_pass(full=True)
    scopes = [scope for scope, _, _ in store.history]
    assert scopes[0] == "_platform" and set(scopes[1:]) == {"acme", "globex", "initech"}
    assert store.calls.index("apply_platform") < store.calls.index("apply")
    assert {c.scope.value for c in outcome.planned.plan.platform} == {"platform"}


def test_a_failing_platform_never_blocks_a_tenant(tenants: Path, store: MemoryStore) -> None:
    store.fail_platform = True
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert set(outcome.report.applied) == {"acme", "globex", "initech"}
    assert outcome.platform.result == "failed" and not outcome.ok
    assert store.admins == {}
    assert ("_platform", "failed") in [(s, r) for s, r, _ in store.history]
    assert not outcome.applied_changes().platform
    store.fail_platform = False
    again = Reconciler(tenants, store).run_pass(full=True)
    assert again.ok and again.platform.result == "applied" and store.admins


def test_a_failing_tenant_never_blocks_the_platform(tenants: Path, store: MemoryStore) -> None:
    store.fail = {"acme"}
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert "acme" in outcome.report.failed and outcome.platform.result == "applied"
    assert "ops@pbx.example.net" in store.admins


def test_an_invalid_platform_file_leaves_the_platform_as_it_is(
    tenants: Path, store: MemoryStore
) -> None:
    Reconciler(tenants, store).run_pass(full=True)
    before = dict(store.admins)
    (tenants / "_platform.yaml").write_text("super_admins: [{email: 12}]\n")
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert outcome.planned.platform is None and not outcome.planned.plan.platform
    assert store.admins == before


def test_a_one_tenant_pass_plans_no_platform_change(tenants: Path, store: MemoryStore) -> None:
    planned = Reconciler(tenants, store).plan_pass(full=True, only="acme")
    assert planned.plan.tenants() == ["acme"] and not planned.plan.platform


def test_an_invalid_file_freezes_its_tenant_and_its_errors_are_recorded(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    acme = tenants / "acme.yaml"
    acme.write_text(
        acme.read_text().replace("name: Alice Smith\n", "name: Alice Smith\n    colour: red\n", 1)
    )
    outcome = reconciler.run_pass(full=False)
    assert "acme" in outcome.planned.invalid and "acme" not in outcome.planned.plan.tenants()
    status = store.spec_status["acme"]
    assert status.spec_file and status.spec_file.endswith("acme.yaml")
    assert any("colour" in e for e in status.errors)
    assert reconciler.applied.spec_status["acme"].errors == status.errors
    acme.write_text(acme.read_text().replace("    colour: red\n", ""))
    reconciler.run_pass(full=False)
    assert "acme" not in store.spec_status


def test_the_spec_status_is_recorded_even_when_the_apply_fails(
    tenants: Path, store: MemoryStore
) -> None:
    (tenants / "globex.yaml").write_text("id: globex\nbogus: true\n")
    reconciler = Reconciler(tenants, store)
    planned = reconciler.plan_pass(full=True)
    store.calls.clear()

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("connection lost mid-apply")

    store.apply = broken  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        reconciler.apply_pass(planned)
    assert store.calls[0] == "record_attempt"
    assert "record_spec_status" in store.calls
    assert "globex" in store.spec_status


def test_a_tenant_another_writer_already_applied_is_not_logged_or_counted(
    tenants: Path, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    slow = Reconciler(tenants, store)
    planned = slow.plan_pass(full=True)
    Reconciler(tenants, store).run_pass(full=True)  # the other writer wins the race
    caplog.set_level(logging.INFO, logger="reconciler.reconcile")
    outcome = slow.apply_pass(planned)
    assert set(outcome.report.unchanged) == {"acme", "globex", "initech"}
    assert outcome.applied_changes().empty
    assert "change applied" not in caplog.text


def test_a_failed_tenant_rolls_back_alone(tenants: Path, store: MemoryStore) -> None:
    store.fail.add("globex")
    outcome = Reconciler(tenants, store).run_pass(full=True)
    assert set(outcome.report.failed) == {"globex"}
    assert "globex" not in store.state and "acme" in store.state
    assert {c.tenant for c in outcome.applied_changes().changes} == {"acme", "initech"}


def test_a_removed_file_orphans_its_tenant_and_keeps_its_data(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    (tenants / "globex.yaml").unlink()
    reconciler.run_pass(full=False)
    assert store.state["globex"].tenant.status == "orphaned"
    assert store.state["globex"].extensions


def test_a_missing_tenants_directory_changes_nothing(tmp_path: Path, store: MemoryStore) -> None:
    with pytest.raises(SpecsUnavailable):
        Reconciler(tmp_path / "missing", store).run_pass(full=True)
    assert store.calls == []


def test_plan_pass_for_one_tenant_plans_only_that_one(tenants: Path, store: MemoryStore) -> None:
    planned = Reconciler(tenants, store).plan_pass(full=True, only="acme")
    assert planned.plan.tenants() == ["acme"]
    assert set(planned.post_apply_state()) == {"acme"}


def test_an_emptied_tenants_directory_orphans_nobody_without_the_operator_saying_so(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    for spec in tenants.glob("*.yaml"):
        spec.unlink()
    outcome = reconciler.run_pass(full=False)
    assert set(outcome.planned.held) == {"acme", "globex", "initech"}
    assert "--allow-mass-orphan" in outcome.planned.held["acme"]
    assert all(s.tenant.status != "orphaned" for s in store.state.values())
    allowed = Reconciler(tenants, store, PassGuards(allow_mass_orphan=True)).run_pass(full=True)
    assert set(outcome.planned.held) and not allowed.planned.held
    assert all(s.tenant.status == "orphaned" for s in store.state.values())


def test_one_tenant_leaving_git_is_not_a_mass_orphaning(tenants: Path, store: MemoryStore) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    (tenants / "acme.yaml").unlink()
    assert not reconciler.run_pass(full=False).planned.held
    assert store.state["acme"].tenant.status == "orphaned"


def test_a_restored_file_is_served_again_by_the_next_incremental_pass(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    saved = (tenants / "globex.yaml").read_text()
    (tenants / "globex.yaml").unlink()
    reconciler.run_pass(full=False)
    assert store.state["globex"].tenant.status == "orphaned"
    (tenants / "globex.yaml").write_text(saved)
    outcome = reconciler.run_pass(full=False)
    assert "globex" in outcome.report.applied
    assert store.state["globex"].tenant.status == "active"


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shrinking_reconciler(tenants: Path, store: MemoryStore, clock: Clock) -> Reconciler:
    guards = PassGuards(hold_shrinking=True, stable_seconds=2.0)
    reconciler = Reconciler(tenants, store, guards, clock=clock)
    reconciler.run_pass(full=True)
    return reconciler


def test_a_writer_pausing_mid_file_never_gets_its_half_file_applied(
    tenants: Path, store: MemoryStore
) -> None:
    """scp, ``cat > f``, an editor flushing in pieces: a pause of 0.6 s used to be enough
    for the half file to be read twice and applied (34 deletes, passwords regenerated)."""
    clock = Clock()
    reconciler = shrinking_reconciler(tenants, store, clock)
    passwords = dict(store.passwords)
    acme = tenants / "acme.yaml"
    text = acme.read_text()
    acme.write_text(text[: text.index("agents:")])  # the first piece
    held = reconciler.run_pass(full=False)
    assert "acme" in held.planned.held and reconciler.shrink_wait == 2.0
    clock.now += 0.6  # the writer pauses; the daemon reads the same half file again
    again = reconciler.run_pass(full=False)
    assert "acme" in again.planned.held
    assert reconciler.shrink_wait == pytest.approx(1.4)
    assert store.state["acme"].queues, "nothing removed while the file may still grow"
    acme.write_text(text)  # the writer finishes
    clock.now += 0.6
    done = reconciler.run_pass(full=False)
    assert not done.planned.held and done.planned.plan.empty
    assert reconciler.shrink_wait is None
    assert store.passwords == passwords


def test_a_large_removal_is_applied_once_its_file_is_stable_for_the_window(
    tenants: Path, store: MemoryStore
) -> None:
    clock = Clock()
    reconciler = shrinking_reconciler(tenants, store, clock)
    acme = tenants / "acme.yaml"
    text = acme.read_text()
    acme.write_text(text[: text.index("agents:")])
    assert "acme" in reconciler.run_pass(full=False).planned.held
    clock.now += 1.5
    acme.write_text(text[: text.index("agents:")] + "#")  # one more byte: the window restarts
    assert "acme" in reconciler.run_pass(full=False).planned.held
    clock.now += 1.9
    assert "acme" in reconciler.run_pass(full=False).planned.held
    clock.now += 0.1
    really = reconciler.run_pass(full=False)
    assert "acme" in really.report.applied and not store.state["acme"].queues
    assert reconciler.shrink_wait is None


def test_ordinary_edits_are_never_held_for_the_window(tenants: Path, store: MemoryStore) -> None:
    clock = Clock()
    reconciler = shrinking_reconciler(tenants, store, clock)
    acme = tenants / "acme.yaml"
    acme.write_text(acme.read_text().replace("name: Alice Smith", "name: Alice Jones", 1))
    outcome = reconciler.run_pass(full=False)
    assert "acme" in outcome.report.applied and not outcome.planned.held
    assert reconciler.shrink_wait is None


def test_extensions_removed_and_re_added_keep_their_passwords(
    tenants: Path, store: MemoryStore
) -> None:
    """Even a half file confirmed by a slow writer costs no phone its password."""
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    passwords = dict(store.passwords)
    acme = tenants / "acme.yaml"
    text = acme.read_text()
    acme.write_text(
        "id: acme\ndomain: acme.example.com\nname: Acme\n"
        'extensions:\n  - {number: "1001", name: Alice Smith}\n'
    )
    shrunk = reconciler.run_pass(full=True)
    assert "acme" in shrunk.report.applied and list(store.state["acme"].extensions) == ["1001"]
    acme.write_text(text)
    reconciler.run_pass(full=True)
    assert store.passwords == passwords


def test_two_files_swapping_a_did_in_one_commit_converge_in_one_pass(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    acme, globex = tenants / "acme.yaml", tenants / "globex.yaml"
    acme.write_text(acme.read_text().replace('"+14155550101"', '"+442071838751"'))
    globex.write_text(globex.read_text().replace('"+442071838751"', '"+14155550101"'))
    outcome = reconciler.run_pass(full=False)
    assert outcome.ok and set(outcome.report.applied) == {"acme", "globex"}
    assert "+442071838751" in store.state["acme"].inbound_numbers
    assert reconciler.run_pass(full=True).planned.plan.empty


def test_renaming_a_tenant_file_and_id_keeps_its_domain_and_passwords(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    passwords = {n: p for (t, n), p in store.passwords.items() if t == "acme"}
    text = (tenants / "acme.yaml").read_text().replace("id: acme\n", "id: acme_corp\n", 1)
    (tenants / "acme.yaml").unlink()
    (tenants / "acme_corp.yaml").write_text(text)
    outcome = reconciler.run_pass(full=False)
    assert outcome.ok and outcome.report.applied == ("acme_corp",)
    assert "acme" not in store.state and store.state["acme_corp"].tenant.status == "active"
    assert {n: p for (t, n), p in store.passwords.items() if t == "acme_corp"} == passwords
    assert "acme" not in reconciler.applied.state, "the mirror follows the rename"


def test_a_standing_problem_is_logged_when_it_appears_and_when_it_clears_not_every_pass(
    tenants: Path, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler.reconcile")
    (tenants / "initech.yaml").write_text("id: initech\nbogus: 1\n")
    store.fail.add("globex")
    reconciler = Reconciler(tenants, store)
    for _ in range(3):
        reconciler.run_pass(full=True)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("tenant apply rolled back") == 1
    spec_lines = messages.count("spec error")
    assert 1 <= spec_lines <= 3, "the initech errors once, not once per pass"
    store.fail.clear()
    reconciler.run_pass(full=True)
    assert [r.getMessage() for r in caplog.records].count("tenant applies again") == 1


def test_spec_errors_recorded_name_files_relative_to_the_tenants_directory(
    tenants: Path, store: MemoryStore
) -> None:
    """The recorded status reaches the portal: never a path of the host."""
    reconciler = Reconciler(tenants.absolute(), store)
    reconciler.run_pass(full=True)
    (tenants / "_platform.yaml").unlink()  # a gateway contact now names the missing platform file
    acme = tenants / "acme.yaml"
    acme.write_text(acme.read_text().replace("name: Alice Smith\n", "name: [oops\n", 1))
    reconciler.run_pass(full=False)
    recorded = [*store.spec_status.values()]
    assert recorded
    for status in recorded:
        assert status.spec_file is not None and not Path(status.spec_file).is_absolute()
        for error in status.errors:
            assert str(tenants.absolute()) not in error and not error.startswith("/")
    assert store.spec_status["acme"].spec_file == "acme.yaml"
    assert store.spec_status["acme"].errors[0].startswith("acme.yaml:")


def test_a_file_renamed_to_an_upper_case_suffix_keeps_its_tenant_served(
    tenants: Path, store: MemoryStore
) -> None:
    reconciler = Reconciler(tenants, store)
    reconciler.run_pass(full=True)
    (tenants / "acme.yaml").rename(tenants / "acme.YAML")
    outcome = reconciler.run_pass(full=True)
    assert outcome.planned.plan.changes == ()
    assert store.state["acme"].tenant.status == "active"
    assert store.state["acme"].agents

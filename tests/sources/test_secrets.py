"""The host's gateway secrets: a mode-0600 file or per-gateway variables; a readable file
refused with a clear error; a missing password an error of that gateway only; the plan sees
a marker that changes with the password and never holds it."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.sources.secrets import (
    MISSING_CREDENTIALS,
    NO_CREDENTIALS,
    SecretsSource,
    password_variable,
)


def secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_passwords_come_from_the_file(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "gateways:\n  carrier1: {password: s3cret-one}\n")
    secrets = SecretsSource({"PBX_SECRETS_FILE": str(path)}).current(["carrier1", "carrier2"])
    assert secrets.password("carrier1") == "s3cret-one"
    assert secrets.password("carrier2") is None
    assert "carrier2" in secrets.missing_reason("carrier2")
    assert "PBX_GATEWAY_CARRIER2_PASSWORD" in secrets.missing_reason("carrier2")


def test_a_variable_wins_over_the_file(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "gateways:\n  carrier-1.eu: {password: from-file}\n")
    env = {"PBX_SECRETS_FILE": str(path), "PBX_GATEWAY_CARRIER_1_EU_PASSWORD": "from-env"}
    assert password_variable("carrier-1.eu") == "PBX_GATEWAY_CARRIER_1_EU_PASSWORD"
    assert SecretsSource(env).password("carrier-1.eu") == "from-env"


def test_a_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "gateways:\n  carrier1: {password: s3cret-one}\n", 0o644)
    secrets = SecretsSource({"PBX_SECRETS_FILE": str(path)}).current(["carrier1"])
    assert secrets.password("carrier1") is None
    assert secrets.file_problem is not None
    assert "readable by group or others (mode 0644)" in secrets.file_problem
    assert "chmod 600" in secrets.missing_reason("carrier1")
    assert "s3cret-one" not in secrets.missing_reason("carrier1")


def test_a_broken_file_never_quotes_its_content(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "gateways:\n  carrier1: {password: [s3cret\n")
    secrets = SecretsSource({"PBX_SECRETS_FILE": str(path)}).current(["carrier1"])
    assert secrets.file_problem is not None
    assert "not valid YAML" in secrets.file_problem
    assert "s3cret" not in secrets.file_problem


def test_a_password_freeswitch_would_expand_is_refused() -> None:
    env = {"PBX_GATEWAY_C1_PASSWORD": "a$${system(id)}b"}
    secrets = SecretsSource(env).current(["c1"])
    assert secrets.password("c1") is None
    assert "would expand" in secrets.missing_reason("c1")
    assert "system" not in secrets.missing_reason("c1")


def test_the_marker_changes_with_the_password_and_never_holds_it() -> None:
    env = {"PBX_GATEWAY_C1_PASSWORD": "first-password"}
    source = SecretsSource(env)
    first = source.current(["c1"]).credentials_marker("c1", "user1")
    env["PBX_GATEWAY_C1_PASSWORD"] = "second-password"
    second = source.current(["c1"]).credentials_marker("c1", "user1")
    assert first != second
    assert first.startswith("pbkdf2:") and "password" not in first
    assert source.current(["c1"]).credentials_marker("c1", None) == NO_CREDENTIALS
    assert SecretsSource({}).current(["c1"]).credentials_marker("c1", "u") == MISSING_CREDENTIALS


def test_the_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "gateways:\n  c1: {password: one-one-one}\n")
    source = SecretsSource({"PBX_SECRETS_FILE": str(path)})
    assert source.password("c1") == "one-one-one"
    path.write_text("gateways:\n  c1: {password: two-two-two-two}\n")
    assert source.password("c1") == "two-two-two-two"

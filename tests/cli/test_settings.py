"""Settings precedence (flag > PBX_* environment > config file > default) and secrecy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.cli.settings import (
    SettingsError,
    load_config_file,
    parse_credentials,
    parse_host_port,
    resolve,
)


def test_flag_beats_env_beats_config_beats_default(tmp_path: Path) -> None:
    config = {"listen": "127.0.0.1:7000", "interval": 5, "tenants": "/from/config"}
    env = {"PBX_LISTEN": "127.0.0.1:7001", "PBX_TENANTS": "/from/env"}
    cfg = resolve({"listen": "127.0.0.1:7002"}, environ=env, config=config)
    assert cfg["listen"] == "127.0.0.1:7002" and cfg.sources["listen"] == "flag"
    assert cfg["tenants"] == "/from/env" and cfg.sources["tenants"] == "env"
    assert cfg["interval"] == 5 and cfg.sources["interval"] == "config"
    assert cfg["log_format"] == "text" and cfg.sources["log_format"] == "default"


def test_freeswitch_env_is_comma_separated_and_masked() -> None:
    cfg = resolve({}, environ={"PBX_FREESWITCH": "10.0.0.1:8021:pw-one, 10.0.0.2:8021:pw-two"})
    assert cfg["freeswitch"] == ("10.0.0.1:8021:pw-one", "10.0.0.2:8021:pw-two")
    shown = cfg.describe()
    assert "pw-one" not in str(shown) and "(sensitive)" in shown["freeswitch"]


def test_secrets_masked_in_describe() -> None:
    cfg = resolve(
        {"database_url": "postgresql://u:hunter2@db/pbx", "xml_curl_auth": "fs:s3cret"}, environ={}
    )
    text = str(cfg.describe())
    assert "hunter2" not in text and "s3cret" not in text


def test_config_file_unknown_keys_and_bad_toml_are_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('listen = "127.0.0.1:9000"\nfreeswitch = ["a:1:x", "b:2:y"]\n')
    assert load_config_file(good)["freeswitch"] == ["a:1:x", "b:2:y"]
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('lisen = "x"\n')
    with pytest.raises(SettingsError, match="unknown keys lisen"):
        load_config_file(bad_key)
    broken = tmp_path / "broken.toml"
    broken.write_text("listen = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_config_file(broken)


def test_parsers() -> None:
    assert parse_host_port("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_host_port("[::1]:8080") == ("::1", 8080)
    with pytest.raises(SettingsError):
        parse_host_port("8080")
    assert parse_credentials("fs:pa:ss") == ("fs", "pa:ss")
    with pytest.raises(SettingsError) as err:
        parse_credentials("nocolon-secret")
    assert "nocolon-secret" not in str(err.value)


def test_cli_reads_the_config_file(tmp_path: Path) -> None:
    tenants = tmp_path / "specs"
    tenants.mkdir()
    (tenants / "broken.yaml").write_text("id: [\n")
    config = tmp_path / "pbx.toml"
    config.write_text(f'tenants = "{tenants}"\n')
    result = CliRunner().invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 1
    assert "broken.yaml" in result.stdout
    result = CliRunner().invoke(main, ["validate"], env={"PBX_CONFIG": str(config)})
    assert result.exit_code == 1


def test_portal_trusted_proxies_from_the_flag_or_the_environment() -> None:
    from ipaddress import ip_network

    from reconciler.cli.users import portal_config

    env = {"PBX_PORTAL_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1"}
    config = portal_config(resolve({}, environ=env))
    assert config is not None
    assert config.trusted_proxies == (ip_network("10.0.0.0/8"), ip_network("192.0.2.1/32"))
    flagged = portal_config(resolve({"portal_trusted_proxies": "::1"}, environ=env))
    assert flagged is not None and flagged.trusted_proxies == (ip_network("::1/128"),)
    default = portal_config(resolve({}, environ={}))
    assert default is not None and default.trusted_proxies == ()
    with pytest.raises(SettingsError, match="trusted proxies"):
        portal_config(resolve({"portal_trusted_proxies": "proxy.example.net"}, environ={}))
    result = CliRunner().invoke(main, ["run", "--help"])
    assert "--portal-trusted-proxies" in result.output


def test_portal_revision_url_sip_host_and_service_level() -> None:
    from reconciler.cli.users import portal_config

    env = {
        "PBX_PORTAL_REVISION_URL": "https://git.example.com/pbx/commit/{revision}",
        "PBX_PORTAL_SIP_HOST": "sip.example.net",
        "PBX_PORTAL_SIP_TLS_PORT": "5071",
        "PBX_PORTAL_SERVICE_LEVEL": "30",
    }
    config = portal_config(resolve({}, environ=env))
    assert config is not None
    assert config.revision_url == env["PBX_PORTAL_REVISION_URL"]
    assert (config.sip_host, config.sip_port, config.sip_tls_port) == (
        "sip.example.net",
        5060,
        5071,
    )
    assert config.service_level == 30
    with pytest.raises(SettingsError, match="revision URL"):
        portal_config(resolve({"portal_revision_url": "http://x/{revision}"}, environ={}))
    with pytest.raises(SettingsError, match="SIP host"):
        portal_config(resolve({"portal_sip_host": "sip.example.net;x=1"}, environ={}))
    result = CliRunner().invoke(main, ["run", "--help"])
    for flag in ("--portal-revision-url", "--portal-sip-host", "--portal-service-level"):
        assert flag in result.output


def _daemon_config(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], command: str = "run"
) -> Any:
    """What `pbx run` (or `pbx serve`) would start with (nothing is started)."""
    from reconciler.cli import daemon as daemon_cli
    from reconciler.daemon import startup  # the CLI imports it only when a daemon starts

    seen: list[Any] = []
    monkeypatch.setattr(startup, "run_daemon", lambda config, **_: seen.append(config) or 0)
    monkeypatch.setattr(daemon_cli.logs, "configure", lambda log_format: None)  # keep pytest's
    result = CliRunner().invoke(main, [command, *args], env=env)
    assert result.exit_code == 0 or seen == [], result.output
    return seen[0] if seen else result


def test_the_stable_window_and_credentials_grace_reach_the_daemon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = _daemon_config(monkeypatch, [], {})
    assert (defaults.stable_window, defaults.credentials_grace) == (2.0, 7 * 86400.0)
    flags = _daemon_config(monkeypatch, ["--stable-window", "5", "--credentials-grace", "0"], {})
    assert (flags.stable_window, flags.credentials_grace) == (5.0, 0.0)
    env = {"PBX_STABLE_WINDOW": "0.5", "PBX_CREDENTIALS_GRACE": "3600"}
    from_env = _daemon_config(monkeypatch, [], env)
    assert (from_env.stable_window, from_env.credentials_grace) == (0.5, 3600.0)


def test_a_negative_stable_window_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _daemon_config(monkeypatch, ["--stable-window", "-1"], {})
    assert result.exit_code == 2 and "stable_window" in result.output


def test_xml_curl_workers_default_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    assert _daemon_config(monkeypatch, [], {}).xml_curl_workers == cores
    assert _daemon_config(monkeypatch, ["--xml-curl-workers", "0"], {}).xml_curl_workers == 0
    hang = _daemon_config(monkeypatch, [], {"PBX_XML_CURL_HANG_TIMEOUT": "3"})
    assert hang.xml_curl_hang_seconds == 3.0


def test_serve_reads_the_database_in_read_only_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PBX_DATABASE_URL": "postgresql://reader:pw@db1.example.net/pbx"}
    config = _daemon_config(monkeypatch, ["--xml-curl-workers", "3"], env, command="serve")
    assert "default_transaction_read_only=on" in config.database_url
    assert config.xml_curl_workers == 3 and config.portal is None and config.nodes == ()
    from reconciler.daemon import default_state_dir

    assert config.state_dir == default_state_dir() / "serve"  # never pbx run's generation

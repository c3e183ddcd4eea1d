"""The node configuration's WebRTC part: what a browser phone needs from the tenants
profile (a WSS listener, the certificate it reads, ICE candidate preferences, Opus), and
the checks on every new value. What a real FreeSWITCH does with it is in
tests/realswitch/test_webrtc.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.nodeconfig.files import node_config_files, write_node_config
from reconciler.nodeconfig.settings import NodeConfigError, risky_choices, validate
from tests.nodeconfig.test_node_config import (
    ESL_PASSWORD,
    assemble,
    assert_no_secret,
    cli_args,
    configuration,
    params,
    profile,
    run_cli,
    settings,
)
from tests.selfsigned import self_signed


def tenant_params(root: Path) -> list[tuple[str, str]]:
    """The tenants profile's params in order (apply-candidate-acl repeats)."""
    found = profile(assemble(root), "tenants").find("settings")
    assert found is not None
    return [(p.get("name", ""), p.get("value", "")) for p in found.iter("param")]


def candidate_acls(root: Path) -> list[str]:
    return [value for name, value in tenant_params(root) if name == "apply-candidate-acl"]


def test_default_profile_listens_for_browsers_on_wss_7443(tmp_path: Path) -> None:
    write_node_config(settings(), tmp_path)
    values = dict(tenant_params(tmp_path))
    assert values["wss-binding"] == ":7443"
    assert "ws-binding" not in values
    # FreeSWITCH's own certificate folder, as the BUILTIN_VARS emulation expands it.
    assert values["tls-cert-dir"] == "/etc/freeswitch/tls"
    assert candidate_acls(tmp_path) == ["localnet.auto", "wan.auto", "rfc1918.auto"]


def test_browser_and_desk_phones_share_opus_and_g711(tmp_path: Path) -> None:
    write_node_config(settings(), tmp_path)
    document = assemble(tmp_path)
    values = params(profile(document, "tenants"))
    for key in ("inbound-codec-prefs", "outbound-codec-prefs"):
        codecs = values[key].split(",")
        assert codecs[0] == "OPUS", "browsers' first choice"
        assert {"PCMU", "PCMA"} <= set(codecs), "desk phones' codecs"
    # the callee is offered all of the caller's codecs, not only its first match
    assert values["inbound-late-negotiation"] == "true"
    modules = configuration(document, "modules.conf")
    assert "mod_opus" in [m.get("module") for m in modules.iter("load")]


def test_ports_are_configurable_and_wss_can_be_turned_off(tmp_path: Path) -> None:
    write_node_config(settings(wss_port=9443, ws_port=5066), tmp_path / "both")
    values = dict(tenant_params(tmp_path / "both"))
    assert (values["wss-binding"], values["ws-binding"]) == (":9443", ":5066")
    write_node_config(settings(wss_port=0), tmp_path / "off")
    values = dict(tenant_params(tmp_path / "off"))
    assert "wss-binding" not in values and "ws-binding" not in values


def test_a_given_certificate_is_installed_owner_only_beside_the_tree(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    pem += "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"
    out = tmp_path / "fs"
    write_node_config(settings(wss_pem=pem), out)
    installed = out / "tls" / "wss.pem"
    assert installed.read_text(encoding="ascii") == pem
    assert installed.stat().st_mode & 0o777 == 0o600
    assert (out / "vars.xml").stat().st_mode & 0o777 == 0o640
    # FreeSWITCH's conf_dir is where the tree is copied: /etc/freeswitch in the emulation.
    assert dict(tenant_params(out))["tls-cert-dir"] == "/etc/freeswitch/tls"
    assert validate(settings(wss_pem=pem)).certs_dir == "$${conf_dir}/tls"
    assert pem not in repr(settings(wss_pem=pem))


def test_candidate_networks_are_preferred_first(tmp_path: Path) -> None:
    write_node_config(settings(candidate_cidrs=("10.20.0.0/16", "192.0.2.7")), tmp_path)
    assert candidate_acls(tmp_path)[0] == "webrtc_candidates"
    acl = configuration(assemble(tmp_path), "acl.conf")
    listed = acl.find("network-lists/list[@name='webrtc_candidates']")
    assert listed is not None and listed.get("default") == "deny"
    assert [n.get("cidr") for n in listed.iter("node")] == ["10.20.0.0/16", "192.0.2.7/32"]


def test_operator_certs_dir_is_used_and_warned_about(tmp_path: Path) -> None:
    chosen = settings(certs_dir="/etc/ssl/pbx/")
    write_node_config(chosen, tmp_path)
    assert dict(tenant_params(tmp_path))["tls-cert-dir"] == "/etc/ssl/pbx"
    notes = " ".join(risky_choices(validate(chosen)))
    assert "wss.pem" in notes and "/etc/ssl/pbx" in notes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"wss_port": 70000}, "--wss-port"),
        ({"wss_port": 5060}, "must all differ"),
        ({"ws_port": 7443}, "must all differ"),
        ({"wss_port": 20000, "rtp_start_port": 19000, "rtp_end_port": 21000}, "overlap"),
        ({"certs_dir": "certs"}, "absolute"),
        ({"certs_dir": "/etc/${x}"}, "letters"),
        ({"certs_dir": "/etc/../root"}, "letters"),
        ({"wss_pem": "just text\n"}, "certificate"),
        ({"wss_pem": "-----BEGIN CERTIFICATE-----\n\x00"}, "PEM"),
        (
            {
                "wss_pem": "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n",
                "certs_dir": "/etc/ssl",
            },
            "not both",
        ),
        ({"candidate_cidrs": ("lan",)}, "--candidate-cidr"),
    ],
    ids=[
        "wss-port-range",
        "wss-on-sip-port",
        "ws-on-wss-port",
        "wss-in-rtp",
        "certs-relative",
        "certs-expands",
        "certs-dotdot",
        "pem-without-blocks",
        "pem-control-chars",
        "cert-and-certs-dir",
        "bad-candidate-cidr",
    ],
)
def test_invalid_webrtc_values_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        node_config_files(settings(**overrides))


def test_cli_installs_a_cert_and_key_pair_without_printing_the_key(tmp_path: Path) -> None:
    pair = self_signed(tmp_path / "pki")
    out = tmp_path / "fs"
    result = run_cli(
        *cli_args(
            out, "--wss-cert", str(pair.cert), "--wss-key", str(pair.key), "--wss-port", "8443"
        )
    )
    assert result.returncode == 0, result.stderr
    assert_no_secret(result)
    key = pair.key.read_text(encoding="ascii")
    assert key.splitlines()[1] not in result.stdout + result.stderr
    installed = (out / "tls" / "wss.pem").read_text(encoding="ascii")
    assert installed == pair.cert.read_text(encoding="ascii") + key
    assert "wss on :8443" in result.stdout
    assert "no --wss-cert" not in result.stderr


def test_cli_refuses_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    one, other = self_signed(tmp_path / "one"), self_signed(tmp_path / "other")
    out = tmp_path / "fs"
    result = run_cli(*cli_args(out, "--wss-cert", str(one.cert), "--wss-key", str(other.key)))
    assert result.returncode == 2
    assert "--wss-cert" in result.stderr
    assert other.key.read_text(encoding="ascii").splitlines()[1] not in result.stderr
    assert not out.exists()


def test_cli_without_a_certificate_says_where_freeswitch_looks(tmp_path: Path) -> None:
    result = run_cli(*cli_args(tmp_path / "fs"))
    assert result.returncode == 0, result.stderr
    assert "no --wss-cert" in result.stderr and "$${certs_dir}" in result.stderr
    assert ESL_PASSWORD not in result.stderr

"""The FreeSWITCH node config renders into a tree FreeSWITCH can load and that cannot leak.

Each test names one behaviour an operator relies on: the xml_curl binding, the absent
force-*-domain params, the empty fallback directory and dialplan, the queue-only
callcenter.conf, the loopback event socket, secrets kept off the terminal, no silent
overwrite, and a systemd unit that runs and reloads `pbx run`. A small emulation of
FreeSWITCH's line-based XML preprocessor assembles the tree the way the switch does.
"""

from __future__ import annotations

import configparser
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.nodeconfig.files import (
    OutputNotEmptyError,
    iter_sources,
    node_config_files,
    write_node_config,
)
from reconciler.nodeconfig.settings import NodeConfigError, NodeSettings

REPO = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1:8080/freeswitch/xml"
CURL_USER = "freeswitch"
CURL_PASSWORD = 'xc-S3cret&"<pw>'  # XML-special characters on purpose
ESL_PASSWORD = "esl-Pw_71x9q"
SIP_IP = "192.0.2.10"
CARRIER_CIDR = "198.51.100.0/24"
FORCE_PARAMS = ("force-register-domain", "force-register-db-domain", "force-subscription-domain")
# Variables FreeSWITCH defines itself before reading the XML.
BUILTIN_VARS = {
    "local_ip_v4": "192.0.2.99",
    "local_ip_v6": "::1",
    "sounds_dir": "/usr/share/freeswitch/sounds",
    "recordings_dir": "/var/lib/freeswitch/recordings",
    "log_dir": "/var/log/freeswitch",
    "conf_dir": "/etc/freeswitch",
    "certs_dir": "/etc/freeswitch/tls",
    "base_dir": "/usr",
}
DIRECTIVE = re.compile(r'<X-PRE-PROCESS cmd="(set|include)" data="([^"]*)"/>')
PREPROC_VAR = re.compile(r"\$\$\{([^}]*)\}")


def settings(**overrides: object) -> NodeSettings:
    values: dict[str, object] = {
        "reconciler_url": URL,
        "xml_curl_user": CURL_USER,
        "xml_curl_password": CURL_PASSWORD,
        "esl_password": ESL_PASSWORD,
        "sip_ip": SIP_IP,
        "carrier_cidrs": (CARRIER_CIDR,),
    }
    values.update(overrides)
    return NodeSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    out = tmp_path / "fs"
    write_node_config(settings(), out)
    return out


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "node-config", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=60,
        check=False,
    )


def cli_args(out: Path, *extra: str) -> list[str]:
    return [
        "--reconciler-url",
        URL,
        "--xml-curl-auth",
        f"{CURL_USER}:{CURL_PASSWORD}",
        "--esl-password",
        ESL_PASSWORD,
        "--sip-ip",
        SIP_IP,
        "--carrier-cidr",
        CARRIER_CIDR,
        "--out",
        str(out),
        *extra,
    ]


def xml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def params(element: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in element.iter("param")}


def preprocess(path: Path, variables: dict[str, str], depth: int = 0) -> Iterator[str]:
    """Emulate switch_xml.c: line-based, includes relative to the including file."""
    assert depth < 10, f"include recursion at {path}"
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = PREPROC_VAR.sub(lambda m: variables.get(m.group(1), ""), raw)
        if "<include>" in raw or "</include>" in raw or "<?" in raw:
            continue  # FreeSWITCH drops such lines whole
        if "x-pre-process" in raw.lower():
            match = DIRECTIVE.fullmatch(line.strip())
            assert match, f"{path}: directive not alone on its line: {raw!r}"
            cmd, data = match.groups()
            if cmd == "set":
                name, _, value = data.partition("=")
                variables[name.strip()] = value.strip()
            else:
                matches = sorted(glob.glob(str(path.parent / data)))
                assert matches, f"{path}: include {data!r} matches no file"
                for included in matches:
                    yield from preprocess(Path(included), variables, depth + 1)
            continue
        yield line


def assemble(root: Path) -> ET.Element:
    """The document FreeSWITCH builds from freeswitch.xml."""
    text = "\n".join(preprocess(root / "freeswitch.xml", dict(BUILTIN_VARS)))
    return ET.fromstring(text)


def section(document: ET.Element, name: str) -> ET.Element:
    found = document.find(f"section[@name='{name}']")
    assert found is not None, f"no section {name}"
    return found


def configuration(document: ET.Element, name: str) -> ET.Element:
    found = section(document, "configuration").find(f"configuration[@name='{name}']")
    assert found is not None, f"no configuration {name}"
    return found


def profile(document: ET.Element, name: str) -> ET.Element:
    found = configuration(document, "sofia.conf").find(f"profiles/profile[@name='{name}']")
    assert found is not None, f"no sofia profile {name}"
    return found


# --- the tree as a whole -----------------------------------------------------------------


def test_every_rendered_file_is_well_formed_xml(node: Path) -> None:
    files = xml_files(node)
    assert {p.relative_to(node).as_posix() for p in files} >= {
        "freeswitch.xml",
        "vars.xml",
        "autoload_configs/modules.conf.xml",
        "autoload_configs/xml_curl.conf.xml",
        "autoload_configs/event_socket.conf.xml",
        "autoload_configs/callcenter.conf.xml",
        "autoload_configs/sofia.conf.xml",
        "sip_profiles/tenants.xml",
        "directory/00-no-users.xml",
        "dialplan/00-no-routes.xml",
    }
    for path in files:
        assert path.suffix == ".xml", f"unexpected file {path}"
        parse(path)  # raises on malformed XML


def test_no_template_syntax_survives_rendering(node: Path) -> None:
    for path in xml_files(node):
        text = path.read_text(encoding="utf-8")
        assert "{{" not in text and "{%" not in text, path


def test_preprocessor_directives_are_alone_on_their_lines(node: Path) -> None:
    # A directive inside a comment or sharing a line still runs or gets cut in FreeSWITCH.
    directives = 0
    for path in xml_files(node):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "x-pre-process" in line.lower():
                assert DIRECTIVE.fullmatch(line.strip()), f"{path}: {line!r}"
                directives += 1
            if "<include>" in line or "</include>" in line:
                assert line.strip() in {"<include>", "</include>"}, f"{path}: {line!r}"
    assert directives >= 4


def test_tree_assembles_like_freeswitch_with_every_include_resolving(node: Path) -> None:
    document = assemble(node)
    assert document.tag == "document"
    names = {c.get("name") for c in section(document, "configuration").iter("configuration")}
    assert names >= {
        "modules.conf",
        "switch.conf",
        "xml_curl.conf",
        "event_socket.conf",
        "acl.conf",
        "sofia.conf",
        "callcenter.conf",
        "local_stream.conf",
    }
    assert {p.get("name") for p in configuration(document, "sofia.conf").iter("profile")} == {
        "tenants",
        "carriers",
    }


def test_every_preprocessor_variable_used_is_defined(node: Path) -> None:
    # FreeSWITCH silently expands an unknown $${var} to "", e.g. empty codec preferences.
    defined = set(BUILTIN_VARS)
    for line in (node / "vars.xml").read_text(encoding="utf-8").splitlines():
        match = DIRECTIVE.fullmatch(line.strip())
        if match and match.group(1) == "set":
            defined.add(match.group(2).partition("=")[0])
    for path in xml_files(node):
        used = set(PREPROC_VAR.findall(path.read_text(encoding="utf-8")))
        assert used <= defined, f"{path}: undefined {sorted(used - defined)}"


# --- mod_xml_curl ------------------------------------------------------------------------


def test_xml_curl_points_at_the_reconciler_for_all_three_sections(node: Path) -> None:
    binding = parse(node / "autoload_configs/xml_curl.conf.xml").find("bindings/binding")
    assert binding is not None
    url = binding.find("param[@name='gateway-url']")
    assert url is not None
    assert url.get("value") == URL
    assert set(url.get("bindings", "").split("|")) == {"directory", "dialplan", "configuration"}
    values = params(binding)
    assert values["gateway-credentials"] == f"{CURL_USER}:{CURL_PASSWORD}"
    assert values["auth-scheme"] == "basic"
    assert values["disable-100-continue"] == "true"
    assert "enable-cacert-check" not in values  # plain http


def test_xml_curl_has_a_bounded_timeout(tmp_path: Path) -> None:
    write_node_config(settings(xml_curl_timeout=5), tmp_path / "fs")
    values = params(parse(tmp_path / "fs/autoload_configs/xml_curl.conf.xml"))
    assert values["timeout"] == "5"


def test_https_reconciler_url_turns_peer_verification_on(tmp_path: Path) -> None:
    write_node_config(
        settings(
            reconciler_url="https://pbx.example.net/freeswitch/xml",
            xml_curl_cacert="/etc/freeswitch/tls/ca.pem",
        ),
        tmp_path / "fs",
    )
    values = params(parse(tmp_path / "fs/autoload_configs/xml_curl.conf.xml"))
    assert values["enable-cacert-check"] == "true"
    assert values["enable-ssl-verifyhost"] == "true"
    assert values["ssl-cacert-file"] == "/etc/freeswitch/tls/ca.pem"


def test_xml_curl_loads_before_callcenter(node: Path) -> None:
    modules = [
        m.get("module") for m in parse(node / "autoload_configs/modules.conf.xml").iter("load")
    ]
    for needed in ("mod_xml_curl", "mod_callcenter", "mod_sofia", "mod_event_socket"):
        assert needed in modules
    assert modules.index("mod_xml_curl") < modules.index("mod_callcenter")
    assert len(modules) == len(set(modules))


# --- SIP profiles ------------------------------------------------------------------------


def test_no_force_domain_param_anywhere(node: Path) -> None:
    for path in xml_files(node):
        text = path.read_text(encoding="utf-8").lower()
        for name in FORCE_PARAMS:
            assert name not in text, f"{name} in {path}"
    document = assemble(node)
    assert not [p for p in document.iter("param") if p.get("name") in FORCE_PARAMS]


def test_tenant_profile_challenges_with_the_from_domain(node: Path) -> None:
    values = params(profile(assemble(node), "tenants"))
    assert values["challenge-realm"] == "auto_from"
    assert values["auth-calls"] == "true"
    assert values["auth-subscriptions"] == "true"
    assert values["context"] == "public"
    assert values["sip-ip"] == SIP_IP
    assert values["sip-port"] == "5060"
    for open_door in ("accept-blind-reg", "accept-blind-auth", "apply-inbound-acl"):
        assert open_door not in values


def test_carrier_profile_lands_in_public_only_from_listed_networks(node: Path) -> None:
    document = assemble(node)
    values = params(profile(document, "carriers"))
    assert values["context"] == "public"
    assert values["auth-calls"] == "false"
    assert values["apply-inbound-acl"] == "carriers"
    assert values["sip-port"] == "5080"
    carriers = configuration(document, "acl.conf").find("network-lists/list[@name='carriers']")
    assert carriers is not None
    assert carriers.get("default") == "deny"
    assert [n.get("cidr") for n in carriers.iter("node")] == [CARRIER_CIDR]


def test_ext_ip_is_only_set_when_given(tmp_path: Path, node: Path) -> None:
    assert "ext-rtp-ip" not in params(profile(assemble(node), "tenants"))
    write_node_config(settings(ext_ip="203.0.113.7"), tmp_path / "nat")
    values = params(profile(assemble(tmp_path / "nat"), "tenants"))
    assert values["ext-rtp-ip"] == values["ext-sip-ip"] == "203.0.113.7"


# --- fallbacks: directory, dialplan, callcenter ------------------------------------------


def test_static_directory_holds_no_user(node: Path) -> None:
    for path in xml_files(node / "directory"):
        assert "<user" not in path.read_text(encoding="utf-8"), path
    directory = section(assemble(node), "directory")
    assert list(directory.iter("user")) == []
    assert list(directory.iter("domain")) == []


def test_static_dialplan_routes_nothing(node: Path) -> None:
    for path in xml_files(node / "dialplan"):
        assert list(parse(path)) == [], f"{path} has elements"
        assert "example.com" not in path.read_text(encoding="utf-8")
    dialplan = section(assemble(node), "dialplan")
    for tag in ("context", "extension", "condition", "action"):
        assert list(dialplan.iter(tag)) == [], tag


def test_callcenter_conf_has_settings_only(node: Path) -> None:
    config = parse(node / "autoload_configs/callcenter.conf.xml")
    assert config.get("name") == "callcenter.conf"
    assert [child.tag for child in config] == ["settings"]
    for tag in ("queues", "queue", "agents", "agent", "tiers", "tier"):
        assert config.find(f".//{tag}") is None, tag
    for truncating in ("truncate-agents-on-load", "truncate-tiers-on-load"):
        assert truncating not in params(config)


# --- event socket ------------------------------------------------------------------------


def test_event_socket_listens_on_loopback_with_the_password(node: Path) -> None:
    values = params(parse(node / "autoload_configs/event_socket.conf.xml"))
    assert values["listen-ip"] == "127.0.0.1"
    assert values["listen-port"] == "8021"
    assert values["password"] == ESL_PASSWORD
    assert values["apply-inbound-acl"] == "loopback.auto"


def test_remote_event_socket_needs_an_allow_list(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="esl-allow"):
        write_node_config(settings(esl_listen_ip="10.0.0.5"), tmp_path / "a")
    write_node_config(settings(esl_listen_ip="10.0.0.5", esl_allow=("10.0.0.9",)), tmp_path / "b")
    document = assemble(tmp_path / "b")
    assert params(configuration(document, "event_socket.conf"))["apply-inbound-acl"] == (
        "esl_clients"
    )
    clients = configuration(document, "acl.conf").find("network-lists/list[@name='esl_clients']")
    assert clients is not None
    assert "10.0.0.9/32" in [n.get("cidr") for n in clients.iter("node")]


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reconciler_url": "http://u:p@127.0.0.1:8080/freeswitch/xml"}, "credentials"),
        ({"reconciler_url": "ftp://127.0.0.1/freeswitch/xml"}, "http"),
        ({"xml_curl_password": "a${x}b"}, "expand"),
        ({"xml_curl_password": "line\nbreak"}, "control"),
        ({"esl_password": "ClueCon"}, "default"),
        ({"esl_password": "a,b"}, "PBX_FREESWITCH"),
        ({"sip_ip": "pbx.example.net"}, "IP address"),
        ({"carrier_sip_port": 5060}, "differ"),
        ({"xml_curl_timeout": 0}, "timeout"),
        ({"xml_curl_cacert": "/etc/ca.pem"}, "https"),
        ({"carrier_cidrs": ("not-a-net",)}, "CIDR"),
        ({"rtp_start_port": 5000, "rtp_end_port": 6000}, "overlap"),
    ],
    ids=[
        "url-with-credentials",
        "url-not-http",
        "password-expands",
        "password-newline",
        "esl-default-password",
        "esl-password-comma",
        "sip-ip-hostname",
        "same-sip-ports",
        "no-timeout",
        "cacert-without-https",
        "bad-cidr",
        "rtp-overlaps-sip",
    ],
)
def test_invalid_values_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        node_config_files(settings(**overrides))


def test_settings_repr_hides_secrets() -> None:
    shown = repr(settings())
    assert CURL_PASSWORD not in shown and ESL_PASSWORD not in shown


def test_the_shipped_tree_is_the_node_configuration_alone() -> None:
    shipped = {rel.as_posix() for rel, _ in iter_sources()}
    assert "autoload_configs/xml_curl.conf.xml.j2" in shipped
    assert "freeswitch.xml" in shipped and "vars.xml.j2" in shipped
    assert not any(name.endswith((".py", ".md")) or name.startswith("systemd/") for name in shipped)


# --- the command line --------------------------------------------------------------------


def assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for secret in (CURL_PASSWORD, ESL_PASSWORD, "S3cret"):
        assert secret not in result.stdout, "secret on stdout"
        assert secret not in result.stderr, "secret on stderr"


def test_cli_renders_the_tree_without_printing_secrets(tmp_path: Path) -> None:
    result = run_cli(*cli_args(tmp_path / "fs"))
    assert result.returncode == 0, result.stderr
    assert_no_secret(result)
    assert URL in result.stdout
    assert (
        params(parse(tmp_path / "fs/autoload_configs/event_socket.conf.xml"))["password"]
        == ESL_PASSWORD
    )
    mode = (tmp_path / "fs/autoload_configs/xml_curl.conf.xml").stat().st_mode & 0o777
    assert mode & 0o007 == 0, "secret-bearing file readable by others"


def test_cli_reads_secrets_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "fs"
    result = run_cli(
        "--sip-ip",
        SIP_IP,
        "--out",
        str(out),
        env={"PBX_XML_CURL_AUTH": f"{CURL_USER}:{CURL_PASSWORD}", "PBX_ESL_PASSWORD": ESL_PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    assert_no_secret(result)
    values = params(parse(out / "autoload_configs/xml_curl.conf.xml"))
    assert values["gateway-credentials"] == f"{CURL_USER}:{CURL_PASSWORD}"


@pytest.mark.parametrize(
    "bad",
    [("--sip-ip", "not-an-ip"), ("--esl-password", "ClueCon"), ("--xml-curl-auth", "nocolon")],
    ids=["bad-ip", "default-esl-password", "auth-without-colon"],
)
def test_cli_usage_errors_exit_2_without_printing_secrets(
    tmp_path: Path, bad: tuple[str, str]
) -> None:
    result = run_cli(*cli_args(tmp_path / "fs"), *bad)
    assert result.returncode == 2
    assert_no_secret(result)
    assert not (tmp_path / "fs").exists()


def test_cli_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "fs"
    assert run_cli(*cli_args(out)).returncode == 0
    esl_conf = out / "autoload_configs/event_socket.conf.xml"
    before = esl_conf.read_text(encoding="utf-8")

    args = cli_args(out)
    args[args.index(ESL_PASSWORD)] = "another-Pw_2"
    refused = run_cli(*args)
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert esl_conf.read_text(encoding="utf-8") == before

    forced = run_cli(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert params(parse(esl_conf))["password"] == "another-Pw_2"
    assert "another-Pw_2" not in forced.stdout + forced.stderr


def test_force_warns_about_files_the_tree_does_not_own(tmp_path: Path) -> None:
    out = tmp_path / "fs"
    leftover = out / "directory/default/1000.xml"
    leftover.parent.mkdir(parents=True)
    leftover.write_text('<include><user id="1000"/></include>\n', encoding="utf-8")
    result = run_cli(*cli_args(out, "--force"))
    assert result.returncode == 0, result.stderr
    assert str(leftover) in result.stderr
    assert leftover.exists(), "--force must not delete files it did not write"


def test_render_function_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("operator's file\n", encoding="utf-8")
    with pytest.raises(OutputNotEmptyError):
        write_node_config(settings(), tmp_path)
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "operator's file\n"


# --- systemd -----------------------------------------------------------------------------


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return unit


SYSTEMD = REPO / "freeswitch_conf" / "systemd"


def test_systemd_unit_runs_and_reloads_the_daemon() -> None:
    unit = read_unit(SYSTEMD / "pbx-reconciler.service")
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    exec_start = service["ExecStart"].split()
    assert exec_start[0].startswith("/") and Path(exec_start[0]).name == "pbx"
    assert exec_start[1:] == ["run"]
    assert "-HUP" in service["ExecReload"] and "$MAINPID" in service["ExecReload"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"]
    assert service["User"] == "pbx"
    assert service["EnvironmentFile"] == "-/etc/pbx-reconciler/env"
    assert service["WorkingDirectory"].startswith("/")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["WorkingDirectory"] in service["ReadWritePaths"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_data_plane_unit_runs_pbx_serve() -> None:
    unit = read_unit(SYSTEMD / "pbx-serve.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["serve"]
    assert "ExecReload" not in service  # no pass to run
    assert service["KillSignal"] == "SIGTERM" and service["LimitNOFILE"] == "65536"
    assert unit["Unit"]["Before"] == "freeswitch.service"


def test_systemd_unit_leaves_room_for_the_listeners_connection_caps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    from reconciler.serve.listener import ListenerLimits, connection_caps

    limit = int(read_unit(SYSTEMD / "pbx-reconciler.service")["Service"]["LimitNOFILE"])
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (resource.RLIM_INFINITY,) * 2)
    unlimited = connection_caps(ListenerLimits())
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (limit, limit))
    assert connection_caps(ListenerLimits()) == unlimited  # not lowered under the unit
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (1024, 1024))
    assert connection_caps(ListenerLimits()).cap < unlimited.cap  # systemd's default
    readme = (REPO / "freeswitch_conf" / "README.md").read_text(encoding="utf-8")
    assert f"LimitNOFILE={limit}" in readme


def test_env_example_sets_only_pbx_variables_the_daemon_reads() -> None:
    keys: list[str] = []
    for line in (SYSTEMD / "env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, _ = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            keys.append(key)
    assert all(key.startswith("PBX_") for key in keys)
    assert {"PBX_DATABASE_URL", "PBX_XML_CURL_AUTH", "PBX_FREESWITCH"} <= set(keys)
    assert len(keys) == len(set(keys))

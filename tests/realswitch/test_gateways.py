"""Carrier gateways on the real switch: declared in ``_platform.yaml`` with the password in
the host's secrets file -> the switch fetches the gateway over xml_curl (``startgw``) and
registers with the right digest at a sipp registrar; a gateway whose password the host
lacks is that gateway's error only; killed by hand -> put back; removed from git -> gone.
The password appears in no log, /status or plan."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.realswitch.conftest import Node
from tests.realswitch.processes import wait_for
from tests.realswitch.sipp import Sipp
from tests.realswitch.switch import missing_reason, profiles_running

pytestmark = [pytest.mark.realswitch, pytest.mark.timeout(240)]
if missing_reason():
    pytestmark.append(pytest.mark.skip(reason=missing_reason() or ""))

REALM = "carrier.test"
USER = "4415550100"
PASSWORD = "Carrier-Pw-7f3a9c"
NO_GATEWAYS = "super_admins: []\ngateways: []\n"


def platform(registrar_port: int, *, with_missing: bool = True) -> str:
    text = (
        "gateways:\n"
        "  - name: carrier_rs\n"
        f"    proxy: '127.0.0.1:{registrar_port}'\n"
        f"    realm: {REALM}\n"
        f"    username: '{USER}'\n"
        "    register: true\n"
        "    expire_seconds: 600\n"
        "    retry_seconds: 30\n"
    )
    if with_missing:
        text += (
            "  - name: carrier_nopw\n"
            "    proxy: '127.0.0.1:9'\n"
            "    username: someone\n"
            "    register: true\n"
        )
    return text


def status(node: Node) -> dict[str, Any]:
    url = f"http://127.0.0.1:{node.status_port}/status"
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.loads(response.read()))


def listed(node: Node) -> str:
    return node.esl.try_api("sofia xmlstatus gateway")


def gateway_state(node: Node, name: str) -> str | None:
    one = node.esl.try_api(f"sofia xmlstatus gateway {name}")
    match = re.search(r"<state>([A-Z_]+)</state>", one)
    return match.group(1) if match else None


def digest_is_right(authorization: str, method: str = "REGISTER") -> bool:
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', authorization))
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731 - SIP digest
    ha1 = md5(f"{fields['username']}:{fields['realm']}:{PASSWORD}")
    ha2 = md5(f"{method}:{fields['uri']}")
    if "qop" in fields:
        expected = md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    else:
        expected = md5(f"{ha1}:{fields['nonce']}:{ha2}")
    return fields.get("response") == expected


@pytest.fixture
def registrar(node: Node) -> Iterator[Sipp]:
    sipp = node.sipp(
        "registrar",
        "registrar.xml",
        target=None,
        variables={"realm": REALM, "user": USER, "password": PASSWORD},
    )
    sipp.start().wait_listening()
    try:
        yield sipp
    finally:
        sipp.close()


@pytest.fixture
def secrets(node: Node) -> Iterator[None]:
    path = node.workdir / "secrets.yaml"
    path.write_text(f"gateways:\n  carrier_rs: {{password: {PASSWORD}}}\n")
    os.chmod(path, 0o600)
    try:
        yield
    finally:
        (node.tenants_dir / "_platform.yaml").write_text(NO_GATEWAYS)
        wait_for(lambda: "carrier_" not in listed(node), "every test gateway removed",
                 timeout=60, detail=node.logs)  # fmt: skip
        path.unlink()


def test_a_declared_gateway_registers_and_is_kept_on_the_switch(
    node: Node, registrar: Sipp, secrets: None
) -> None:
    (node.tenants_dir / "_platform.yaml").write_text(platform(registrar.port))
    wait_for(lambda: gateway_state(node, "carrier_rs") == "REGED", "carrier_rs registered",
             timeout=60, detail=lambda: f"{listed(node)}\n{node.logs()}")  # fmt: skip

    # the right digest, computed from what the carrier received
    registers = registrar.received("REGISTER")
    authorized = [m.header("Authorization") for m in registers if m.header("Authorization")]
    assert authorized, registrar.messages
    assert all(digest_is_right(a or "") for a in authorized)
    answers = [m.first_line for m in registrar.messages if not m.received]
    assert "SIP/2.0 200 Right Digest" in answers, answers  # sipp's own check agreed

    # the gateway without a password on the host: its error, nobody else's
    wait_for(lambda: status(node)["gateways"]["declared"].get("carrier_nopw", {}).get("error"),
             "carrier_nopw reported in error", timeout=30)  # fmt: skip
    error = status(node)["gateways"]["declared"]["carrier_nopw"]["error"]
    assert "PBX_GATEWAY_CARRIER_NOPW_PASSWORD" in error
    assert "carrier_nopw" not in listed(node)
    assert status(node)["gateways"]["declared"]["carrier_rs"]["error"] is None
    assert status(node)["last_pass"]["result"] == "ok"  # the tenants go on

    # killed by hand: put back by the next poll or pass
    node.esl.fs_cli("sofia profile carriers killgw carrier_rs")
    wait_for(lambda: gateway_state(node, "carrier_rs") is None, "carrier_rs killed by hand")
    wait_for(lambda: gateway_state(node, "carrier_rs") is not None, "carrier_rs put back",
             timeout=60, detail=lambda: f"{listed(node)}\n{node.logs()}")  # fmt: skip

    # the password is nowhere it could be read
    assert PASSWORD not in json.dumps(status(node))
    assert PASSWORD not in node.daemon_log.read_text(errors="replace")
    assert PASSWORD not in node.fs_log.read_text(errors="replace")
    plan = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--tenants", str(node.tenants_dir)],
        env=node.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert PASSWORD not in plan.stdout + plan.stderr

    # removed from git: gone from the switch, the other profile untouched
    (node.tenants_dir / "_platform.yaml").write_text("gateways:\n  - {name: carrier_nopw}\n")
    wait_for(lambda: "carrier_rs" not in listed(node), "carrier_rs removed",
             timeout=60, detail=lambda: f"{listed(node)}\n{node.logs()}")  # fmt: skip
    assert profiles_running(node.esl.api("sofia status"))  # no profile was restarted


def test_a_wrong_password_puts_that_gateway_only_in_error(node: Node, secrets: None) -> None:
    refusing = node.sipp(
        "registrar-refusing",
        "registrar.xml",
        target=None,
        variables={"realm": REALM, "user": USER, "password": "not-" + PASSWORD},
    )
    refusing.start().wait_listening()
    try:
        (node.tenants_dir / "_platform.yaml").write_text(
            platform(refusing.port, with_missing=False)
            + "  - {name: carrier_open, proxy: '127.0.0.1:9'}\n"
        )

        def refused() -> bool:
            return gateway_state(node, "carrier_rs") in ("FAILED", "FAIL_WAIT")

        wait_for(refused, "carrier_rs refused by its registrar", timeout=60,
                 detail=lambda: f"{listed(node)}\n{node.logs()}")  # fmt: skip
        answers = [m.first_line for m in refusing.messages if not m.received]
        assert "SIP/2.0 403 Wrong Digest" in answers, answers
        assert gateway_state(node, "carrier_open") == "NOREG"  # the other gateway is fine

        def reported() -> dict[str, Any]:
            nodes = status(node)["gateways"]["nodes"]
            return dict(next(iter(nodes.values()))["live"])

        wait_for(lambda: reported().get("carrier_rs", {}).get("state") in ("FAILED", "FAIL_WAIT"),
                 "/status shows carrier_rs failing", timeout=30)  # fmt: skip
        with urllib.request.urlopen(
            f"http://127.0.0.1:{node.status_port}/metrics", timeout=5
        ) as response:
            metrics = response.read().decode()
        assert re.search(
            r'pbx_gateway_state\{gateway="carrier_rs",node="[^"]+",state="FAIL', metrics
        )
        assert re.search(
            r'pbx_gateway_state\{gateway="carrier_open",node="[^"]+",state="NOREG"\} 1', metrics
        )
        assert PASSWORD not in metrics
    finally:
        refusing.close()

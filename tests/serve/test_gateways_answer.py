"""``sofia.conf`` over xml_curl: only ``sofia profile carriers startgw``'s fetch is answered
(the named gateway or ``_all_``, with its password from the host); every other sofia.conf
fetch falls back to the node's files; nothing is served without a password source; a
generation file carries the gateways but never a password."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from reconciler.core.identity import DatabaseIdentity
from reconciler.core.model import Gateway
from reconciler.serve.gateways import ServedGateway
from reconciler.serve.generation import open_generation, write_generation
from reconciler.serve.snapshot import Snapshot, build_snapshot
from reconciler.serve.templating import load_templates
from reconciler.serve.xmlcurl import Result, answer

TEMPLATES = load_templates()
CARRIER = Gateway(
    "carrier1", "sip.carrier.example:5061", "reg.carrier.example", "carrier.example", "4415550100",
    True, "tls", 600, 45, 20, False, "PCMA,PCMU", "", "pbkdf2:0123456789abcdef",
)  # fmt: skip
OPEN = Gateway(
    "open1", "192.0.2.1", "192.0.2.1", "192.0.2.1", None,
    False, "udp", 3600, 30, 0, True, "", "", "none",
)  # fmt: skip
OUTSIDE = Gateway("legacy", "", "", "", None, False, "udp", 3600, 30, 0, True, "", "", "none")
PASSWORDS = {"carrier1": 'pa"ss<&>word'}


def startgw(name: str) -> dict[str, str]:
    return {
        "hostname": "fs1",
        "section": "configuration",
        "tag_name": "configuration",
        "key_name": "name",
        "key_value": "sofia.conf",
        "profile": "carriers",
        "reconfig": "true",
        "gateway": name,
    }


def snapshot() -> Snapshot:
    return build_snapshot({}, {}, gateways=[CARRIER, OPEN, OUTSIDE])


def params(body: str, gateway: str) -> dict[str, str]:
    root = ET.fromstring(body)
    found = root.find(f".//profile[@name='carriers']/gateways/gateway[@name='{gateway}']")
    assert found is not None
    return {p.get("name", ""): p.get("value", "") for p in found.iter("param")}


def test_startgw_gets_the_gateway_with_its_password() -> None:
    result = answer(snapshot(), startgw("carrier1"), TEMPLATES, PASSWORDS.get)
    assert result.result is Result.FOUND
    got = params(result.body, "carrier1")
    assert got["password"] == 'pa"ss<&>word'  # escaped in the XML, intact once parsed
    assert got["proxy"] == "sip.carrier.example:5061"
    assert got["register-proxy"] == "reg.carrier.example"
    assert got["realm"] == "carrier.example"
    assert got["username"] == "4415550100"
    assert got["register"] == "true"
    assert got["register-transport"] == "tls"
    assert (got["expire-seconds"], got["retry-seconds"], got["ping"]) == ("600", "45", "20")
    assert got["caller-id-in-from"] == "false"
    assert 'value="PCMA,PCMU" direction="outbound"' in result.body
    assert "<settings" not in result.body  # a settings-less answer only ever adds gateways


def test_all_means_every_carried_gateway_never_one_managed_outside() -> None:
    result = answer(snapshot(), startgw("_all_"), TEMPLATES, PASSWORDS.get)
    names = {g.get("name") for g in ET.fromstring(result.body).iter("gateway")}
    assert names == {"carrier1", "open1"}
    assert "password" not in params(result.body, "open1")


def test_other_sofia_fetches_fall_back_to_the_node_files() -> None:
    snap = snapshot()
    for form in (
        {**startgw("carrier1"), "reconfig": ""},  # the profile's worker thread, a restart
        {k: v for k, v in startgw("carrier1").items() if k not in ("profile", "gateway")},
        {**startgw("carrier1"), "profile": "tenants"},
        {k: v for k, v in startgw("carrier1").items() if k != "gateway"},  # rescan
        startgw("unknown"),
        startgw("legacy"),
    ):
        result = answer(snap, form, TEMPLATES, PASSWORDS.get)
        assert result.result is Result.NOT_FOUND, form


def test_no_password_source_or_no_password_serves_nothing() -> None:
    snap = snapshot()
    assert answer(snap, startgw("carrier1"), TEMPLATES, None).result is Result.NOT_FOUND
    assert answer(snap, startgw("carrier1"), TEMPLATES, {}.get).result is Result.NOT_FOUND
    assert answer(snap, startgw("open1"), TEMPLATES, {}.get).result is Result.FOUND


def test_the_generation_file_holds_the_gateways_and_no_password(tmp_path: Path) -> None:
    path = tmp_path / "gen"
    identity = DatabaseIdentity.from_dict(
        {"system_identifier": "1", "database": "d", "installation_id": "i"}
    )
    snap = build_snapshot({}, {}, generation="g1", gateways=[CARRIER, OPEN])
    write_generation(snap, path, identity=identity, dsn_fingerprint="f", allow_empty=True)
    assert b"pbkdf2" not in path.read_bytes()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    mapped = open_generation(path, expected_identity=identity, dsn_fingerprint="f")
    try:
        assert dict(mapped.gateways) == dict(snap.gateways)
        result = answer(mapped, startgw("carrier1"), TEMPLATES, PASSWORDS.get)
        assert params(result.body, "carrier1")["password"] == 'pa"ss<&>word'
    finally:
        mapped.close()


def test_a_served_gateway_keeps_its_positional_row_in_the_generation() -> None:
    """The generation's G record stores each gateway as a row: the record's settings in
    their declared order, then whether a password is served; reading the row back gives the
    same gateway."""
    served = ServedGateway.of(CARRIER)
    row = list(served)
    assert row == [
        "carrier1", "sip.carrier.example:5061", "reg.carrier.example", "carrier.example",
        "4415550100", True, "tls", 600, 45, 20, False, "PCMA,PCMU", True,
    ]  # fmt: skip
    assert ServedGateway._make(row) == served
    assert list(ServedGateway.of(OPEN))[-1] is False

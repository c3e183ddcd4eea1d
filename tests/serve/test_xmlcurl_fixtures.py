"""Shared data for the snapshot and xml_curl tests (no tests here).

The tenants match the capture in shared/freeswitch/transcripts/xml_curl: acme.example.com
with 1001 (password S3cret-Pass-1001, so its A1 hash is the captured one), 1002 and 1003,
queue support@acme.example.com. globex reuses the same extension numbers, queue name and
feature codes under another domain, so that any cross-tenant mix-up shows; initech is
suspended.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path

from reconciler.core.desired import tenant_state_from_spec
from reconciler.core.model import State
from specs_schema.load import load_specs
from tests.conftest import TRANSCRIPTS

XML_CURL = TRANSCRIPTS / "xml_curl"
CAPTURED_1001_A1 = "169fe0fdf5248aeb3ef429431dc8ad4d"

ACME_YAML = """\
id: acme
domain: acme.example.com
name: Acme Corporation
status: active
settings:
  extension_length: {min: 3, max: 6}
  call_timeout: 30
  outbound_caller_id: {name: Acme Corporation, number: "+14155550100"}
  feature_codes: {agent_available: "*22", agent_on_break: "*23", agent_logged_out: "*24"}
users:
  - {email: alice@acme.example.com, name: Alice Smith, role: admin, extensions: ["1001"]}
  - {email: bob@acme.example.com, name: Bob Jones, role: agent, extensions: ["1002", "1003"]}
extensions:
  - number: "1001"
    name: Alice Smith
    caller_id: {name: Alice Smith, number: "1001"}
    max_registrations: 3
  - {number: "1002", name: Bob desk phone, call_timeout: 25}
  - {number: "1003", name: Bob softphone}
  - {number: "1004", name: Old phone, enabled: false}
agents:
  - {name: alice, extension: "1001", type: callback, initial_status: Available}
  - {name: bob, extension: "1002", type: callback}
  - {name: carol, extension: "1003", type: callback}
queues:
  - name: support
    number: "7000"
    strategy: longest-idle-agent
    moh_sound: local_stream://moh
    max_wait_time: 120
    tiers:
      - {agent: alice, level: 1, position: 1}
      - {agent: bob, level: 2, position: 1}
  - name: sales
    number: "7001"
    strategy: ring-all
    tiers:
      - {agent: bob, level: 1, position: 1}
inbound_numbers:
  - {number: "+14155550100", destination: {queue: support}}
  - {number: "+14155550101", destination: {extension: "1001"}}
  - {number: "+14155550104", destination: {extension: "1004"}}
"""

GLOBEX_YAML = """\
id: globex
domain: globex.example.com
name: Globex & Sons <Intl>
extensions:
  - {number: "1001", name: "Hank \\"The Boss\\" Scorpio"}
  - {number: "1002", name: Globex desk}
agents:
  - {name: alice, extension: "1001"}
queues:
  - {name: support, number: "7000", strategy: ring-all}
inbound_numbers:
  - {number: "+442071230000", destination: {extension: "1001"}}
"""

INITECH_YAML = """\
id: initech
domain: initech.example.com
name: Initech
status: suspended
extensions:
  - {number: "1001", name: Peter}
agents:
  - {name: peter, extension: "1001"}
queues:
  - {name: tps, number: "7000"}
inbound_numbers:
  - {number: "+15125550100", destination: {extension: "1001"}}
"""

SPECS = {"acme": ACME_YAML, "globex": GLOBEX_YAML, "initech": INITECH_YAML}


def password(tenant_id: str, number: str) -> str:
    if (tenant_id, number) == ("acme", "1001"):
        return "S3cret-Pass-1001"
    return f"pw-{tenant_id}-{number}"


def a1_hash(number: str, domain: str, secret: str) -> str:
    return hashlib.md5(f"{number}:{domain}:{secret}".encode()).hexdigest()


def load_state(directory: Path, specs: Mapping[str, str] = SPECS) -> State:
    """Write the YAML files and load them the way the reconciler does."""
    directory.mkdir(parents=True, exist_ok=True)
    for tenant_id, text in specs.items():
        (directory / f"{tenant_id}.yaml").write_text(text, encoding="utf-8")
    spec_set = load_specs([directory])
    assert spec_set.ok, spec_set.errors
    return {tid: tenant_state_from_spec(loaded.spec) for tid, loaded in spec_set.tenants.items()}


def a1_hashes_for(state: State) -> dict[tuple[str, str], str]:
    """What the store would hold: a hash for every extension, enabled or not."""
    return {
        (tid, number): a1_hash(number, ts.tenant.domain, password(tid, number))
        for tid, ts in state.items()
        for number in ts.extensions
    }


def captured() -> Iterator[tuple[str, dict[str, object]]]:
    for path in sorted(XML_CURL.glob("*.json")):
        yield path.name, json.loads(path.read_text(encoding="utf-8"))


def captured_body(name_prefix: str) -> str:
    for name, capture in captured():
        if name.startswith(name_prefix):
            return str(capture["body"])
    raise KeyError(name_prefix)


def parse_xml(text: str | bytes) -> ET.Element:
    return ET.fromstring(text)


def is_not_found(root: ET.Element) -> bool:
    result = root.find("./section[@name='result']/result")
    return result is not None and result.get("status") == "not found"


def replace_field(body: str, name: str, value: str) -> str:
    """Swap one field's value in a captured body (value given already encoded)."""
    parts = body.split("&")
    for i, part in enumerate(parts):
        if part.partition("=")[0] == name:
            parts[i] = f"{name}={value}"
            return "&".join(parts)
    raise KeyError(name)

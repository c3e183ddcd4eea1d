"""``--freeswitch HOST:PORT:PASSWORD``: which switches to reach, parsed without ever echoing
a password (errors show the host only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.switch.errors import NodeSpecError

DEFAULT_ESL_PORT = 8021


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One FreeSWITCH node's ESL address. ``password`` stays out of repr and str."""

    host: str
    port: int
    password: str = field(repr=False)

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.name


def parse_node_spec(text: str) -> NodeSpec:
    """``HOST:PORT:PASSWORD`` (``[v6addr]:PORT:PASSWORD`` for IPv6). The password is
    everything after the second separator, so it may itself contain ``:``."""
    raw = text.strip()
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise NodeSpecError(f"--freeswitch {_masked(raw)}: expected [IPv6]:PORT:PASSWORD")
        rest = rest[1:]
    else:
        host, _, rest = raw.partition(":")
    port_text, sep, password = rest.partition(":")
    shown = f"{host}:{port_text}:***"
    if not host or not sep:
        raise NodeSpecError(f"--freeswitch {_masked(raw)}: expected HOST:PORT:PASSWORD")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise NodeSpecError(f"--freeswitch {shown}: port must be a number in 1..65535")
    if not password:
        raise NodeSpecError(f"--freeswitch {shown}: empty password")
    if any(c in password for c in "\r\n"):
        raise NodeSpecError(f"--freeswitch {shown}: password holds a line break")
    return NodeSpec(host=host, port=int(port_text), password=password)


def _masked(raw: str) -> str:
    """Just the host: anything after it may be (part of) a password."""
    if raw.startswith("["):
        host, bracket, _ = raw.partition("]")
        return f"{host}]:***" if bracket else "(unparseable value)"
    host, sep, _ = raw.partition(":")
    return f"{host}:***" if sep else "(unparseable value)"


def parse_node_specs(values: Iterable[str]) -> tuple[NodeSpec, ...]:
    """Every ``--freeswitch`` value; the same HOST:PORT twice is an error."""
    specs: list[NodeSpec] = []
    seen: set[str] = set()
    for value in values:
        spec = parse_node_spec(value)
        if spec.name in seen:
            raise NodeSpecError(f"--freeswitch {spec.name} given twice")
        seen.add(spec.name)
        specs.append(spec)
    return tuple(specs)

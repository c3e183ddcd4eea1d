"""The switch nodes' public WSS URLs of the browser phone (``--phone-wss``): each one is
handed to browsers and becomes a ``connect-src`` origin of the phone page's
Content-Security-Policy, so only a plain ``wss://host[:port]`` passes (no userinfo, path,
query, fragment, wildcard or whitespace that could widen the policy or smuggle a
credential)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv6Address

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_URL = re.compile(r"^wss://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:(?P<port>[0-9]{1,5}))?/?$")


def parse_wss_url(text: str) -> str:
    """``text`` as the origin ``wss://host:port`` (port 443 made explicit, host lowercase);
    ``ValueError`` naming the setting for anything else."""
    match = _URL.match(text.strip().lower())
    if match is None:
        raise ValueError(
            f"--phone-wss must be wss://HOST[:PORT] (no user, path or query): {text!r}"
        )
    host, port = match["host"], int(match["port"] or 443)
    if host.startswith("["):
        try:
            IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ValueError(f"--phone-wss: not an IPv6 address: {text!r}") from exc
    elif not _HOSTNAME.match(host):
        raise ValueError(f"--phone-wss: not a host name or address: {text!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"--phone-wss: port out of range: {text!r}")
    return f"wss://{host}:{port}"


def parse_wss_urls(texts: Iterable[str]) -> tuple[str, ...]:
    """Every URL parsed, in order, each once (the phone tries them in this order)."""
    seen: dict[str, None] = {}
    for text in texts:
        seen.setdefault(parse_wss_url(text))
    return tuple(seen)

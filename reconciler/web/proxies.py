"""Who the client is behind a reverse proxy: ``X-Forwarded-For`` is believed only when the
direct peer is a trusted proxy (``--portal-trusted-proxies``), and only up to the first
address no trusted proxy vouches for (anything left of it the client wrote itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def _parse(text: str) -> Address | None:
    try:
        found = ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]
) -> str:
    """The rightmost ``X-Forwarded-For`` entry that is not a trusted proxy, when ``peer``
    is one; otherwise ``peer``. A malformed entry ends the walk at the last trusted hop."""
    current = _parse(peer or "")
    if current is None:
        return peer or "unknown"
    if not proxies or not _trusted(current, proxies):
        return str(current)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break
        current = address
        if not _trusted(current, proxies):
            break
    return str(current)

"""Registrations read from a switch: ``show registrations as json`` (the core table, every
profile, with the dialable url and the absolute expiry) enriched with ``sofia xmlstatus
profile <P> reg`` (what the phone sent: its Contact, User-Agent, and sofia's ping status),
and the ``sofia::register`` / ``unregister`` / ``expire`` events that keep them fresh.

Why both listings: the portal shows user agent and reachability, which only sofia's view
has, but sofia's view is per profile; the core table names the profiles that hold
registrations (``url`` is ``sofia/<profile>/...``), so no profile list has to be configured.
Registrations are keyed by Call-ID, which every one of these sources carries.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from reconciler.core.presence import Registration

SHOW_REGISTRATIONS: Final = "show registrations as json"
_PROFILE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_ROW: Final = re.compile(r"<registration>(.*?)</registration>", re.S)
_FIELD: Final = re.compile(r"<([a-z-]+)>(.*?)</\1>", re.S)
_STATUS: Final = re.compile(
    r"(?P<status>.*)\((?P<rpid>[^()]*)\) exp\((?P<exp>[^)]*)\) expsecs\((?P<secs>-?\d+)\)", re.I
)


def xmlstatus_command(profile: str) -> str | None:
    """``sofia xmlstatus profile <P> reg``, or None for a profile name we would not send."""
    return f"sofia xmlstatus profile {profile} reg" if _PROFILE.fullmatch(profile) else None


def _epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _port(text: str) -> int:
    return int(text) if text.isdigit() else 0


def parse_core_registrations(text: str, node: str) -> dict[str, tuple[str, Registration]]:
    """``show registrations as json`` -> call-id -> (profile, registration). The url stands
    in for the contact until sofia's own view says what the phone sent."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return {}
    rows = data.get("rows", []) if isinstance(data, dict) else []
    out: dict[str, tuple[str, Registration]] = {}
    for row in rows:
        if not isinstance(row, dict) or not row.get("token"):
            continue
        url = str(row.get("url", ""))
        profile = url.split("/")[1] if url.startswith("sofia/") and url.count("/") >= 2 else ""
        expires = str(row.get("expires", ""))
        out[str(row["token"])] = (
            profile,
            Registration(
                node=node,
                user=str(row.get("reg_user", "")),
                domain=str(row.get("realm", "")).lower(),
                contact=url,
                user_agent="",
                network_ip=str(row.get("network_ip", "")),
                network_port=_port(str(row.get("network_port", ""))),
                expires_at=_epoch(int(expires)) if expires.isdigit() else None,
                status=f"Registered({str(row.get('network_proto', '')).upper()})",
            ),
        )
    return out


def parse_sofia_registrations(text: str, node: str, now: datetime) -> dict[str, Registration]:
    """``sofia xmlstatus profile <P> reg`` -> call-id -> registration. The expiry comes from
    ``expsecs`` (relative to ``now``): ``exp(...)`` is the switch's local time, zone unknown."""
    out: dict[str, Registration] = {}
    for block in _ROW.findall(text):
        f = {k: html.unescape(v) for k, v in _FIELD.findall(block)}
        if not f.get("call-id"):
            continue
        user, _, host = f.get("user", "").partition("@")
        status = _STATUS.fullmatch(f.get("status", ""))
        out[f["call-id"]] = Registration(
            node=node,
            user=f.get("sip-auth-user") or user,
            domain=(f.get("sip-auth-realm") or host).lower(),
            contact=f.get("contact", ""),
            user_agent=f.get("agent", ""),
            network_ip=f.get("network-ip", ""),
            network_port=_port(f.get("network-port", "")),
            expires_at=now + timedelta(seconds=int(status["secs"])) if status else None,
            status=status["status"] if status else f.get("status", ""),
            ping_status=f.get("ping-status") or None,
        )
    return out


def registration_from_event(headers: Mapping[str, str], node: str) -> Registration | None:
    """A ``sofia::register`` event -> the registration it announces."""
    user = headers.get("username") or headers.get("from-user") or ""
    domain = (headers.get("realm") or headers.get("from-host") or "").lower()
    if not user or not domain:
        return None
    stamp = headers.get("Event-Date-Timestamp", "")
    expires = headers.get("expires", "")
    expires_at = (
        _epoch(int(stamp) / 1_000_000 + int(expires))
        if stamp.isdigit() and expires.isdigit()
        else None
    )
    return Registration(
        node=node,
        user=user,
        domain=domain,
        contact=headers.get("contact", ""),
        user_agent=headers.get("user-agent", ""),
        network_ip=headers.get("network-ip", ""),
        network_port=_port(headers.get("network-port", "")),
        expires_at=expires_at,
        status=headers.get("status", ""),
    )

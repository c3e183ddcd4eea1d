"""Carrier gateways as the ``carriers`` profile fetches them: ``sofia.conf`` over xml_curl.

What sofia asks (FreeSWITCH 1.10, ``mod_sofia/sofia.c``, seen on the real switch):

* at start-up, ``sofia.conf`` with no ``profile``: the whole file. Not answered ("not
  found"): the node's own files hold both profiles and their per-node settings (addresses,
  WSS, ACLs), which the reconciler does not know;
* each profile's worker thread, then ``sofia profile P start|restart|rescan``: ``sofia.conf``
  with ``profile=P`` (rescan adds ``reconfig=true``). Not answered either: a rescan or a
  restart re-reads the profile's ``<settings>`` from the answer (a settings-less answer
  would clear the profile's inbound ACL or stop it starting), so these fall back to the files;
* ``sofia profile carriers startgw <gw>``: ``profile=carriers``, ``reconfig=true`` and
  ``gateway=<gw>`` (``_all_`` for all). Only ``parse_gateways`` reads the answer; no setting
  is touched. This is the one request answered, with the gateway named (or all), as the
  applied state holds it, and its password from the host's secrets source.

So the switch learns gateways only from ``startgw``, which the gateway engine sends
(``reconciler.switch.gateways``); a restarted switch comes back without them and the engine,
on its reconnect, finds them missing and starts them again.

The password is in this answer only, and only for an authenticated request (the listener
refuses any other when xml_curl credentials are set; without credentials no password is
ever served). Every other value is an allow-listed shape, checked again here; a password
FreeSWITCH would interpret (``$``, braces, control characters) is refused by the secrets
source. Values are XML-escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from operator import attrgetter
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import quoteattr

from reconciler.core.model import CarrierSettings, Gateway
from specs_schema import shapes

CARRIERS_PROFILE = "carriers"
"""The SIP profile carrier gateways live on (``freeswitch_conf/sip_profiles/carriers.xml``)."""
ALL_GATEWAYS = "_all_"


@dataclass(frozen=True, slots=True)
class ServedGateway(CarrierSettings):
    """A gateway as the answer renders it (no password: that is looked up per answer).

    The snapshot stores it positionally (its settings in ``CarrierSettings``' order, then
    ``needs_password``): it iterates as that row and ``_make`` reads one back."""

    needs_password: bool

    def __iter__(self) -> Iterator[object]:
        return iter(_ROW(self))

    @classmethod
    def _make(cls, row: Iterable[Any]) -> ServedGateway:
        return cls(*row)

    @classmethod
    def of(cls, gateway: Gateway) -> ServedGateway:
        """The settings of the applied record, and whether it is served with a password."""
        settings = {name: getattr(gateway, name) for name in _SETTINGS}
        return cls(**settings, needs_password=gateway.credentials != "none")


_SETTINGS = tuple(f.name for f in fields(CarrierSettings))
_ROW = attrgetter(*(f.name for f in fields(ServedGateway)))


_CHECKS: tuple[tuple[str, str], ...] = (
    ("name", shapes.GATEWAY_PATTERN),
    ("proxy", shapes.HOST_PORT_PATTERN),
    ("registrar", shapes.HOST_PORT_PATTERN),
    ("realm", shapes.HOST_PATTERN),
    ("transport", r"^(?:udp|tcp|tls)$"),
)
_CODECS = re.compile(r"^(?:[A-Za-z0-9]{2,16}(?:,[A-Za-z0-9]{2,16}){0,15})?$")
_USER = re.compile(shapes.SIP_USER_PATTERN)


def serve_gateways(gateways: Iterable[Gateway]) -> tuple[Mapping[str, ServedGateway], list[str]]:
    """The servable gateways by name, and why any was left out (a shape that is not
    allowed: fail closed, as for tenants)."""
    served: dict[str, ServedGateway] = {}
    problems: list[str] = []
    for g in gateways:
        if not g.managed:
            continue
        bad = [f for f, pattern in _CHECKS if not re.fullmatch(pattern, getattr(g, f))]
        if g.username is not None and not _USER.fullmatch(g.username):
            bad.append("username")
        if not _CODECS.fullmatch(g.codecs):
            bad.append("codecs")
        if bad:
            problems.append(
                f"gateway {g.name!r}: {', '.join(bad)} not an allowed shape: not served"
            )
            continue
        served[g.name] = ServedGateway.of(g)
    return MappingProxyType(served), problems


def wanted_gateways(form: Mapping[str, str]) -> str | None:
    """The gateway a ``startgw`` fetch names (``_all_``: every one), else None (a request
    this module does not answer)."""
    if form.get("key_value") != "sofia.conf" or form.get("profile") != CARRIERS_PROFILE:
        return None
    if form.get("reconfig") != "true":
        return None
    return form.get("gateway") or None


PasswordOf = Callable[[str], str | None]


def render_gateways(gateways: Iterable[ServedGateway], password_of: PasswordOf) -> str | None:
    """``sofia.conf`` holding the carriers profile's ``gateways`` only; None when a
    gateway needs a password the host does not hold (it is then not answered at all, never
    started without one)."""
    rendered: list[str] = []
    for g in gateways:
        password = password_of(g.name) if g.needs_password else ""
        if password is None:
            return None
        rendered.append(_gateway_xml(g, password))
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<document type="freeswitch/xml">\n'
        '  <section name="configuration">\n'
        '    <configuration name="sofia.conf" description="carrier gateways">\n'
        "      <profiles>\n"
        f'        <profile name="{CARRIERS_PROFILE}">\n'
        "          <gateways>\n" + "".join(rendered) + "          </gateways>\n"
        "        </profile>\n"
        "      </profiles>\n"
        "    </configuration>\n"
        "  </section>\n"
        "</document>\n"
    )


def gateway_params(g: ServedGateway) -> list[tuple[str, str]]:
    """The ``<param>``s of one gateway, password aside (what drift is compared against)."""
    params = [
        ("proxy", g.proxy),
        ("register-proxy", g.registrar),
        ("realm", g.realm),
        ("from-domain", g.realm),
    ]
    if g.username is not None:
        params.append(("username", g.username))
    params += [
        ("register", "true" if g.register else "false"),
        ("register-transport", g.transport),
        ("expire-seconds", str(g.expire_seconds)),
        ("retry-seconds", str(g.retry_seconds)),
        ("caller-id-in-from", "true" if g.caller_id_in_from else "false"),
    ]
    if g.ping_seconds:
        params.append(("ping", str(g.ping_seconds)))
    return params


def _gateway_xml(g: ServedGateway, password: str) -> str:
    params = gateway_params(g)
    if g.needs_password:
        params.append(("password", password))
    lines = [f"            <gateway name={quoteattr(g.name)}>\n"]
    lines += [
        f"              <param name={quoteattr(k)} value={quoteattr(v)}/>\n" for k, v in params
    ]
    if g.codecs:
        lines.append(
            "              <variables>\n"
            '                <variable name="absolute_codec_string" '
            f'value={quoteattr(g.codecs)} direction="outbound"/>\n'
            "              </variables>\n"
        )
    lines.append("            </gateway>\n")
    return "".join(lines)

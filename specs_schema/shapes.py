"""The allow-listed shapes of every string a tenant file can send to FreeSWITCH.

A tenant file is hostile input. FreeSWITCH expands ``${...}`` (channel variables, API calls
such as ``${system(...)}``) in agent contacts, record templates and directory variables,
``$${...}`` in every XML document it fetches, and ``{var=value}`` prefixes in dial strings.
So nothing from a file reaches a switch as free text: each value matches one of the fixed
shapes below, and the few ``${...}`` the switch needs are built here, never copied.

The spec models validate with these shapes; the reconciler imports the same predicates to
check again when it renders XML and builds ESL commands (defence in depth). Everything here
is pure and uses the standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from types import MappingProxyType

# --- names and numbers ---------------------------------------------------------------

TENANT_ID_PATTERN = r"^[a-z][a-z0-9_]{1,30}$"
SLUG_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
DOMAIN_PATTERN = (
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]"
    r"(?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
DIGITS_PATTERN = r"^[0-9]{1,15}$"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
GATEWAY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
VOICEMAIL_OWN_CODE = "*97"
"""Dialled from an extension: its own voicemail box."""
VOICEMAIL_ANY_CODE = "*98"
"""Dialled from an extension: any box of the tenant, asked for, with that box's PIN."""
VOICEMAIL_CODES: Mapping[str, str] = MappingProxyType(
    {
        VOICEMAIL_OWN_CODE: "the voicemail code (own box)",
        VOICEMAIL_ANY_CODE: "the voicemail code (any box)",
    }
)
"""The fixed voicemail feature codes and what they are, for clash messages."""
VOICEMAIL_MESSAGE_SECONDS = range(30, 601, 30)
"""A box's allowed ``max_message_seconds`` (mod_voicemail limits length per profile: one
profile per value, see ``reconciler.core.voicemail``)."""
"""A carrier gateway of the platform's SIP profile (``sofia/gateway/<name>/...``)."""
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])"
)
HOST_PATTERN = rf"^{_HOST}$"
"""A host name, an IPv4 address or a bracketed IPv6 address: what a carrier's realm is."""
HOST_PORT_PATTERN = rf"^{_HOST}(?::[1-9][0-9]{{0,4}})?$"
"""``host`` or ``host:port`` (a gateway's proxy or registrar); no scheme, user or params."""
SIP_USER_PATTERN = r"^[A-Za-z0-9_.+-]{1,64}$"
"""A carrier account's user name: letters, digits, ``_ . + -`` (an E.164 number fits)."""
CODEC_PATTERN = r"^[A-Za-z0-9]{2,16}$"
"""A codec name as FreeSWITCH spells it in a codec list (PCMU, PCMA, G722, OPUS)."""
NODE_PATTERN = rf"^{_HOST}(?::[1-9][0-9]{{0,4}})?$"
"""A switch as the daemon's ``--freeswitch`` names it: its host, or ``host:port``."""
ROUTE_PREFIX_PATTERN = r"^\+[1-9][0-9]{0,14}$"
"""An E.164 prefix an outbound route matches (``+44``, ``+1876``)."""
ROUTE_MATCH_PATTERN = r"^(?:emergency|local|national|international|\+[1-9][0-9]{0,14})$"
"""What an outbound route matches: a number class or an E.164 prefix."""

# --- agent contacts ------------------------------------------------------------------

# (plain groups: the pattern also goes into the JSON Schema, where editors use ECMA regex)
GATEWAY_CONTACT_PATTERN = r"^sofia/gateway/([a-z0-9][a-z0-9_.-]{0,62})/(\+[1-9][0-9]{6,14})$"
"""The only contact a tenant file may write: an E.164 number through a declared gateway.
An agent on one of the tenant's own extensions gives ``extension:`` instead, and the
reconciler builds ``user/<ext>@<domain>`` itself."""

_GATEWAY_CONTACT = re.compile(GATEWAY_CONTACT_PATTERN)
_USER_CONTACT = re.compile(r"^user/(?P<number>[0-9]{1,15})@(?P<domain>[^@]+)$")
_DOMAIN = re.compile(DOMAIN_PATTERN)


def gateway_contact_parts(text: str) -> tuple[str, str] | None:
    """``(gateway, number)`` of a ``sofia/gateway/<gateway>/<E.164>`` contact, else None."""
    match = _GATEWAY_CONTACT.fullmatch(text)
    return (match[1], match[2]) if match else None


def is_agent_contact(text: str, domain: str, gateways: Collection[str]) -> bool:
    """True only for ``user/<digits>@<domain>`` (the tenant's own domain, exactly) or
    ``sofia/gateway/<gw>/<E.164>`` with ``gw`` in ``gateways``.

    mod_callcenter expands variables in a contact on every offered call, so anything else
    (``${...}``, ``{...}`` prefixes, ``loopback/``, another tenant's domain) must never be
    sent as one.
    """
    user = _USER_CONTACT.fullmatch(text)
    if user is not None:
        return _DOMAIN.fullmatch(domain) is not None and user["domain"] == domain
    parts = gateway_contact_parts(text)
    return parts is not None and parts[0] in gateways


# --- sounds --------------------------------------------------------------------------

SOUNDS_ROOT = "/var/lib/pbx/sounds"
"""Where each tenant's own sound files live on a switch: ``<root>/<tenant id>/...``."""
TENANT_SOUND_PREFIX = "tenant:"

_SOUND_FILE = r"(?:[a-z0-9_-]+/){0,15}[a-z0-9_-]+\.(?:wav|mp3|ogg)"
SOUND_PATTERN = (
    r"^(?:local_stream://[a-z][a-z0-9_-]{0,62}"
    r"|silence_stream://[0-9]{1,9}"
    rf"|(?:{TENANT_SOUND_PREFIX})?{_SOUND_FILE})$"
)
"""``local_stream://<slug>``, ``silence_stream://<ms>``, a sound shipped with FreeSWITCH as a
relative path (``ivr/ivr-please_hold.wav``), or ``tenant:<relative path>`` for a file in
the tenant's own storage. Segments are ``[a-z0-9_-]+``: no ``..``, no ``$``, no braces."""

SOUND_MAX_LENGTH = 255
_SOUND = re.compile(SOUND_PATTERN)


def is_sound(text: str) -> bool:
    """True when ``text`` is one of the allowed sound shapes (see ``SOUND_PATTERN``)."""
    return len(text) <= SOUND_MAX_LENGTH and _SOUND.fullmatch(text) is not None


def sound_path(value: str, tenant_id: str, root: str = SOUNDS_ROOT) -> str:
    """The string FreeSWITCH gets for a sound field: ``tenant:x.wav`` becomes
    ``<root>/<tenant id>/x.wav`` (``root`` defaults to ``SOUNDS_ROOT``, a setting of the
    daemon); the other shapes are sent unchanged.

    Raises ValueError for anything that is not an allowed shape, so a caller can never
    render a value that skipped validation.
    """
    if not is_sound(value):
        raise ValueError(f"not an allowed sound: {value!r}")
    if not is_tenant_id(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    if value.startswith(TENANT_SOUND_PREFIX):
        _check_root(root)
        return f"{root}/{tenant_id}/{value.removeprefix(TENANT_SOUND_PREFIX)}"
    return value


# --- recordings ----------------------------------------------------------------------

RECORDINGS_ROOT = "/var/lib/pbx/recordings"
"""Where each tenant's queue recordings go on a switch: ``<root>/<tenant id>/...``."""

RECORD_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "{uuid}": "${uuid}",
        "{date}": "${strftime(%Y-%m-%d)}",
        "{time}": "${strftime(%H%M%S)}",
    }
)
"""The only channel variables a record template can produce; ``{queue}`` becomes the
literal queue name. No ``{agent}``: FreeSWITCH 1.10.12's mod_callcenter expands the template
before it sets ``cc_agent`` on the caller's channel (who answered is learnt from its
``bridge-agent-start`` event instead, ``daemon/audio.py``). These fixed strings are the only source of ``${`` in a rendered path.
No caller number: a caller chooses it (a SIP From header), and it would become part of a
file path on the switch (``../``)."""

_PLACEHOLDER = r"\{(?:uuid|date|time|queue)\}"
_RECORD_CHAR = rf"(?:[A-Za-z0-9_.-]|{_PLACEHOLDER})"
# a segment holds at least one character that is not a dot: never "." or ".."
_RECORD_SEGMENT = rf"\.*(?:[A-Za-z0-9_-]|{_PLACEHOLDER}){_RECORD_CHAR}*"
RECORD_TEMPLATE_PATTERN = rf"^(?:{_RECORD_SEGMENT}/){{0,15}}{_RECORD_SEGMENT}\.(?:wav|mp3)$"
"""A relative path in the tenant's recordings storage, e.g. ``support/{date}/{uuid}.wav``:
segments of ``[A-Za-z0-9_.-]`` and the placeholders ``{uuid}``, ``{date}``, ``{time}``,
``{queue}``; ending ``.wav`` or ``.mp3``."""

RECORD_TEMPLATE_MAX_LENGTH = 255
_RECORD_TEMPLATE = re.compile(RECORD_TEMPLATE_PATTERN)
_PLACEHOLDER_RE = re.compile(_PLACEHOLDER)
_QUEUE_FS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}(?:@[A-Za-z0-9.-]{1,253})?$")


def is_record_template(text: str) -> bool:
    """True when ``text`` is an allowed record template (see ``RECORD_TEMPLATE_PATTERN``)."""
    return len(text) <= RECORD_TEMPLATE_MAX_LENGTH and _RECORD_TEMPLATE.fullmatch(text) is not None


def record_template_path(
    value: str, tenant_id: str, queue_fs_name: str, root: str = RECORDINGS_ROOT
) -> str:
    """The ``record-template`` FreeSWITCH gets: ``<root>/<tenant id>/<value>`` with
    the placeholders expanded to fixed channel variables (``{queue}`` to ``queue_fs_name``).

    Raises ValueError for a value, tenant id or queue name outside its shape.
    """
    if not is_record_template(value):
        raise ValueError(f"not an allowed record template: {value!r}")
    if not is_tenant_id(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    if _QUEUE_FS_NAME.fullmatch(queue_fs_name) is None or ".." in queue_fs_name:
        raise ValueError(f"not a queue name: {queue_fs_name!r}")

    def expand(match: re.Match[str]) -> str:
        return RECORD_PLACEHOLDERS.get(match[0], queue_fs_name)  # else it is {queue}

    _check_root(root)
    return f"{root}/{tenant_id}/{_PLACEHOLDER_RE.sub(expand, value)}"


_AUDIO_ROOT = re.compile(r"^(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+$")


def _check_root(root: str) -> None:
    """A root is a plain absolute path (checked again here: it is rendered into XML)."""
    if _AUDIO_ROOT.fullmatch(root) is None or "/../" in f"{root}/":
        raise ValueError(f"not an audio root: {root!r}")


# --- generic predicates --------------------------------------------------------------

_TENANT_ID = re.compile(TENANT_ID_PATTERN)
_UNSAFE_FS = frozenset("${}|'\"`\\")


def is_tenant_id(text: str) -> bool:
    """True for a tenant id (it names directories and a PostgreSQL schema)."""
    return _TENANT_ID.fullmatch(text) is not None


def is_safe_fs_value(text: str) -> bool:
    """True when ``text`` can be sent to FreeSWITCH as one value without being interpreted:
    not empty, no ``$``/``{``/``}`` (variable expansion), no blanks, quotes, backslash
    (the ESL argument tokenizer), no ``|`` (``callcenter_config`` listings), no control or
    invisible formatting characters."""
    return bool(text) and not any(
        ch in _UNSAFE_FS or ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in text
    )


# --- display names -------------------------------------------------------------------

DISPLAY_NAME_MAX_LENGTH = 120
FS_EXPANSION_CHARACTERS = "${}"
"""Never allowed in a display name FreeSWITCH receives (caller id and extension names):
it expands ``${...}`` and ``$${...}`` in directory variables."""

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
_CONTROL_NAMES = {
    "\t": "CHARACTER TABULATION",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x00": "NULL",
    "\x07": "BELL",
    "\x08": "BACKSPACE",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
}


def character_label(ch: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: how error messages name an invisible character."""
    name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "")
    if not name:
        name = "CONTROL CHARACTER" if unicodedata.category(ch) == "Cc" else "UNNAMED CHARACTER"
    return f"U+{ord(ch):04X} {name}"


def display_name_problem(text: str, *, reaches_freeswitch: bool = False) -> str | None:
    """Why ``text`` cannot be a display name, or None when it can.

    Names may be any printable Unicode, but not characters that make a name look like
    something else (bidirectional overrides, zero-width and other invisible formatting
    characters), nor control characters or line separators (they break log lines, CSV and
    SIP headers). Names that ``reaches_freeswitch`` also exclude ``$``, ``{`` and ``}``.
    """
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _BIDI:
            return (
                f"{character_label(ch)} is not allowed: bidirectional formatting characters "
                "make a name display differently from what it is"
            )
        if ch in _ZERO_WIDTH or category == "Cf":
            return (
                f"{character_label(ch)} is not allowed: invisible characters make names that "
                "look identical but differ"
            )
        if category in ("Cc", "Cs", "Zl", "Zp"):
            return (
                f"{character_label(ch)} is not allowed: display names must not contain "
                "control characters such as newlines or tabs"
            )
        if reaches_freeswitch and ch in FS_EXPANSION_CHARACTERS:
            return (
                f"'{ch}' is not allowed in a name FreeSWITCH receives: it expands ${{...}} "
                "and $${...} in directory variables (write it without $, { and })"
            )
    if text != text.strip():
        return "must not start or end with blanks"
    return None


def is_display_name(text: str, *, reaches_freeswitch: bool = False) -> bool:
    """True when ``text`` is an acceptable display name (see ``display_name_problem``);
    with ``reaches_freeswitch``, also safe in FreeSWITCH directory variables."""
    return (
        0 < len(text) <= DISPLAY_NAME_MAX_LENGTH
        and display_name_problem(text, reaches_freeswitch=reaches_freeswitch) is None
    )

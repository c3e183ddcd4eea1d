"""Voicemail as the switch sees it: the rules shared by the served XML, the node config and
the portal, each in one place.

* **Profiles.** mod_voicemail limits a message's length per profile (``max-record-len``),
  never per box, so ``voicemail.conf`` declares one profile per allowed length (the spec
  allows multiples of 30 s up to 600 s) and a box's messages are taken by the profile of its
  length. Every profile names the same database (``dbname``), so ``vm_list``, the lamps and
  the portal see one store whichever profile took a message; ``default`` is the one checks
  and the API use.
* **Storage.** A box lives in ``<voicemail root>/<tenant id>/<extension>/``: keyed by the
  tenant id, never the domain, so two tenants cannot collide and a domain change keeps the
  messages. The root is the node's (``pbx node-config --voicemail-dir``), reaching the
  directory as the global ``$${pbx_voicemail_dir}`` its ``vars.xml`` sets; the daemon's
  ``PBX_VOICEMAIL_DIR`` (``core.audio_roots``, same default) must name the same place.
"""

from __future__ import annotations

from specs_schema.shapes import (
    VOICEMAIL_ANY_CODE,
    VOICEMAIL_MESSAGE_SECONDS,
    VOICEMAIL_OWN_CODE,
)

VOICEMAIL_DB = "voicemail_default"
"""The one database every profile shares (mod_voicemail's default for ``default``)."""
CHECK_PROFILE = "default"
"""The profile checks (``*97``/``*98``) and the ``vm_*`` API name."""
ROOT_VARIABLE = "pbx_voicemail_dir"
"""The FreeSWITCH global holding the node's voicemail root."""

OWN = "own"
ANY = "any"
VOICEMAIL_ROUTES: tuple[tuple[str, str], ...] = (
    (VOICEMAIL_OWN_CODE, OWN),
    (VOICEMAIL_ANY_CODE, ANY),
)
"""``(feature code, which box)`` of the voicemail checks every tenant's dial plan has."""


def voicemail_profile(max_message_seconds: int) -> str:
    """The profile taking messages of at most ``max_message_seconds`` (rounded up to the
    ladder, which the spec already enforces)."""
    lengths = VOICEMAIL_MESSAGE_SECONDS
    seconds = min(max(max_message_seconds, lengths[0]), lengths[-1])
    return f"len{-(-seconds // lengths.step) * lengths.step}"


def voicemail_profiles() -> tuple[tuple[str, int], ...]:
    """``(profile name, max-record-len)`` of every profile ``voicemail.conf`` declares."""
    lengths = tuple(VOICEMAIL_MESSAGE_SECONDS)
    return ((CHECK_PROFILE, lengths[-1]), *((f"len{n}", n) for n in lengths))


def tenant_storage(tenant_id: str) -> str:
    """A tenant's ``vm-domain-storage-dir`` as the directory serves it (FreeSWITCH expands
    the global when it parses the answer); mod_voicemail appends ``/<extension>``."""
    return f"$${{{ROOT_VARIABLE}}}/{tenant_id}"

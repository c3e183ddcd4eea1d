"""Where a switch keeps each tenant's audio: one directory per kind, ``<root>/<tenant id>/``.

Settings of the daemon (``PBX_RECORDINGS_DIR``, ``PBX_SOUNDS_DIR``, ``PBX_VOICEMAIL_DIR``),
not constants, so tests and multi-host shapes can move them; the defaults are the seed's
one-host layout. A root reaches FreeSWITCH inside paths (a queue's sounds and record
template, the dialplan's recordings), so it is held to a plain absolute path: no ``$``,
no braces, no ``..``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.core.errors import SettingsError
from specs_schema import shapes

VOICEMAIL_ROOT = "/var/lib/pbx/voicemail"
"""The one default voicemail root: the daemon's ``PBX_VOICEMAIL_DIR`` and the node's
``pbx node-config --voicemail-dir`` (the switch's ``$${pbx_voicemail_dir}``)."""
_ROOT = re.compile(r"^(?:/[A-Za-z0-9_.-]+)+$")


def checked_root(setting: str, value: str) -> str:
    """``value`` without a trailing slash, or ``SettingsError`` naming ``setting``."""
    root = value.rstrip("/") if value != "/" else value
    if _ROOT.fullmatch(root) is None or any(part in (".", "..") for part in root.split("/")):
        raise SettingsError(
            f"{setting} must be an absolute path of letters, digits and _ . - (got {value!r})"
        )
    return root


@dataclass(frozen=True)
class AudioRoots:
    recordings: str = shapes.RECORDINGS_ROOT
    sounds: str = shapes.SOUNDS_ROOT
    voicemail: str = VOICEMAIL_ROOT

    @classmethod
    def checked(cls, recordings: str, sounds: str, voicemail: str) -> AudioRoots:
        return cls(
            recordings=checked_root("recordings_dir", recordings),
            sounds=checked_root("sounds_dir", sounds),
            voicemail=checked_root("voicemail_dir", voicemail),
        )


DEFAULT_ROOTS = AudioRoots()

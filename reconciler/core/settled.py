"""Settled tenants: in sync, provably, without parsing their spec or reading their records.

When a full pass finds a tenant in sync it can record two digests: its inputs (every byte
its validation and desired records come from, ``specs_schema.inputs``, salted with the
code's own digest) and the fingerprint of its stored state read before that state
(``reconciler.store.fingerprints``). Later, a tenant whose inputs digest and current
fingerprint both equal the recorded ones is in sync as well: the same inputs through the
same code give the same desired records, and the same fingerprint means the same stored
records. ``pbx plan`` then neither parses its file nor reads its records; a person's hand
edit in ``psql``, a changed file, sound, gateway list or reconciler version each break one
of the digests, and the tenant is parsed and diffed as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Settled:
    """What a pass recorded of one tenant it found in sync."""

    inputs: str
    fingerprint: str
    view: Mapping[str, Any] = field(compare=False)
    """The file's cross-tenant view (id, domain, DIDs, contacts): other files' rules read it."""


def fingerprint_digest(fingerprint: object) -> str:
    """A store fingerprint as text that outlives the process (its ``repr``: tuples of the
    registry record and integers, stable across runs)."""
    return hashlib.sha256(repr(fingerprint).encode()).hexdigest()

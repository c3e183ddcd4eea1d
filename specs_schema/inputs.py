"""A tenant's inputs digest: everything its validation and desired records are made of.

``pbx plan`` with nothing to do must not parse 1,000 YAML files to find out. A tenant whose
inputs digest equals the one recorded when it was last found in sync (and whose stored
state is unchanged since, see ``reconciler.core.settled``) is in sync without a parse. So
the digest covers all a tenant's outcome depends on besides other tenants' files (those are
checked separately, from their cross-tenant views): the file's name and bytes, the gateway
names its agent contacts are checked against, its sounds folder (names and each file's
identity: ``stat`` fields that any rewrite changes, ``ctime`` included, which no tool sets
back) and ``salt``, the digest of the code that validates and converts it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

Gateways = frozenset[str] | None
"""Gateway names agent contacts may use; None when the platform file is invalid."""


def sounds_listing(directory: Path | str) -> str:
    """Every entry below ``directory`` with its identity, sorted ('' when there is none)."""
    if not os.path.isdir(directory) or os.path.islink(directory):
        return ""
    entries: list[str] = []
    for base, dirs, names in os.walk(directory, followlinks=False):
        for name in sorted(dirs + names):
            path = os.path.join(base, name)
            try:
                st = os.lstat(path)
            except OSError:
                entries.append(f"{path}:gone")
                continue
            entries.append(
                f"{os.path.relpath(path, directory)}:{st.st_mode}:{st.st_ino}:{st.st_size}:"
                f"{st.st_mtime_ns}:{st.st_ctime_ns}"
            )
    return "\n".join(sorted(entries))


def inputs_digest(
    salt: str,
    file_name: str,
    content_sha: str,
    gateways: Gateways,
    sounds: str,
    caller_ids: frozenset[str] | None = frozenset(),
) -> str:
    """The digest of one tenant file's inputs (``content_sha``: sha256 of its bytes;
    ``caller_ids``: the numbers ``_platform.yaml`` lets the tenant present, None when that
    list cannot be trusted)."""
    listed = "invalid" if gateways is None else ",".join(sorted(gateways))
    allowed = "invalid" if caller_ids is None else ",".join(sorted(caller_ids))
    parts = (salt, file_name, content_sha, listed, sounds, allowed)
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()

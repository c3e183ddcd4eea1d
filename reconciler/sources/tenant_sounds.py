"""Copying each tenant's sounds from git into the switch's sounds root.

Git (``<tenants dir>/<id>/sounds/``, see ``specs_schema.sounds``) is the desired side; the
tenant's directory under the sounds root (``<sounds root>/<id>/``) is what FreeSWITCH
reads. Each pass makes the second equal to the first: a new or changed file is written to a
temporary name beside its target and renamed over it (a call playing the old file keeps
its descriptor; a new call opens the whole new file, never half of it), a file git removed
is removed, and a file changed on disk behind our back is reported as drift and rewritten.

Only tenants whose spec is valid are synced (a frozen tenant keeps what it had), and only
valid files are copied (the loader already refused the tenant otherwise). Nothing outside
``<sounds root>/<id>/`` is touched, and a symbolic link on either side is never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.logs import event
from specs_schema.sounds import folder_problems, sound_files, tenant_sounds_dir

log = logging.getLogger(__name__)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SoundSync:
    """What one tenant's sync did, or found it could not do."""

    tenant: str
    copied: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    drifted: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "copied": list(self.copied),
            "removed": list(self.removed),
            "drift_repaired": list(self.drifted),
            "error": self.error,
        }


@dataclass(frozen=True)
class SoundDiff:
    """The pure decision: which relative paths to write and which to remove."""

    write: tuple[str, ...]
    remove: tuple[str, ...]
    drifted: tuple[str, ...] = field(default=())


def diff_sounds(
    desired: Mapping[str, str], actual: Mapping[str, str], copied: Mapping[str, str]
) -> SoundDiff:
    """``desired`` and ``actual`` map relative paths to content digests; ``copied`` holds
    what this daemon last wrote. A path on disk whose digest is neither git's nor what we
    wrote is drift (someone changed it); both are rewritten, drift is named."""
    write = sorted(rel for rel, digest in desired.items() if actual.get(rel) != digest)
    drifted = sorted(
        rel
        for rel in write
        if rel in actual and rel in copied and copied[rel] == desired[rel]
        # git did not change it since we copied it, yet the disk differs: drift
    )
    remove = sorted(rel for rel in actual if rel not in desired)
    return SoundDiff(tuple(write), tuple(remove), tuple(drifted))


class SoundSyncer:
    """Keeps ``<root>/<tenant>/`` equal to each valid tenant's sounds in git."""

    def __init__(self, tenants_dir: Path, root: Path) -> None:
        self.tenants_dir = tenants_dir
        self.root = root
        self._copied: dict[str, dict[str, str]] = {}
        self.last: dict[str, SoundSync] = {}

    def sync(self, tenant_ids: Iterable[str]) -> dict[str, SoundSync]:
        """Sync each tenant; one tenant's failure (a full disk, a directory that is not
        writable) is its own report, never another's."""
        reports: dict[str, SoundSync] = {}
        for tenant in sorted(tenant_ids):
            try:
                reports[tenant] = self._sync_one(tenant)
            except OSError as exc:
                reason = f"{exc.strerror or exc} ({self.root / tenant})"
                reports[tenant] = SoundSync(tenant, error=f"sounds not copied: {reason}")
                event(log, "tenant sounds not copied", logging.WARNING, tenant=tenant, error=reason)
        self.last = reports
        return reports

    def _sync_one(self, tenant: str) -> SoundSync:
        source = tenant_sounds_dir(self.tenants_dir, tenant)
        invalid = folder_problems(source)
        desired = {rel: _digest(source / rel) for rel in sound_files(source) if rel not in invalid}
        target = self.root / tenant
        if not desired and not target.is_dir():
            return SoundSync(tenant)
        actual = _actual(target)
        copied = self._copied.setdefault(tenant, {})
        diff = diff_sounds(desired, actual, copied)
        for rel in diff.write:
            _write_atomically(source / rel, target, rel)
            copied[rel] = desired[rel]
        for rel in diff.remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target / rel)
            copied.pop(rel, None)
        if diff.write or diff.remove:
            event(
                log,
                "tenant sounds synced",
                tenant=tenant,
                copied=len(diff.write),
                removed=len(diff.remove),
                drift_repaired=len(diff.drifted),
            )
        return SoundSync(tenant, diff.write, diff.remove, diff.drifted)


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _actual(target: Path) -> dict[str, str]:
    """Digests of what is on disk under the tenant's directory; a link or anything that
    is not a regular file is listed with an empty digest, so it is replaced or removed."""
    found: dict[str, str] = {}
    for rel in sound_files(target):
        path = target / rel
        if path.is_symlink() or not path.is_file():
            found[rel] = ""
        elif not rel.endswith(".tmp"):
            found[rel] = _digest(path)
    return found


def _write_atomically(source: Path, target: Path, rel: str) -> None:
    """Copy into a temporary file in the destination directory, fsync, rename over."""
    destination = target / rel
    parent = destination.parent
    if parent.is_symlink():
        parent.unlink()
    parent.mkdir(parents=True, exist_ok=True)
    for directory in (parent, *parent.parents):
        if directory == target.parent:
            break
        # the switch runs as another user and must read them; sounds are not secret
        os.chmod(directory, 0o755)  # noqa: S103
    fd, temporary = tempfile.mkstemp(dir=parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise

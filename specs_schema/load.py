"""Spec files -> validated models, or errors a person can act on (``file:line:col: field: msg``).

Loading is pure with respect to everything but reading the files: no database, no switch.
Every error of every file is collected in one run. A tenant whose file has any error is
listed in ``SpecSet.invalid`` so that callers leave its applied state untouched (it is *not*
"removed from git"). That holds for anything named ``*.yaml`` in the directory, however
broken: a directory, a FIFO, a dangling link, a file over the size limit or one that was
being written while we read it (the last kind is ``transient``: retry it soon).
"""

from __future__ import annotations

import datetime
import difflib
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from specs_schema import models, shapes
from specs_schema.inputs import Gateways, inputs_digest, sounds_listing
from specs_schema.models import PLATFORM_FILE_STEM, PlatformSpec, TenantSpec
from specs_schema.outbound_rules import outbound_platform_findings
from specs_schema.positions import (
    MAX_FILE_BYTES,
    Loc,
    NodePositions,
    YamlProblem,
    format_loc,
    parse_with_positions,
    shown,
)
from specs_schema.rules import (
    cross_tenant_findings,
    gateway_findings,
    platform_findings,
    tenant_findings,
)
from specs_schema.sounds import (
    SOUNDS_SUBDIR,
    sound_findings,
    sound_references,
    tenant_sounds_dir,
)

SPEC_SUFFIXES = (".yaml", ".yml")
"""In any case: ``acme.YAML`` is the tenant ``acme`` (skipping it would orphan the tenant)."""


def is_spec_name(path: Path) -> bool:
    """A name the loader reads: ``*.yaml``/``*.yml`` in any letter case, not hidden."""
    return path.suffix.lower() in SPEC_SUFFIXES and not path.name.startswith(".")


@dataclass(frozen=True, slots=True, order=True)
class SpecError:
    """One problem at one place. Sorts by file, line, column."""

    file: str
    line: int
    col: int
    field: str
    message: str
    transient: bool = False
    """The file changed while it was read: nobody's mistake, read it again soon."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "field": self.field,
            "message": self.message,
        }
        if self.transient:
            out["transient"] = True
        return out


@dataclass(frozen=True, slots=True)
class LoadedTenant:
    """A valid tenant spec with where it came from and a digest of its meaning."""

    spec: TenantSpec
    file: str
    digest: str
    fingerprint: str = ""
    """Size, mtime and content digest of the bytes read: equal in two reads some seconds
    apart means nobody was writing the file meanwhile (the shrink guard waits for that)."""
    inputs: str = ""
    """``specs_schema.inputs.inputs_digest`` of the file (empty without a loader salt)."""
    view: Mapping[str, Any] | None = field(default=None, compare=False)
    """What cross-tenant rules read of it (recorded so a later run can skip its parse)."""


@dataclass(frozen=True)
class SpecSet:
    """The outcome of loading a tree of spec files."""

    tenants: Mapping[str, LoadedTenant]
    invalid: Mapping[str, tuple[SpecError, ...]]
    platform: PlatformSpec | None
    errors: tuple[SpecError, ...]
    files: tuple[str, ...] = field(default=())
    unstable: frozenset[str] = field(default=frozenset())
    """Tenant ids (file stems) frozen only because their file changed while being read:
    a caller retries them at the next debounce instead of reporting a person's mistake."""
    settled: frozenset[str] = field(default=frozenset())
    """Tenant ids whose files were not parsed (``SpecLoader.load``'s ``settled``): valid,
    in neither ``tenants`` nor ``invalid``."""

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Parsed:
    file: str
    stem: str
    positions: NodePositions | None
    spec: TenantSpec | None
    claimed_ids: set[str]
    errors: list[SpecError]
    data: dict[str, Any] | None = None
    digest: str = ""
    fingerprint: str = ""
    sound_refs: tuple[tuple[Loc, str], ...] = ()
    content: str = ""  # sha256 of the bytes
    inputs: str = ""


@dataclass(frozen=True, slots=True)
class _Cached:
    stamp: tuple[int, ...]
    content: str  # sha256 of the bytes
    item: _Parsed


@dataclass(frozen=True, slots=True)
class _Checked:
    """A file's findings that need its directory, and its inputs digest, for ``key``."""

    key: tuple[object, ...]
    findings: tuple[SpecError, ...]
    inputs: str


def find_spec_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (non-recursive) into their ``*.yaml``/``*.yml`` entries, sorted.

    Every such name is listed whatever it is (directory, FIFO, dangling link): skipping one
    would make its tenant look removed from git, and the daemon would orphan it.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            # by name (what comparing these paths, one directory's, amounts to; 4x faster)
            found += sorted((p for p in path.iterdir() if is_spec_name(p)), key=str)
        else:
            found.append(path)
    return found


def load_specs(paths: Sequence[Path]) -> SpecSet:
    """Load, validate and cross-check every spec file under ``paths``."""
    return SpecLoader().load(paths)


@dataclass
class _Platform:
    """A loaded platform file. ``gateways`` stays usable when only other parts of the file
    are wrong (a typo in an admin's name must not freeze every tenant with a gateway
    contact); it is None when the gateway list itself cannot be trusted."""

    spec: PlatformSpec | None
    errors: list[SpecError]
    gateways: Gateways
    caller_ids: Mapping[str, frozenset[str]] | None = None
    """Numbers each tenant may present besides its DIDs; None when they cannot be trusted."""

    def caller_ids_of(self, tenant_id: object) -> frozenset[str] | None:
        if self.caller_ids is None:
            return None
        return self.caller_ids.get(str(tenant_id), frozenset())


class SpecLoader:
    """Loads spec trees repeatedly, re-parsing only files that changed.

    The daemon keeps one loader: after an edit of one tenant file among a thousand, a pass
    re-validates that file only; cross-tenant rules (cheap, over raw data) run every time.
    A file is taken as unchanged when its inode, size, mtime and ctime are; a pass with
    ``reread=True`` (the daemon's full passes) reads every file again and reuses a parse
    only when the content digest matches, so even an edit that kept all of those is seen.
    """

    def __init__(self, *, relative_to: Path | None = None, salt: str | None = None) -> None:
        self._cache: dict[str, _Cached] = {}
        self._checked: dict[str, _Checked] = {}
        self.relative_to = relative_to
        """Show file names relative to this directory (the daemon's tenants directory): the
        errors reach the portal and the database, which must never learn the host's paths."""
        self.salt = salt
        """The code's digest: with one, valid tenants carry their ``inputs`` digest."""

    def load(
        self,
        paths: Sequence[Path],
        *,
        reread: bool = False,
        settled: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SpecSet:
        """``settled``: ``{file: cross-tenant view}`` of files known valid (their inputs
        digest vouches for it) that are not parsed; one another file's outcome would
        involve (a cross-tenant finding, a claim of its id) is parsed after all."""
        # Parsing allocates millions of small objects that all stay alive: callers in the
        # reconciler pause the cyclic GC around this (``reconciler.core.gcpause``).
        loaded = self._load(paths, reread, dict(settled or {}))
        return loaded if self.relative_to is None else relative_spec_set(loaded, self.relative_to)

    def scan(self, paths: Sequence[Path]) -> dict[str, tuple[str, str]]:
        """``{file: (stem, inputs digest)}`` of every readable tenant file, without parsing
        (a loader with a salt only; unreadable files are left to ``load``)."""
        assert self.salt is not None
        files = find_spec_files(paths)
        platforms = _Platforms(files)
        out: dict[str, tuple[str, str]] = {}
        for path in files:
            if path.stem == PLATFORM_FILE_STEM:
                continue
            st = _stat_spec_file(path)
            data = st if isinstance(st, SpecError) else _read_stable(path, st)
            if not isinstance(data, SpecError):
                content = hashlib.sha256(data).hexdigest()
                out[str(path)] = (path.stem, self._inputs(path, content, platforms))
        return out

    def _inputs(self, path: Path, content: str, platforms: _Platforms) -> str:
        assert self.salt is not None
        sounds = sounds_listing(tenant_sounds_dir(path.parent, path.stem))
        own = platforms.platform_for(path)[0]
        caller_ids = own.caller_ids_of(path.stem)
        return inputs_digest(self.salt, path.name, content, own.gateways, sounds, caller_ids)

    def _load(
        self, paths: Sequence[Path], reread: bool, settled: dict[str, Mapping[str, Any]]
    ) -> SpecSet:
        files = find_spec_files(paths)
        stems = [p.stem for p in files]
        for name in list(settled):  # twins (acme.yaml, acme.yml) are decided by a parse
            if stems.count(Path(name).stem) != 1:
                del settled[name]
        platforms = _Platforms(files)
        parsed: list[tuple[Path, _Parsed]] = [
            (path, self._parse_checked(path, reread, platforms))
            for path in files
            if path.stem != PLATFORM_FILE_STEM and str(path) not in settled
        ]
        live = {str(path) for path in files}
        for stale in set(self._cache) - live:
            del self._cache[stale]
        for stale in set(self._checked) - live:
            del self._checked[stale]
        while involved := _involved(parsed, settled):
            for name in involved:
                del settled[name]
                parsed.append((Path(name), self._parse_checked(Path(name), reread, platforms)))
        order = {str(path): index for index, path in enumerate(files)}
        parsed.sort(key=lambda pair: order[str(pair[0])])
        platform = platforms.platform
        result = _assemble(
            [item for _, item in parsed],
            platform.spec if platform is not None else None,
            [e for p in platforms.loaded.values() for e in p.errors],
            files,
            settled,
        )
        return replace(result, settled=frozenset(Path(name).stem for name in settled))

    def _parse_checked(self, path: Path, reread: bool, platforms: _Platforms) -> _Parsed:
        """One tenant file parsed, with the findings that need its directory."""
        item = self._parse_cached(path, reread)
        if item.data is not None and item.positions is not None:
            own, where = platforms.platform_for(path)
            caller_ids = own.caller_ids_of(item.data.get("id"))
            # ``tenant_sounds_dir(path.parent, path.stem)`` as a string: per file per pass
            directory = os.path.join(os.path.dirname(item.file), item.stem, SOUNDS_SUBDIR)
            sounds = sounds_listing(directory)
            # the findings are a function of these (the parse is one of the content): an
            # unchanged file among a thousand is not checked again on every pass
            key = (item.content, where, own.gateways, caller_ids, sounds)
            checked = self._checked.get(item.file)
            if checked is None or checked.key != key:
                found = [
                    _finding_error(item.file, item.positions, loc, msg)
                    for loc, msg in [
                        *gateway_findings(item.data, own.gateways, where),
                        *outbound_platform_findings(item.data, own.gateways, caller_ids, where),
                        *sound_findings(item.sound_refs, Path(directory)),
                    ]
                ]
                inputs = ""
                if self.salt is not None and not item.errors and not found:
                    inputs = inputs_digest(
                        self.salt, path.name, item.content, own.gateways, sounds, caller_ids
                    )
                checked = self._checked[item.file] = _Checked(key, tuple(found), inputs)
            item.errors += checked.findings
            item.inputs = checked.inputs
        return item

    def _parse_cached(self, path: Path, reread: bool) -> _Parsed:
        display = str(path)
        st = _stat_spec_file(path)
        if isinstance(st, SpecError):
            self._cache.pop(display, None)
            return _broken(display, path.stem, st)
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._cache.get(display)
        if cached is not None and not reread and cached.stamp == stamp:
            item = cached.item
        else:
            data = _read_stable(path, st)
            if isinstance(data, SpecError):
                self._cache.pop(display, None)
                return _broken(display, path.stem, data)
            content = hashlib.sha256(data).hexdigest()
            if cached is not None and cached.content == content:
                item = cached.item
            else:
                text = _decode(data, display)
                if isinstance(text, SpecError):
                    item = _broken(display, path.stem, text)
                else:
                    item = _load_tenant(text, display, path.stem)
            self._cache[display] = _Cached(stamp, content, item)
        # a per-run copy: cross-tenant findings are added to it, never to the cached item
        content = self._cache[display].content
        return replace(
            item,
            errors=list(item.errors),
            claimed_ids=set(item.claimed_ids),
            fingerprint=f"{st.st_size}:{st.st_mtime_ns}:{content}",
            content=content,
        )


class _Platforms:
    """The platform files among ``files``, and which one a tenant file's gateways come from."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.loaded: dict[Path, _Platform] = {}
        self.platform: _Platform | None = None
        for path in files:
            if path.stem == PLATFORM_FILE_STEM:
                self.platform = self.loaded[path.parent] = _load_platform_file(path)
        self._for_directory: dict[str, tuple[_Platform, str]] = {}

    def platform_for(self, path: Path) -> tuple[_Platform, str]:
        """The platform of a tenant file: the loaded one (its own directory's first), else
        the ``_platform.yaml`` beside it, else none (no gateway declared). Decided once per
        directory (asked for every file of every pass)."""
        directory = os.path.dirname(path)
        known = self._for_directory.get(directory)
        if known is None:
            known = self._for_directory[directory] = self._decide(Path(directory))
        return known

    def _decide(self, parent: Path) -> tuple[_Platform, str]:
        if self.platform is not None:
            return self.loaded.get(parent, self.platform), "_platform.yaml"
        return _platform_beside(parent), f"{parent / PLATFORM_FILE_STEM}.yaml"


def _involved(
    parsed: list[tuple[Path, _Parsed]], settled: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Settled files whose outcome a parsed one may change: named by a cross-tenant
    finding, or whose tenant id another file claims."""
    if not settled:
        return []
    raw: dict[str, Mapping[str, Any]] = {
        item.file: item.data for _, item in parsed if item.data is not None
    }
    raw.update(settled)
    found = {name for name in cross_tenant_findings(raw) if name in settled}
    claimed = {tid for _, item in parsed for tid in item.claimed_ids}
    found.update(name for name in settled if Path(name).stem in claimed)
    return sorted(found)


def _broken(file: str, stem: str, error: SpecError) -> _Parsed:
    """A file we could not read: an error of the tenant its name claims, never a removal."""
    return _Parsed(file, stem, None, None, {stem}, [error])


# --- reading: one stable read of a regular file ------------------------------------------


def _stat_spec_file(path: Path) -> os.stat_result | SpecError:
    """What the name points at, without opening it (opening a FIFO would block)."""
    display = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            if os.path.isabs(target) and os.path.dirname(target) != str(path.parent):
                # a path of the host outside the spec directory is nobody's business in git
                target = f"(outside the spec directory)/{os.path.basename(target)}"
            return _err(
                display,
                1,
                1,
                "",
                f"dangling symbolic link to {shown(target, limit=400)}: its tenant stays "
                "frozen until it points at a regular file",
            )
        return _err(display, 1, 1, "", "disappeared while being read; will retry", True)
    except OSError as exc:
        return _err(display, 1, 1, "", f"cannot read file: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        return _err(
            display,
            1,
            1,
            "",
            f"not a regular file but {_file_kind(st.st_mode)}: its tenant stays frozen until "
            "this name is a file (or a symbolic link to one)",
        )
    if st.st_size > MAX_FILE_BYTES:
        return _too_big(display, st.st_size)
    return st


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _too_big(file: str, size: int) -> SpecError:
    return _err(
        file,
        1,
        1,
        "",
        f"file is {size} bytes; a spec file is limited to {MAX_FILE_BYTES} bytes (1 MiB)",
    )


def _read_stable(path: Path, before: os.stat_result) -> bytes | SpecError:
    """The bytes of one read, or a transient error when the file changed meanwhile (an
    editor or ``git checkout`` writing it): a half-written file is never validated."""
    display = str(path)
    changed = _err(display, 1, 1, "", "changed while being read; will retry", True)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return changed
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # swapped for a FIFO or directory
            return changed
        return _err(display, 1, 1, "", f"cannot read file: {exc.strerror or exc}")
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or _identity(opened) != _identity(before):
            return changed
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        return _err(display, 1, 1, "", f"cannot read file: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        return _too_big(display, len(data))
    try:
        after = os.stat(path)
    except OSError:
        return changed
    if _identity(after) != _identity(before) or len(data) != before.st_size:
        return changed
    return data


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _decode(data: bytes, file: str) -> str | SpecError:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        col = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1  # characters
        return _err(
            file,
            line,
            col,
            "",
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded (save the file "
            "as UTF-8)",
        )


def _read_spec_text(path: Path) -> str | SpecError:
    st = _stat_spec_file(path)
    if isinstance(st, SpecError):
        return st
    data = _read_stable(path, st)
    return data if isinstance(data, SpecError) else _decode(data, str(path))


def _load_platform_file(path: Path) -> _Platform:
    text = _read_spec_text(path)
    if isinstance(text, SpecError):
        return _Platform(None, [text], None)
    return _load_platform(text, str(path))


def _platform_beside(directory: Path) -> _Platform:
    """The platform file in ``directory`` (a tenant file validated on its own); nothing
    declared when there is no such file."""
    for candidate in find_spec_files([directory]):
        if candidate.stem == PLATFORM_FILE_STEM:
            return _load_platform_file(candidate)
    return _Platform(None, [], frozenset(), {})


def _cross_tenant_view(data: dict[str, Any]) -> dict[str, Any]:
    """Only what rules across files read (id, domain, DID numbers, agent contacts): the
    loader keeps this for every file between runs, and the whole raw document would double
    the daemon's memory."""
    dids = data.get("inbound_numbers")
    agents = data.get("agents")
    settings = data.get("settings")
    return {
        "outbound": data.get("outbound"),
        "settings": (
            {"outbound_caller_id": settings.get("outbound_caller_id")}
            if isinstance(settings, dict)
            else None
        ),
        "id": data.get("id"),
        "domain": data.get("domain"),
        "inbound_numbers": (
            [{"number": d.get("number")} if isinstance(d, dict) else d for d in dids]
            if isinstance(dids, list)
            else dids
        ),
        "agents": (
            [{"contact": a.get("contact")} if isinstance(a, dict) else None for a in agents]
            if isinstance(agents, list)
            else None
        ),
    }


def _assemble(
    parsed: list[_Parsed],
    platform: PlatformSpec | None,
    platform_errors: list[SpecError],
    files: list[Path],
    settled: Mapping[str, Mapping[str, Any]],
) -> SpecSet:
    raw: dict[str, Mapping[str, Any]] = {p.file: p.data for p in parsed if p.data is not None}
    raw.update(settled)  # none of them has a finding (``_involved``)
    for file, findings in cross_tenant_findings(raw).items():
        item = next(p for p in parsed if p.file == file)
        assert item.positions is not None
        item.errors += [
            _finding_error(item.file, item.positions, loc, msg) for loc, msg in findings
        ]

    tenants: dict[str, LoadedTenant] = {}
    invalid: dict[str, tuple[SpecError, ...]] = {}
    seen_ids: dict[str, str] = {}
    for item in parsed:
        if item.spec is not None and not item.errors:
            tid = item.spec.id
            if tid in seen_ids and item.positions is not None:
                # two files, one id: only possible via .yml/.yaml twins
                item.errors.append(
                    _finding_error(
                        item.file,
                        item.positions,
                        ("id",),
                        f"tenant id '{tid}' is also defined in {seen_ids[tid]}",
                    )
                )
            else:
                seen_ids[tid] = item.file
        if item.errors:
            for tid in item.claimed_ids:
                invalid[tid] = tuple(sorted(invalid.get(tid, ()) + tuple(item.errors)))
        else:
            assert item.spec is not None
            tenants[item.spec.id] = LoadedTenant(
                item.spec, item.file, item.digest, item.fingerprint, item.inputs, item.data
            )
    for tid in invalid:
        tenants.pop(tid, None)

    unstable = {tid for p in parsed if any(e.transient for e in p.errors) for tid in p.claimed_ids}
    if any(e.transient for e in platform_errors):
        unstable.add(PLATFORM_FILE_STEM)
    errors = sorted([e for p in parsed for e in p.errors] + platform_errors)
    return SpecSet(
        tenants=tenants,
        invalid=invalid,
        platform=platform,
        errors=tuple(errors),
        files=tuple(str(f) for f in files),
        unstable=frozenset(unstable),
    )


def relative_spec_set(specs: SpecSet, root: Path) -> SpecSet:
    """``specs`` with every file name (and any mention of ``root`` in a message) relative to
    ``root``: ``acme.yaml:3:5: ...``, never ``/var/lib/pbx/git/tenants.d/acme.yaml``."""
    prefixes = sorted({f"{r}{os.sep}" for r in (root, root.absolute(), root.resolve())}, key=len)

    def file(name: str) -> str:
        for prefix in reversed(prefixes):  # longest first
            if name.startswith(prefix):
                return name.removeprefix(prefix)
        return os.path.basename(name) if os.path.isabs(name) else name

    def error(e: SpecError) -> SpecError:
        message = e.message
        for prefix in reversed(prefixes):
            message = message.replace(prefix, "")
        return replace(e, file=file(e.file), message=message)

    return SpecSet(
        tenants={t: replace(lt, file=file(lt.file)) for t, lt in specs.tenants.items()},
        invalid={t: tuple(map(error, errs)) for t, errs in specs.invalid.items()},
        platform=specs.platform,
        errors=tuple(map(error, specs.errors)),
        files=tuple(map(file, specs.files)),
        unstable=specs.unstable,
        settled=specs.settled,
    )


def spec_digest(spec: TenantSpec) -> str:
    """Digest of the spec's meaning (not its formatting): changes only when the spec does."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _load_tenant(text: str, file: str, stem: str) -> _Parsed:
    item = _Parsed(file, stem, None, None, {stem}, [])
    try:
        data, positions = parse_with_positions(text)
    except YamlProblem as exc:
        item.errors += _yaml_errors(exc, file)
        return item
    item.positions = positions
    if not isinstance(data, dict):
        where = positions.value(())
        item.errors.append(
            _err(
                file,
                where.line,
                where.col,
                "",
                "a tenant file must be a YAML mapping (id, domain, ...)",
            )
        )
        return item
    item.data = _cross_tenant_view(data)
    item.sound_refs = tuple(sound_references(data))
    declared_id = data.get("id")
    if isinstance(declared_id, str):
        item.claimed_ids.add(declared_id)
        if declared_id != stem:
            hint = (
                f" (rename the file to {declared_id}.yaml)"
                if re.fullmatch(models.TENANT_ID_PATTERN, declared_id)
                else ""
            )
            item.errors.append(
                _finding_error(
                    file,
                    positions,
                    ("id",),
                    f"tenant id '{declared_id}' must equal the file name '{stem}'{hint}",
                )
            )
    try:
        item.spec = TenantSpec.model_validate(data)
        item.digest = spec_digest(item.spec)
    except ValidationError as exc:
        item.errors += _validation_errors(exc, TenantSpec, file, positions)
    item.errors += [_finding_error(file, positions, loc, msg) for loc, msg in tenant_findings(data)]
    return item


def _load_platform(text: str, file: str) -> _Platform:
    try:
        data, positions = parse_with_positions(text)
    except YamlProblem as exc:
        return _Platform(None, _yaml_errors(exc, file), None)
    if data is None:
        return _Platform(PlatformSpec(), [], frozenset(), {})
    errors: list[SpecError] = []
    spec: PlatformSpec | None = None
    try:
        spec = PlatformSpec.model_validate(data)
    except ValidationError as exc:
        errors += _validation_errors(exc, PlatformSpec, file, positions)
    if isinstance(data, dict):
        errors += [
            _finding_error(file, positions, loc, msg) for loc, msg in platform_findings(data)
        ]
    if errors:
        spec = None
    gateways: Gateways = None
    if spec is not None:
        gateways = spec.gateway_names()
    elif isinstance(data, dict) and not any(
        e.field == "" or e.field.startswith("gateways") for e in errors
    ):
        listed = data.get("gateways") or []
        gateways = frozenset(g["name"] for g in listed)
    caller_ids: dict[str, frozenset[str]] | None = None
    if spec is not None:
        caller_ids = {t: frozenset(n) for t, n in spec.outbound_caller_ids.items()}
    elif isinstance(data, dict) and not any(
        e.field == "" or e.field.startswith("outbound_caller_ids") for e in errors
    ):
        listed_ids = data.get("outbound_caller_ids") or {}
        caller_ids = {str(t): frozenset(map(str, n)) for t, n in listed_ids.items()}
    return _Platform(spec, errors, gateways, caller_ids)


def _yaml_errors(exc: YamlProblem, file: str) -> list[SpecError]:
    return [
        _err(file, p.position.line, p.position.col, format_loc(p.loc), p.message) for p in exc.all()
    ]


def _err(
    file: str, line: int, col: int, field_path: str, message: str, transient: bool = False
) -> SpecError:
    return SpecError(file, line, col, field_path, message, transient)


def _finding_error(file: str, positions: NodePositions, loc: Loc, message: str) -> SpecError:
    where = positions.value(loc)
    return _err(file, where.line, where.col, format_loc(loc), message)


def _validation_errors(
    exc: ValidationError, root: type[BaseModel], file: str, positions: NodePositions
) -> list[SpecError]:
    out: list[SpecError] = []
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            where = positions.key(loc)
            message = _unknown_key_message(root, loc)
        else:
            where = positions.value(loc)
            message = _friendly(kind, error["msg"], error.get("ctx") or {}, loc, error["input"])
        out.append(_err(file, where.line, where.col, format_loc(loc), message))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's internal union/function tags from a location."""
    return tuple(
        p
        for p in loc
        if isinstance(p, int)
        or not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
    )


def _unknown_key_message(root: type[BaseModel], loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unknown key {shown(key)}"
    allowed = [name for name, f in model.model_fields.items() if f.exclude is not True]
    close = difflib.get_close_matches(key[:100], allowed, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {', '.join(allowed)}"
    return f"unknown key {shown(key)}{hint}"


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Walk model annotations along ``loc`` to find the model that owns the next key."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            current = _list_item(current)
        else:
            model = _as_model(current)
            if model is None or part not in model.model_fields:
                return None
            current = model.model_fields[part].annotation
    return _as_model(current)


def _list_item(annotation: Any) -> Any:
    for candidate in _flatten(annotation):
        if get_origin(candidate) is list:
            return get_args(candidate)[0]
    return None


def _as_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _flatten(annotation: Any) -> list[Any]:
    args = get_args(annotation)
    if args and get_origin(annotation) is not list:
        return [a for arg in args for a in _flatten(arg)]
    return [annotation]


_PATTERN_HINTS = {
    models.DIGITS_PATTERN: 'must be digits only, written as a quoted string (e.g. "1001")',
    models.TENANT_ID_PATTERN: "must be a slug: a lowercase letter, then 1-30 of a-z, 0-9, _",
    models.SLUG_PATTERN: "must be a slug: a lowercase letter, then a-z, 0-9, _ or - (max 63)",
    models.DOMAIN_PATTERN: "must be a fully qualified domain name such as pbx.example.com",
    models.FEATURE_CODE_PATTERN: 'must be digits with an optional leading * or # (e.g. "*22")',
    models.E164_PATTERN: 'must be an E.164 number: "+", country code, digits (e.g. "+14155550100")',
    models.CALLER_ID_NUMBER_PATTERN: "must be digits with an optional leading +",
    models.EMAIL_PATTERN: "must be an email address",
    models.CONTACT_PATTERN: "must be sofia/gateway/<gateway>/<E.164 number>, the one "
    "FreeSWITCH dial string a contact can be, through a gateway declared in _platform.yaml "
    "(e.g. sofia/gateway/carrier1/+14155550199); give `extension:` instead to ring an "
    "extension of this tenant",
    models.SOUND_PATTERN: "must be local_stream://<name>, silence_stream://<milliseconds>, a "
    "shipped sound such as ivr/ivr-please_hold.wav, or tenant:<path> for a file in this "
    "tenant's sound storage (segments of a-z, 0-9, _ and -, ending .wav, .mp3 or .ogg; "
    "without blanks, quotes, '|', '$', '{' or '}')",
    models.RECORD_TEMPLATE_PATTERN: "must be a path in this tenant's recordings storage "
    "such as support/{date}/{uuid}.wav: segments of A-Z, a-z, 0-9, _, . and -, the "
    "placeholders {uuid}, {date}, {time} and {queue} only, ending .wav or .mp3",
    models.ROUTE_PREFIX_PATTERN: 'must be an E.164 prefix: "+" then digits (e.g. "+44")',
    models.ROUTE_MATCH_PATTERN: "must be emergency, local, national, international or "
    'an E.164 prefix: "+" then digits (e.g. "+44"); nothing else reaches the switch',
    models.COUNTRY_PATTERN: "must be an ISO 3166 country code in capitals (e.g. US, GB)",
    models.AREA_CODE_PATTERN: 'must be a national area prefix: digits, not starting with 0 (e.g. "415")',
    models.GATEWAY_PATTERN: "must be a gateway name: a-z or 0-9, then a-z, 0-9, _, . or - (max 63)",
    shapes.HOST_PORT_PATTERN: "must be host or host:port: a host name, an IPv4 address or an "
    "[IPv6] address, then an optional :port (no scheme, user, blanks, '$' or braces)",
    shapes.HOST_PATTERN: "must be a host name or an IP address (no port, blanks, '$' or braces)",
    shapes.SIP_USER_PATTERN: "must be a SIP user name: 1-64 of A-Z, a-z, 0-9, _, ., + and -",
    shapes.CODEC_PATTERN: "must be a codec name such as PCMU, PCMA, G722 or OPUS",
}


def _friendly(kind: str, msg: str, ctx: Mapping[str, Any], loc: Loc, value: object) -> str:
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(str(ctx.get("pattern")), msg)
    if (kind == "string_type" and loc and loc[-1] in ("number", "extension")) or (
        kind == "string_type" and len(loc) >= 2 and loc[-2] == "extensions"
    ):
        return 'must be a string: quote numbers, e.g. "1001" (YAML reads unquoted 0123 as a number)'
    if kind == "string_type" and isinstance(value, bool):
        return (
            "input should be a valid string, but YAML reads unquoted yes/no/on/off/true/false "
            'as a boolean: quote it (e.g. "yes") if it is meant as text'
        )
    if kind == "string_type" and isinstance(value, (int, float, datetime.date)):
        what = "a date" if isinstance(value, datetime.date) else "a number"
        return f"input should be a valid string, but YAML reads this unquoted value as {what}: quote it"
    if kind in ("int_type", "bool_type"):
        return _strict_type_message(kind, value)
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else msg


_YAML_KINDS = {dict: "a mapping", list: "a list", type(None): "empty (null)"}


def _strict_type_message(kind: str, value: object) -> str:
    """Numbers and switches are never converted (``"30"``, ``true`` as 1, ``"no"``): the
    message says what YAML made of the value and how to write it."""
    wanted = "a whole number, unquoted (e.g. 30)" if kind == "int_type" else "true or false"
    if isinstance(value, bool):
        found = "YAML reads unquoted yes/no/on/off/true/false as a boolean"
    elif isinstance(value, str):
        found = "YAML reads this value as text (no quotes around a number or true/false)"
    elif isinstance(value, float):
        found = "YAML reads this value as a decimal number"
    elif isinstance(value, int):
        found = "YAML reads this value as a number"
    else:
        found = f"YAML reads this value as {_YAML_KINDS.get(type(value), 'something else')}"
    return f"must be {wanted}; {found}"

"""Spec files -> validated models, or errors a person can act on (``file:line:col: field: msg``).

Loading is pure with respect to everything but reading the files: no database, no switch.
Every error of every file is collected in one run. A tenant whose file has any error is
listed in ``SpecSet.invalid`` so that callers leave its applied state untouched (it is *not*
"removed from git").
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from specs_schema import models
from specs_schema.models import PLATFORM_FILE_STEM, PlatformSpec, TenantSpec
from specs_schema.positions import Loc, NodePositions, YamlProblem, format_loc, parse_with_positions
from specs_schema.rules import cross_tenant_findings, tenant_findings

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True, order=True)
class SpecError:
    """One problem at one place. Sorts by file, line, column."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "field": self.field,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class LoadedTenant:
    """A valid tenant spec with where it came from and a digest of its meaning."""

    spec: TenantSpec
    file: str
    digest: str


@dataclass(frozen=True)
class SpecSet:
    """The outcome of loading a tree of spec files."""

    tenants: Mapping[str, LoadedTenant]
    invalid: Mapping[str, tuple[SpecError, ...]]
    platform: PlatformSpec | None
    errors: tuple[SpecError, ...]
    files: tuple[str, ...] = field(default=())

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


def find_spec_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (non-recursive) into their ``*.yaml``/``*.yml`` files, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.iterdir()
                if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        else:
            found.append(path)
    return found


def load_specs(paths: Sequence[Path]) -> SpecSet:
    """Load, validate and cross-check every spec file under ``paths``."""
    return SpecLoader().load(paths)


class SpecLoader:
    """Loads spec trees repeatedly, re-parsing only files whose size or mtime changed.

    The daemon keeps one loader: after an edit of one tenant file among a thousand, a pass
    re-validates that file only; cross-tenant rules (cheap, over raw data) run every time.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], _Parsed]] = {}

    def load(self, paths: Sequence[Path]) -> SpecSet:
        # Parsing allocates millions of small objects that all stay alive; generational GC
        # passes over them only cost time (measured: about half of a cold load).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._load(paths)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _load(self, paths: Sequence[Path]) -> SpecSet:
        files = find_spec_files(paths)
        parsed: list[_Parsed] = []
        platform: PlatformSpec | None = None
        platform_errors: list[SpecError] = []
        live: set[str] = set()
        for path in files:
            display = str(path)
            live.add(display)
            if path.stem == PLATFORM_FILE_STEM:
                text = _read(path)
                if isinstance(text, SpecError):
                    platform_errors = [text]
                else:
                    platform, platform_errors = _load_platform(text, display)
                continue
            parsed.append(self._parse_cached(path))
        for stale in set(self._cache) - live:
            del self._cache[stale]
        return _assemble(parsed, platform, platform_errors, files)

    def _parse_cached(self, path: Path) -> _Parsed:
        display = str(path)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (-1, -1)
        cached = self._cache.get(display)
        if cached is not None and cached[0] == stamp and stamp != (-1, -1):
            item = cached[1]
        else:
            text = _read(path)
            if isinstance(text, SpecError):
                item = _Parsed(display, path.stem, None, None, {path.stem}, [text])
            else:
                item = _load_tenant(text, display, path.stem)
            self._cache[display] = (stamp, item)
        # a per-run copy: cross-tenant findings are added to it, never to the cached item
        return replace(item, errors=list(item.errors), claimed_ids=set(item.claimed_ids))


def _cross_tenant_view(data: dict[str, Any]) -> dict[str, Any]:
    """Only what cross-tenant rules read (id, domain, DID numbers): the loader keeps this for
    every file between runs, and the whole raw document would double the daemon's memory."""
    dids = data.get("inbound_numbers")
    return {
        "id": data.get("id"),
        "domain": data.get("domain"),
        "inbound_numbers": (
            [{"number": d.get("number")} if isinstance(d, dict) else d for d in dids]
            if isinstance(dids, list)
            else dids
        ),
    }


def _read(path: Path) -> str | SpecError:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _err(str(path), 1, 1, "", f"cannot read file: {exc}")


def _assemble(
    parsed: list[_Parsed],
    platform: PlatformSpec | None,
    platform_errors: list[SpecError],
    files: list[Path],
) -> SpecSet:
    raw = {p.file: p.data for p in parsed if p.data is not None}
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
            tenants[item.spec.id] = LoadedTenant(item.spec, item.file, item.digest)
    for tid in invalid:
        tenants.pop(tid, None)

    errors = sorted([e for p in parsed for e in p.errors] + platform_errors)
    return SpecSet(
        tenants=tenants,
        invalid=invalid,
        platform=platform,
        errors=tuple(errors),
        files=tuple(str(f) for f in files),
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
        item.errors.append(
            _err(file, exc.position.line, exc.position.col, format_loc(exc.loc), exc.message)
        )
        return item
    item.positions = positions
    if not isinstance(data, dict):
        item.errors.append(
            _err(file, 1, 1, "", "a tenant file must be a YAML mapping (id, domain, ...)")
        )
        return item
    item.data = _cross_tenant_view(data)
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


def _load_platform(text: str, file: str) -> tuple[PlatformSpec | None, list[SpecError]]:
    try:
        data, positions = parse_with_positions(text)
    except YamlProblem as exc:
        return None, [
            _err(file, exc.position.line, exc.position.col, format_loc(exc.loc), exc.message)
        ]
    if data is None:
        return PlatformSpec(), []
    try:
        return PlatformSpec.model_validate(data), []
    except ValidationError as exc:
        return None, _validation_errors(exc, PlatformSpec, file, positions)


def _err(file: str, line: int, col: int, field_path: str, message: str) -> SpecError:
    return SpecError(file, line, col, field_path, message)


def _finding_error(file: str, positions: NodePositions, loc: Loc, message: str) -> SpecError:
    where = positions.value(loc)
    return _err(file, where.line, where.col, format_loc(loc), message)


def _validation_errors(
    exc: ValidationError, root: type[BaseModel], file: str, positions: NodePositions
) -> list[SpecError]:
    out: list[SpecError] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = _clean_loc(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            where = positions.key(loc)
            message = _unknown_key_message(root, loc)
        else:
            where = positions.value(loc)
            message = _friendly(kind, error["msg"], error.get("ctx") or {}, loc)
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
        return f"unknown key '{key}'"
    allowed = [name for name, f in model.model_fields.items() if f.exclude is not True]
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {', '.join(allowed)}"
    return f"unknown key '{key}'{hint}"


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
    models.CONTACT_PATTERN: "must be a FreeSWITCH dial string without blanks, quotes, "
    "backslashes, '|' or '<>' (e.g. user/1001@acme.example.com)",
    models.SOUND_PATTERN: "must be a sound path or URL without blanks, quotes, '|' or '<>'",
}


def _friendly(kind: str, msg: str, ctx: Mapping[str, Any], loc: Loc) -> str:
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(str(ctx.get("pattern")), msg)
    if (kind == "string_type" and loc and loc[-1] in ("number", "extension")) or (
        kind == "string_type" and len(loc) >= 2 and loc[-2] == "extensions"
    ):
        return 'must be a string: quote numbers, e.g. "1001" (YAML reads unquoted 0123 as a number)'
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else msg

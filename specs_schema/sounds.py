"""A tenant's own sounds in git: where they live beside the spec, and what a valid one is.

Layout: ``<tenants dir>/<tenant id>/sounds/<path>``, referenced from the spec as
``tenant:<path>`` (``tenant:greetings/welcome.wav`` is ``acme/sounds/greetings/welcome.wav``
beside ``acme.yaml``). The spec loader reads only ``*.yaml`` at the top of the directory, so
the folder is never mistaken for a spec. The daemon copies the valid files into
``<sounds root>/<tenant id>/<path>``, the path FreeSWITCH is given.

A valid sound is a WAV file of linear PCM, mono, 8, 16 or 48 kHz, 16-bit, at most
``MAX_SOUND_BYTES``, a regular file (never a link: git can store one pointing anywhere on
the host), named in the ``tenant:`` shape. Anything else is an error naming the file and
the reason, which freezes only its tenant.
"""

from __future__ import annotations

import os
import re
import stat
import wave
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from specs_schema.positions import Loc
from specs_schema.shapes import TENANT_SOUND_PREFIX

SOUNDS_SUBDIR = "sounds"
MAX_SOUND_BYTES = 20 * 1024 * 1024
SAMPLE_RATES = (8000, 16000, 48000)
_NAME = re.compile(r"^(?:[a-z0-9_-]+/){0,15}[a-z0-9_-]+\.wav$")


def tenant_sounds_dir(tenants_dir: Path, tenant_id: str) -> Path:
    """Where a tenant's sounds live in git: ``<tenants dir>/<id>/sounds``."""
    return tenants_dir / tenant_id / SOUNDS_SUBDIR


def wav_problem(path: Path) -> str | None:
    """Why ``path`` is not a sound we serve, or None when it is one."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link (only regular files are copied)"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_size > MAX_SOUND_BYTES:
        return f"is {info.st_size} bytes, more than the {MAX_SOUND_BYTES} allowed"
    try:
        with wave.open(str(path), "rb") as audio:
            channels, width, rate = audio.getnchannels(), audio.getsampwidth(), audio.getframerate()
            frames = audio.getnframes()
    except (wave.Error, EOFError, OSError) as exc:
        return f"is not a WAV file of linear PCM ({str(exc) or 'too short'})"
    if channels != 1:
        return f"has {channels} channels; sounds must be mono"
    if rate not in SAMPLE_RATES:
        return f"is sampled at {rate} Hz; allowed: 8000, 16000, 48000"
    if width != 2:
        return f"has {8 * width}-bit samples; sounds must be 16-bit"
    if frames == 0:
        return "holds no audio"
    return None


def sound_files(directory: Path) -> Iterator[str]:
    """Every entry below ``directory`` that is not a directory, as a relative path with
    ``/`` separators (links included, so they are reported rather than skipped)."""
    if not directory.is_dir() or directory.is_symlink():
        return
    for base, dirs, names in os.walk(directory, followlinks=False):
        rel_base = Path(base).relative_to(directory)
        for name in dirs[:]:
            if (Path(base) / name).is_symlink():
                dirs.remove(name)
                yield (rel_base / name).as_posix()
        for name in names:
            yield (rel_base / name).as_posix()


def folder_problems(directory: Path) -> dict[str, str]:
    """``{relative path: problem}`` for every file of a tenant's sounds folder that would
    not be copied (bad name or bad audio)."""
    problems: dict[str, str] = {}
    for rel in sorted(sound_files(directory)):
        if _NAME.match(rel) is None:
            problems[rel] = (
                "is not named as a tenant sound can be: segments of [a-z0-9_-], ending .wav"
            )
            continue
        problem = wav_problem(directory / rel)
        if problem is not None:
            problems[rel] = problem
    return problems


def sound_references(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every ``tenant:`` string of a parsed spec, with where it is."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from sound_references(value, (*loc, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from sound_references(value, (*loc, index))
    elif isinstance(data, str) and data.startswith(TENANT_SOUND_PREFIX) and _is_sound_field(loc):
        yield loc, data.removeprefix(TENANT_SOUND_PREFIX)


def _is_sound_field(loc: Loc) -> bool:
    """Sound fields are named ``*_sound`` or ``*greeting*``: a display name that happens to
    start with ``tenant:`` is not a reference."""
    key = loc[-1] if loc else ""
    return isinstance(key, str) and (key.endswith("sound") or "greeting" in key)


def sound_findings(references: Iterable[tuple[Loc, str]], directory: Path) -> list[tuple[Loc, str]]:
    """Errors for a tenant's sounds: each ``tenant:`` reference to a missing or invalid
    file (at the reference), then each invalid file nobody references (at ``id``)."""
    problems = folder_problems(directory)
    findings: list[tuple[Loc, str]] = []
    shown = f"{directory.parent.name}/{SOUNDS_SUBDIR}"
    referenced: set[str] = set()
    for loc, rel in references:
        referenced.add(rel)
        if rel in problems:
            findings.append((loc, f"{shown}/{rel} {problems[rel]}"))
        elif _NAME.match(rel) is None:
            findings.append((loc, f"tenant sounds are WAV files: {shown}/{rel} cannot be one"))
        elif not (directory / rel).is_file():
            findings.append((loc, f"{shown}/{rel} does not exist in git"))
    for rel, problem in problems.items():
        if rel not in referenced:
            findings.append((("id",), f"{shown}/{rel} {problem}"))
    return findings

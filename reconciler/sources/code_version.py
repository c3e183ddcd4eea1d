"""The digest of the code that turns spec files into desired records: the salt of every
tenant's inputs digest (``specs_schema.inputs``), so an upgrade never trusts a digest an
older reconciler recorded."""

from __future__ import annotations

import hashlib
import os
import sys
from functools import cache
from pathlib import Path

import pydantic
import yaml

import reconciler
import specs_schema

_NOT_CODE = frozenset({"node_modules", "__pycache__"})


@cache
def code_digest() -> str:
    """sha256 over every module of ``reconciler`` and ``specs_schema`` (paths and bytes),
    the interpreter's version and the parsers' (a few milliseconds, once a process)."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version}\0{pydantic.VERSION}\0{yaml.__version__}\0".encode())
    for package in (reconciler, specs_schema):
        root = Path(package.__file__ or "").parent
        for path in _modules(root):
            digest.update(f"{path.relative_to(root.parent)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _modules(root: Path) -> list[Path]:
    """``*.py`` below ``root``, sorted, not descending into what is no Python package
    (the browser phone's ``node_modules``, caches)."""
    found: list[Path] = []
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d.isidentifier() and d not in _NOT_CODE]
        found += [Path(base, name) for name in names if name.endswith(".py")]
    return sorted(found)

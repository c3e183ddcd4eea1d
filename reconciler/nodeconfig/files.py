"""The node's configuration files: the shipped tree, rendered with validated settings.

Placeholder mechanism: files named ``*.j2`` in the shipped tree (``freeswitch_conf/``) are
Jinja2 templates (``{{ name }}``), rendered with :class:`NodeSettings` and written without
the suffix; every other file is copied verbatim. FreeSWITCH's own ``$${var}`` preprocessor variables remain
only for fixed globals in ``vars.xml`` and for FreeSWITCH's built-in directories, so no
secret ever becomes a FreeSWITCH global variable.

Neighbours: reads the tree through ``reconciler.shipped_data`` (works from a checkout, a
wheel or a zip); writes a plain directory tree. Imports nothing else of ``reconciler``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

import jinja2

from reconciler.nodeconfig.settings import NodeConfigError, NodeSettings, template_context, validate
from reconciler.shipped_data import NODE_TREE, shipped_folder

TEMPLATE_SUFFIX = ".j2"
# What belongs to the FreeSWITCH tree (the folder's README.md and systemd/ are not).
TREE_ROOTS: tuple[str, ...] = (
    "freeswitch.xml",
    "vars.xml",
    "autoload_configs",
    "sip_profiles",
    "directory",
    "dialplan",
    "lang",
)
# The rendered tree holds the xml_curl credentials and the event-socket password.
FILE_MODE = 0o640
DIR_MODE = 0o750
# The WSS certificate's private key, when the renderer installs it: readable by the
# owner alone (the installation step makes that the freeswitch user).
KEY_FILE_MODE = 0o600
WSS_PEM = PurePosixPath("tls/wss.pem")


def _walk(node: Traversable, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
    if node.is_dir():
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name.startswith(".") or child.name == "__pycache__":
                continue
            yield from _walk(child, rel / child.name)
    else:
        yield rel, node


def iter_sources() -> Iterator[tuple[PurePosixPath, Traversable]]:
    """The shipped node tree: (relative path, resource), in a stable order."""
    package = shipped_folder(NODE_TREE)
    for root in TREE_ROOTS:
        candidates = [package / root, package / (root + TEMPLATE_SUFFIX)]
        found = [c for c in candidates if c.is_file() or c.is_dir()]
        if not found:
            raise NodeConfigError(f"package data missing: {root} (broken installation?)")
        for node in found:
            yield from _walk(node, PurePosixPath(node.name))


def node_config_files(settings: NodeSettings) -> dict[PurePosixPath, str]:
    """Decide the content of every output file; pure (no writes).

    Templates are rendered with XML autoescaping, so a password with ``&`` or ``"`` stays a
    well-formed attribute, and with StrictUndefined, so a typo fails here, not on the node.
    """
    settings = validate(settings)
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    context = template_context(settings)
    files: dict[PurePosixPath, str] = {}
    for rel, source in iter_sources():
        text = source.read_text(encoding="utf-8")
        if rel.suffix == TEMPLATE_SUFFIX:
            rel = rel.with_suffix("")
            text = env.from_string(text).render(context)
        files[rel] = text
    if settings.wss_pem is not None:
        files[WSS_PEM] = settings.wss_pem
    return files


@dataclass(frozen=True)
class WriteReport:
    """What :func:`write_tree` did, for the operator."""

    written: tuple[Path, ...]
    # Files already in the target that this tree does not contain: FreeSWITCH still loads
    # them (e.g. leftover vanilla users in directory/), so the operator must look.
    foreign: tuple[Path, ...]


class OutputNotEmptyError(NodeConfigError):
    """The output directory already holds files and --force was not given."""


def file_mode(rel: PurePosixPath) -> int:
    """The permission bits of one output file: a private key is the owner's alone."""
    return KEY_FILE_MODE if rel == WSS_PEM else FILE_MODE


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write via a temporary file and rename, so a node never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(
    files: Mapping[PurePosixPath, str], out: Path, *, force: bool = False
) -> WriteReport:
    """Write ``files`` under ``out``; refuse a non-empty ``out`` unless ``force``."""
    if out.exists() and not out.is_dir():
        raise NodeConfigError(f"{out} exists and is not a directory")
    existing = {p for p in out.rglob("*") if p.is_file()} if out.is_dir() else set()
    if existing and not force:
        raise OutputNotEmptyError(
            f"{out} is not empty; render into a new directory, or pass --force to overwrite"
        )
    out.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    written: list[Path] = []
    for rel, text in sorted(files.items()):
        target = out.joinpath(*rel.parts)
        _write_atomic(target, text, file_mode(rel))
        written.append(target)
    foreign = tuple(sorted(existing - set(written)))
    return WriteReport(written=tuple(written), foreign=foreign)


def write_node_config(settings: NodeSettings, out: Path, *, force: bool = False) -> WriteReport:
    """Validate, render and write the node tree into ``out``."""
    return write_tree(node_config_files(settings), out, force=force)

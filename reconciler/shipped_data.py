"""Where the data folders the project ships are read from: the XML templates and the
FreeSWITCH node tree.

They live in the repository's top-level folders ``templates/`` and ``freeswitch_conf/``
(the project's fixed layout) and install inside the package, as ``reconciler/templates`` and
``reconciler/freeswitch_conf`` (pyproject's ``package-dir``), so nothing generic lands at the
top of site-packages. One lookup serves both: inside the package when it is there (a wheel,
a zip), else beside the package (a checkout on ``PYTHONPATH``, an editable install).

Neighbours: ``reconciler.serve.templating`` and ``reconciler.nodeconfig.files`` read through
it; it imports only the stdlib.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

TEMPLATES = "templates"
NODE_TREE = "freeswitch_conf"


def shipped_folder(name: str) -> Traversable:
    """The shipped folder ``name``: the installed copy, else the checkout's top-level one."""
    installed = resources.files(__package__ or "reconciler").joinpath(name)
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / name

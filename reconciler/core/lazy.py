"""Names of a package imported on first use (PEP 562 ``__getattr__``): a command that
needs one part of a package does not import every part (``pbx plan`` never loads the
portal's pages, ``pbx run`` starts its xml_curl workers before it loads them)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(namespace: dict[str, Any], where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``{name: module}`` from ``where`` (kept in
    ``namespace`` once imported); other names raise ``AttributeError`` (``from package
    import submodule`` then imports the submodule, as without it)."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__

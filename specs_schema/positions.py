"""YAML text -> plain Python data plus the source position of every node.

PyYAML's composer keeps a mark (line, column) on each node; ``yaml.safe_load`` throws them
away. We compose the node tree ourselves (with libyaml when available), build the data in
one walk that also rejects duplicate keys, and keep the node tree so that a later error
(pydantic, cross-reference rules) can be located by walking to its path. Locating is lazy:
valid files, the common case, pay nothing for positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Loc = tuple[str | int, ...]

# libyaml's parser keeps node marks too and is about ten times faster than pure Python.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column, as editors and CI annotations count them."""

    line: int
    col: int

    @classmethod
    def of(cls, mark: Any) -> Position:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


class NodePositions:
    """Finds where a path's value (or the key that introduced it) starts in the file.

    Holds only the text; the node tree is composed again on the first lookup, so valid
    files (the common case) keep no node trees in memory.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._parsed = False
        self._root_node: yaml.Node | None = None

    @property
    def _root(self) -> yaml.Node | None:
        if not self._parsed:
            loader = _Loader(self._text)
            try:
                self._root_node = loader.get_single_node()
            finally:
                loader.dispose()
            self._parsed = True
        return self._root_node

    def _walk(self, loc: Loc) -> tuple[yaml.Node | None, yaml.Node | None, int]:
        """(deepest node reached, key node of the last mapping step, depth reached)."""
        node = self._root
        key_node: yaml.Node | None = None
        depth = 0
        for part in loc:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == part:
                        key_node, node = k, v
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                key_node, node = None, node.value[part]
            else:
                break
            depth += 1
        return node, key_node, depth

    def value(self, loc: Loc) -> Position:
        """Position of the deepest existing node on ``loc`` (missing fields -> their parent)."""
        node, _, _ = self._walk(loc)
        return Position.of(node.start_mark if node is not None else None)

    def key(self, loc: Loc) -> Position:
        """Position of the key naming ``loc`` (for unknown or misplaced keys)."""
        node, key_node, depth = self._walk(loc)
        if depth == len(loc) and key_node is not None:
            return Position.of(key_node.start_mark)
        return Position.of(node.start_mark if node is not None else None)


class YamlProblem(Exception):
    """The text is not YAML we can read; carries the position of the problem."""

    def __init__(self, message: str, position: Position, loc: Loc = ()) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.loc = loc


def parse_with_positions(text: str) -> tuple[Any, NodePositions]:
    """Parse one YAML document; raise YamlProblem on syntax errors or duplicate keys."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, NodePositions(text)
        data = _build(node, (), loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        context = exc.context or ""
        if "flow mapping" in context or "flow sequence" in context:
            # an unclosed '{' or '[' is noticed at the next token, often lines later: point
            # at the bracket that was never closed, where the mistake is
            mark = exc.context_mark or mark
            problem = (
                f"{problem} ({context.removeprefix('while parsing ')} opened here is not closed)"
            )
        raise YamlProblem(f"YAML syntax error: {problem}", Position.of(mark)) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML error: {exc}", Position(1, 1)) from exc
    finally:
        loader.dispose()
    return data, NodePositions(text)


def _build(node: yaml.Node, loc: Loc, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            return node.value
        return loader.construct_object(node)
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and node.tag not in _PLAIN_TAGS:
        # e.g. `!!python/object/apply:...` on a list: never constructed, but say so loudly
        raise YamlProblem(f"YAML tag {node.tag} is not allowed", Position.of(node.start_mark), loc)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), loader) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, loc, loader)
            if isinstance(key, (list, dict)):
                raise YamlProblem(
                    "mapping keys must be plain scalars", Position.of(key_node.start_mark), loc
                )
            if key in out:
                raise YamlProblem(
                    f"duplicate key '{key}' (first defined at line {first_line[key]})",
                    Position.of(key_node.start_mark),
                    (*loc, key),
                )
            first_line[key] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*loc, key), loader)
        return out
    return loader.construct_object(node)


def format_loc(loc: Loc) -> str:
    """``('extensions', 2, 'number')`` -> ``extensions[2].number``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out

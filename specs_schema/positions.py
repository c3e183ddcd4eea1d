"""YAML text -> plain Python data plus the source position of every node.

PyYAML's composer keeps a mark (line, column) on each node; ``yaml.safe_load`` throws them
away. We compose the node tree ourselves so that every later error (pydantic, cross-reference
rules) can point at the exact line and column of the offending key or value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column, as editors and CI annotations count them."""

    line: int
    col: int

    @classmethod
    def of(cls, mark: yaml.Mark | None) -> Position:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True, slots=True)
class NodePositions:
    """Where each path's value starts, and where the key that introduced it starts."""

    values: dict[Loc, Position]
    keys: dict[Loc, Position]

    def value(self, loc: Loc) -> Position:
        """Position of the deepest existing node on ``loc`` (missing fields -> their parent)."""
        for end in range(len(loc), -1, -1):
            found = self.values.get(loc[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def key(self, loc: Loc) -> Position:
        """Position of the key naming ``loc`` (for unknown or misplaced keys)."""
        found = self.keys.get(loc)
        return found if found is not None else self.value(loc)


class YamlProblem(Exception):
    """The text is not YAML we can read; carries the position of the problem."""

    def __init__(self, message: str, position: Position, loc: Loc = ()) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.loc = loc


def parse_with_positions(text: str) -> tuple[Any, NodePositions]:
    """Parse one YAML document; raise YamlProblem on syntax errors or duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, NodePositions({(): Position(1, 1)}, {})
        positions = NodePositions({}, {})
        _index(node, (), positions)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlProblem(f"YAML syntax error: {problem}", Position.of(mark)) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML error: {exc}", Position(1, 1)) from exc
    finally:
        loader.dispose()
    return data, positions


def _index(node: yaml.Node, loc: Loc, positions: NodePositions) -> None:
    positions.values[loc] = Position.of(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, Position] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            key_position = Position.of(key_node.start_mark)
            if key in seen:
                first = seen[key]
                raise YamlProblem(
                    f"duplicate key '{key}' (first defined at line {first.line})",
                    key_position,
                    (*loc, key),
                )
            seen[key] = key_position
            positions.keys[(*loc, key)] = key_position
            _index(value_node, (*loc, key), positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*loc, index), positions)


def format_loc(loc: Loc) -> str:
    """``('extensions', 2, 'number')`` -> ``extensions[2].number``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out

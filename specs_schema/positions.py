"""YAML text -> plain Python data plus the source position of every node.

PyYAML's composer keeps a mark (line, column) on each node; ``yaml.safe_load`` throws them
away. We compose the node tree ourselves from libyaml's events (iteratively, under limits of
size, depth and node count, refusing anchors, aliases, merge keys and tags), build the data
in one walk that also rejects duplicate and non-text keys, and keep the text so that a later
error (pydantic, cross-reference rules) can be located by walking to its path. Locating is
lazy: valid files, the common case, pay nothing for positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from specs_schema.shapes import character_label

Loc = tuple[str | int, ...]

# libyaml's parser keeps node marks too and is about ten times faster than pure Python.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"


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
            self._root_node = compose(self._text)
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
    """The text is not YAML we can read; carries the position of the problem.

    ``also`` holds further problems found in the same scan (for instance every merge key),
    so that one run reports them all.
    """

    def __init__(
        self,
        message: str,
        position: Position,
        loc: Loc = (),
        also: tuple[YamlProblem, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.loc = loc
        self.also = also

    def all(self) -> tuple[YamlProblem, ...]:
        return (self, *self.also)


# --- limits --------------------------------------------------------------------------
# A spec file must fail alone, fast and with a message, however it was made. These hold
# before any Python data is built: composition below never recurses deeper than MAX_DEPTH
# and never expands an alias.

MAX_FILE_BYTES = 1024 * 1024
"""A thousand extensions take about 60 KiB; anything near a MiB is a mistake or an attack."""
MAX_DEPTH = 64
"""Tenant files nest about six levels deep; PyYAML and pydantic recurse once per level."""
MAX_NODES = 200_000
"""Scalars plus collections: a MiB of real spec holds about 150,000."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_ANCHOR_WHY = (
    "write the values out: a resource written in full keeps every diff showing all a change "
    "does (and aliases are how YAML bombs expand)"
)
MERGE_KEY_MESSAGE = "YAML merge keys (<<) are not supported in tenant files; write the keys out"
_TOO_DEEP = (
    f"nested more than {MAX_DEPTH} levels deep (the nesting limit of a tenant file, which "
    "needs about six)"
)


def _short_tag(tag: str) -> str:
    return (
        "!!" + tag.removeprefix("tag:yaml.org,2002:")
        if tag.startswith("tag:yaml.org,2002:")
        else tag
    )


class _Composer:
    """Builds the node tree from libyaml's events, iteratively, under the limits.

    PyYAML's own composer recurses per nesting level and resolves aliases to shared nodes
    (which a later walk expands exponentially: the "billion laughs"). Here anchors,
    aliases, merge keys and tags other than ``!!str`` are problems, collected in one scan;
    depth, node count and size stop the scan at once.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.problems: list[YamlProblem] = []
        self.anchors: set[str] = set()
        self.anchors_seen = 0
        self.aliases_seen = 0
        self.first_reference: int | None = None  # index of the anchor/alias problem

    def _problem(self, message: str, mark: Any) -> None:
        self.problems.append(YamlProblem(message, Position.of(mark)))

    def _fatal(self, message: str, mark: Any) -> YamlProblem:
        first = YamlProblem(message, Position.of(mark))
        return _combine([*self.problems, first])

    def compose(self) -> yaml.Node | None:
        if len(self.text) > MAX_FILE_BYTES:
            raise YamlProblem(
                f"file is larger than {MAX_FILE_BYTES} bytes (1 MiB), the size limit of a "
                "tenant file",
                Position(1, 1),
            )
        loader = _Loader(self.text)
        try:
            root = self._document(loader)
        except yaml.MarkedYAMLError as exc:
            raise _combine([*self.problems, _syntax_problem(exc)]) from exc
        except yaml.reader.ReaderError as exc:  # a character YAML forbids, such as NUL
            at = _position_of_offset(self.text, exc.position)
            problem = YamlProblem(f"YAML error: {exc.reason} ({_describe(exc.character)})", at)
            raise _combine([*self.problems, problem]) from exc
        except yaml.YAMLError as exc:  # unmarked: reader errors and the like
            raise _combine(
                [*self.problems, YamlProblem(f"YAML error: {exc}", Position(1, 1))]
            ) from exc
        finally:
            loader.dispose()
        uses = self.anchors_seen + self.aliases_seen
        if self.first_reference is not None and uses > 1:
            index = self.first_reference
            first = self.problems[index]
            self.problems[index] = YamlProblem(
                f"{first.message} ({uses - 1} more anchor(s)/alias(es) in this file)",
                first.position,
            )
        if self.problems:
            raise _combine(self.problems)
        return root

    def _document(self, loader: Any) -> yaml.Node | None:
        loader.get_event()  # StreamStart
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # DocumentStart
        root = self._node(loader)
        loader.get_event()  # DocumentEnd
        if loader.check_event(yaml.DocumentStartEvent):
            extra = loader.get_event()
            self._problem(
                "a tenant file holds one YAML document; remove the second '---' and what follows",
                extra.start_mark,
            )
        return root

    def _node(self, loader: Any) -> yaml.Node:
        """The document's root node, composed in one loop over the events with an explicit
        stack of open collections, so depth costs no Python recursion."""
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
        resolve = loader.resolve
        # frames: [collection node, pending mapping key or None]
        stack: list[list[Any]] = []
        nodes = 0
        root: yaml.Node | None = None
        while True:
            event = loader.get_event()
            kind = event.__class__
            node: yaml.Node
            if kind is scalar_event:
                node = self._scalar(event, resolve, stack)
            elif kind is alias_event:
                node = self._alias(event)
            elif kind is mapping_start or kind is sequence_start:
                node = self._collection(event, len(stack))
            else:  # MappingEnd / SequenceEnd
                stack.pop()[0].end_mark = event.end_mark
                if not stack:
                    return root  # type: ignore[return-value]
                continue
            nodes += 1
            if nodes > MAX_NODES:
                raise self._fatal(
                    f"more than {MAX_NODES} YAML nodes (the size limit of a tenant file)",
                    event.start_mark,
                )
            if stack:
                _attach(stack[-1], node)
            else:
                root = node
            if kind is mapping_start or kind is sequence_start:
                stack.append([node, None])
            elif not stack:
                return node

    def _collection(self, event: Any, depth: int) -> yaml.Node:
        """An empty mapping or sequence node for a start event ``depth`` collections deep;
        too deep stops the scan at once, before anything nested is read."""
        if depth >= MAX_DEPTH:
            raise self._fatal(_TOO_DEEP, event.start_mark)
        self._check_properties(event)
        kind = event.__class__
        if kind is yaml.MappingStartEvent:
            return yaml.MappingNode(
                _MAP_TAG, [], event.start_mark, event.end_mark, event.flow_style
            )
        return yaml.SequenceNode(_SEQ_TAG, [], event.start_mark, event.end_mark, event.flow_style)

    def _check_properties(self, event: Any) -> None:
        if event.anchor is not None:
            self._anchor(event)
        if event.tag is not None:
            self._problem(
                f"YAML tag {_short_tag(event.tag)} is not allowed in tenant files", event.start_mark
            )

    def _scalar(self, event: Any, resolve: Any, stack: list[list[Any]]) -> yaml.Node:
        if event.anchor is not None:
            self._anchor(event)
        value = event.value
        if event.tag is not None:
            if event.tag != _STR_TAG:
                self._problem(
                    f"YAML tag {_short_tag(event.tag)} is not allowed in tenant files; write a "
                    "plain value (quote text)",
                    event.start_mark,
                )
            tag = _STR_TAG
        elif event.implicit[0]:
            tag = resolve(yaml.ScalarNode, value, (True, False))
            if tag in (_MERGE_TAG, _VALUE_TAG):
                if (
                    tag == _MERGE_TAG
                    and stack
                    and stack[-1][0].__class__ is yaml.MappingNode
                    and stack[-1][1] is None
                ):
                    self._problem(MERGE_KEY_MESSAGE, event.start_mark)
                tag = _STR_TAG
        else:
            tag = _STR_TAG
        return yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)

    def _anchor(self, event: Any) -> None:
        self.anchors.add(event.anchor)
        self.anchors_seen += 1
        if self.first_reference is None:
            self.first_reference = len(self.problems)
            self._problem(
                f"YAML anchors and aliases are not supported in tenant files (found "
                f"&{event.anchor}): {_ANCHOR_WHY}",
                event.start_mark,
            )

    def _alias(self, event: Any) -> yaml.Node:
        self.aliases_seen += 1
        if event.anchor not in self.anchors:
            self._problem(
                f"found undefined alias '{event.anchor}'; YAML aliases are not supported in "
                "tenant files anyway",
                event.start_mark,
            )
        elif self.first_reference is None:
            self.first_reference = len(self.problems)
            self._problem(
                f"YAML anchors and aliases are not supported in tenant files (found "
                f"*{event.anchor}): {_ANCHOR_WHY}",
                event.start_mark,
            )
        # a stand-in keeps the tree shaped while the scan goes on; it is never built
        return yaml.ScalarNode("tag:yaml.org,2002:null", "", event.start_mark, event.end_mark)


def _attach(frame: list[Any], node: yaml.Node) -> None:
    """Add ``node`` to the open collection of ``frame``: as a sequence item, as a mapping
    key (held until its value arrives) or as the value of the held key."""
    parent = frame[0]
    if parent.__class__ is yaml.SequenceNode:
        parent.value.append(node)
    elif frame[1] is None:
        frame[1] = node
    else:
        parent.value.append((frame[1], node))
        frame[1] = None


def _combine(problems: list[YamlProblem]) -> YamlProblem:
    first, *rest = problems
    return YamlProblem(first.message, first.position, first.loc, tuple(rest))


def _position_of_offset(text: str, offset: int) -> Position:
    """Line and column of a reader error: libyaml counts bytes of the UTF-8 text, the pure
    Python reader characters."""
    if _Loader is yaml.SafeLoader:
        text_before = text[:offset]
    else:
        text_before = text.encode("utf-8")[:offset].decode("utf-8", "replace")
    line_start = text_before.rfind("\n") + 1
    return Position(text_before.count("\n") + 1, len(text_before) - line_start + 1)


def _describe(character: object) -> str:
    if isinstance(character, int):
        character = chr(character)
    return character_label(character) if isinstance(character, str) and character else "?"


def _syntax_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    context = exc.context or ""
    if "maximum nesting depth" in problem:  # libyaml's own limit (1000), met first in flows
        return YamlProblem(_TOO_DEEP, Position.of(mark))
    if "flow mapping" in context or "flow sequence" in context:
        # an unclosed '{' or '[' is noticed at the next token, often lines later: point
        # at the bracket that was never closed, where the mistake is
        mark = exc.context_mark or mark
        problem = f"{problem} ({context.removeprefix('while parsing ')} opened here is not closed)"
    return YamlProblem(f"YAML syntax error: {problem}", Position.of(mark))


def compose(text: str) -> yaml.Node | None:
    """One YAML document as a node tree with marks, under the limits; raise YamlProblem."""
    return _Composer(text).compose()


def parse_with_positions(text: str) -> tuple[Any, NodePositions]:
    """Parse one YAML document; raise YamlProblem on syntax errors, duplicate keys, anything
    over a limit, anchors, aliases, merge keys and tags."""
    node = compose(text)
    if node is None:
        return None, NodePositions(text)
    constructor = yaml.constructor.SafeConstructor()
    try:
        data = _build(node, (), constructor)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_problem(exc) from exc
    return data, NodePositions(text)


def _build(node: yaml.Node, loc: Loc, constructor: yaml.constructor.SafeConstructor) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            return node.value
        return constructor.construct_object(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), constructor) for i, item in enumerate(node.value)]
    out: dict[Any, Any] = {}
    first_line: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlProblem(
                "mapping keys must be plain scalars", Position.of(key_node.start_mark), loc
            )
        key = _build(key_node, loc, constructor)
        if not isinstance(key, str):
            raise YamlProblem(
                f"mapping keys must be text: YAML reads the unquoted key {shown(key_node.value)} as "
                f"{_yaml_kind(key)}; quote it",
                Position.of(key_node.start_mark),
                loc,
            )
        if key in out:
            raise YamlProblem(
                f"duplicate key {shown(key)} (first defined at line {first_line[key]})",
                Position.of(key_node.start_mark),
                (*loc, key),
            )
        first_line[key] = key_node.start_mark.line + 1
        out[key] = _build(value_node, (*loc, key), constructor)
    return out


def _yaml_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a date" if hasattr(value, "isoformat") else type(value).__name__


def format_loc(loc: Loc) -> str:
    """``('extensions', 2, 'number')`` -> ``extensions[2].number``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = shown(part, quote=False)
            out += f".{key}" if out else key
    return out


SHOWN_MAX = 60


def shown(value: object, *, quote: bool = True, limit: int = SHOWN_MAX) -> str:
    """A value from a spec file as an error message may echo it: clipped to ``limit``
    characters, control and invisible characters escaped (``\\u202e``), so a hostile
    file cannot flood a terminal or CI log nor reorder what it displays."""
    text = str(value)
    clipped = len(text) > limit
    if clipped:
        text = text[:limit]
    if not text.isprintable() or "\\" in text:
        text = "".join(ch if ch.isprintable() and ch != "\\" else _escape(ch) for ch in text)
    if clipped:
        text += "..."
    return f"'{text}'" if quote else text


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )

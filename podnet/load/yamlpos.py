"""YAML read into a tree that remembers where every key and value was written.

The tree is built from the parser's event stream (never from PyYAML's constructors), so only the
plain YAML types exist (mapping, sequence, string, int, float, bool, null) and no tag can run code.
Building it ourselves also lets us

- keep the file:line:col of every key and value,
- refuse duplicate keys (Kubernetes' strict decoding does too),
- refuse alias bombs: an alias shares the aliased subtree instead of copying it, and the number of
  nodes that aliases stand for is counted against a limit, so memory stays proportional to the file,
- refuse nesting deeper than ``MAX_DEPTH`` (the event parsers keep an explicit stack, so a deep
  document cannot overflow the interpreter's stack either).

Timestamps stay strings, as they do when Kubernetes (sigs.k8s.io/yaml) turns YAML into JSON.
libyaml's parser is used for speed when present; on a syntax error the file is parsed again with
the pure-Python parser so that the message is the same on every machine.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import yaml
from yaml import events as ev
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from podnet.errors import Problem
from podnet.model.base import Pos

MAX_EXPANSION = 2_000_000
"""Nodes that aliases and merge keys may stand for in one document."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted."""

_T = "tag:yaml.org,2002:"
_STR = _T + "str"
_MISSING = object()
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# The implicit resolvers of yaml.resolver.Resolver (YAML 1.1 types), by first character.
_IMPLICIT = Resolver.yaml_implicit_resolvers


def _resolve(text: str) -> str:
    """The tag of a plain scalar, as yaml.resolver.Resolver.resolve gives it."""
    for tag, regexp in _IMPLICIT.get(text[:1], ()):
        if regexp.match(text):
            return tag
    return _STR


_MAP_TAGS = frozenset((None, "!", _T + "map"))
_SEQ_TAGS = frozenset((None, "!", _T + "seq"))


class _At:
    """A stand-in for a parser mark, for nodes made from a known Pos."""

    __slots__ = ("line", "column")

    def __init__(self, pos: Pos):
        self.line, self.column = pos.line - 1, pos.col - 1


class _Node:
    # The parser's mark is kept and turned into a Pos only when asked: most values never are.
    __slots__ = ("file", "mark")

    @property
    def pos(self) -> Pos:
        m = self.mark
        return Pos(self.file, m.line + 1, m.column + 1)


class YScalar(_Node):
    """A scalar: ``value`` is str, int, float, bool or None; ``text`` as written."""

    __slots__ = ("value", "text")

    def __init__(self, file: str, mark: object, value: object, text: str):
        self.file, self.mark, self.value, self.text = file, mark, value, text

    @classmethod
    def at(cls, pos: Pos, value: object, text: str) -> YScalar:
        """A scalar said to be written at ``pos``.

        >>> YScalar.at(Pos("f.yaml", 3, 7), 8, "8")
        YScalar(8 @ f.yaml:3:7)
        """
        return cls(pos.file, _At(pos), value, text)

    def __repr__(self) -> str:
        return f"YScalar({self.value!r} @ {self.pos})"


class YMap(_Node):
    """A mapping: ``members`` maps each key's text to (the key's node, the value's node)."""

    __slots__ = ("members",)

    def __init__(self, file: str, mark: object):
        self.file, self.mark = file, mark
        self.members: dict[str, tuple[YScalar, YNode]] = {}

    @classmethod
    def at(cls, pos: Pos) -> YMap:
        """An empty mapping said to be written at ``pos``."""
        return cls(pos.file, _At(pos))

    @property
    def entries(self) -> dict[str, tuple[Pos, YNode]]:
        """Each key's text -> (the key's position, the value's node), made on demand."""
        return {k: (kn.pos, v) for k, (kn, v) in self.members.items()}

    def __repr__(self) -> str:
        return f"YMap({list(self.members)} @ {self.pos})"


class YSeq(_Node):
    """A sequence of nodes."""

    __slots__ = ("items",)

    def __init__(self, file: str, mark: object):
        self.file, self.mark = file, mark
        self.items: list[YNode] = []

    def __repr__(self) -> str:
        return f"YSeq({len(self.items)} items @ {self.pos})"


YNode = YScalar | YMap | YSeq


def plain(node: YNode | None) -> object:
    """The node as plain Python data (dicts, lists, scalars).

    >>> plain(parse_yaml("a: [1, x, null]", "t.yaml")[0][0].root)
    {'a': [1, 'x', None]}
    """
    if node is None:
        return None
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [plain(n) for n in node.items]
    return {k: plain(v) for k, (_, v) in node.members.items()}


@dataclass(frozen=True, slots=True)
class Document:
    """One ``---`` document: its root node (None when empty) and where it starts."""

    root: YNode | None
    pos: Pos
    ok: bool  # False: the document had problems that leave its tree unusable


class _Fatal(Exception):
    """A problem after which the current document cannot be built."""


class _Abort(_Fatal):
    """A problem after which the rest of the file is not read.

    Too deep nesting stops the file: the scanners check every open flow level per token, so
    skipping a deeply nested rest would take time quadratic in its depth.
    """


class _Builder:
    """Turns one file's event stream into Documents, collecting problems."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self.docs: list[Document] = []
        self.constructor = SafeConstructor()
        # Plain scalars repeat (keys above all): resolve each text once per file.
        self.plain_cache: dict[str, object] = {}
        self.measured: dict[int, tuple[int, int]] = {}

    def pos(self, mark: yaml.Mark) -> Pos:
        return Pos(self.file, mark.line + 1, mark.column + 1)

    def run(self, loader: yaml.SafeLoader | yaml.CSafeLoader) -> None:
        get = loader.get_event
        try:
            while True:
                event = get()
                if isinstance(event, ev.StreamEndEvent):
                    return
                if isinstance(event, ev.DocumentStartEvent):
                    self.document(get, self.pos(event.start_mark))
        except _Abort:
            return

    def document(self, get, start: Pos) -> None:
        self.anchors: dict[str, YNode] = {}
        self.open_anchors: set[str] = set()
        self.expanded = 0
        # A frame: [node, pending key node or None, is_seq, merged maps or None, anchor,
        #           next value belongs to a merge key]
        stack: list[list] = []
        root: YNode | None = None
        ok = True
        try:
            root = self.build(get, stack)
        except _Abort:
            self.docs.append(Document(None, start, False))
            raise
        except _Fatal:
            ok = False
            while not isinstance(get(), ev.DocumentEndEvent):
                pass  # skip the rest of the document, keeping the parser in step
        if isinstance(root, YScalar) and root.value is None and root.text == "":
            root = None  # an empty document
        self.docs.append(Document(root, start, ok))

    def build(self, get, stack: list[list]) -> YNode | None:
        """Consume one document's events; return its root node."""
        file = self.file
        cache = self.plain_cache
        root: YNode | None = None
        while True:
            event = get()
            cls = event.__class__
            if cls is ev.ScalarEvent:
                if event.tag is None and event.anchor is None:
                    if not event.implicit[0]:
                        node: YNode = YScalar(file, event.start_mark, event.value, event.value)
                    else:
                        text = event.value
                        value = cache.get(text, _MISSING)
                        if value is _MISSING:
                            value = self.scalar(event).value
                            if len(cache) < 100_000:
                                cache[text] = value
                        node = YScalar(file, event.start_mark, value, text)
                else:
                    node = self.scalar(event)
                    if event.anchor is not None:
                        self.anchors[event.anchor] = node
            elif cls is ev.MappingStartEvent or cls is ev.SequenceStartEvent:
                self.open(event, cls is ev.MappingStartEvent, stack)
                continue
            elif cls is ev.MappingEndEvent or cls is ev.SequenceEndEvent:
                frame = stack.pop()
                node = frame[0]
                if frame[3]:
                    self.apply_merges(node, frame[3])
                if frame[4] is not None:
                    self.open_anchors.discard(frame[4])
                    self.anchors[frame[4]] = node
            elif cls is ev.AliasEvent:
                node = self.alias(event, len(stack))
            elif cls is ev.DocumentEndEvent:
                return root
            else:  # pragma: no cover - nothing else comes inside a document
                continue
            if not stack:
                root = node
                continue
            frame = stack[-1]
            if frame[2]:
                frame[0].items.append(node)
                continue
            key = frame[1]
            if key is None:
                if frame[5]:  # the value of a merge key '<<'
                    frame[5] = False
                    self.merge_value(frame, node)
                elif node.__class__ is not YScalar:
                    raise self.fatal(
                        "a mapping key must be a scalar (found a mapping or list)",
                        node.pos,
                        _path(stack),
                    )
                elif node.value is MERGE:
                    frame[5] = True
                else:
                    frame[1] = node
                continue
            frame[1] = None
            entries = frame[0].members
            text = key.text
            first = entries.get(text)
            if first is not None:
                self.problems.append(
                    Problem(
                        f"duplicate key '{text}' (first at {first[0].pos})",
                        key.pos,
                        join_key(_path(stack), text),
                    )
                )
                continue
            entries[text] = (key, node)

    def open(self, event: ev.CollectionStartEvent, is_map: bool, stack: list[list]) -> None:
        mark = event.start_mark
        node = YMap(self.file, mark) if is_map else YSeq(self.file, mark)
        stack.append([node, None, not is_map, None, event.anchor, False])
        if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            raise self.fatal(
                f"unsupported YAML tag {_tag_text(event.tag)}",
                node.pos,
                _path(stack[:-1]),
                hint=PLAIN_ONLY,
            )
        if len(stack) > MAX_DEPTH:
            raise self.abort(
                f"nesting deeper than {MAX_DEPTH} levels",
                node.pos,
                hint=f"podnet refuses documents nested more than {MAX_DEPTH} levels deep",
            )
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)

    def fatal(self, message: str, pos: Pos, path: str = "", hint: str | None = None) -> _Fatal:
        self.problems.append(Problem(message, pos, path, hint=hint))
        return _Fatal()

    def abort(self, message: str, pos: Pos, hint: str) -> _Abort:
        self.problems.append(Problem(message, pos, hint=hint))
        return _Abort()

    def scalar(self, event: ev.ScalarEvent) -> YScalar:
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            tag = _resolve(text) if event.implicit[0] else _STR
        if tag == _STR or tag == _T + "timestamp" or tag == _T + "value":
            value: object = text
        elif tag == _T + "int":
            if text.isascii() and text.isdigit() and (text[0] != "0" or len(text) == 1):
                value = int(text)  # the common case, without the constructor's round trip
            else:
                value = self.number(self.constructor.construct_yaml_int, tag, text, event)
        elif tag == _T + "null":
            value = None
        elif tag == _T + "bool":
            value = SafeConstructor.bool_values[text.lower()]
        elif tag == _T + "float":
            value = self.number(self.constructor.construct_yaml_float, tag, text, event)
        elif tag == _T + "merge":
            value = MERGE
        else:
            raise self.fatal(
                f"unsupported YAML tag {_tag_text(tag)}",
                self.pos(event.start_mark),
                hint=PLAIN_ONLY,
            )
        return YScalar(self.file, event.start_mark, value, text)

    def number(self, construct, tag: str, text: str, event: ev.ScalarEvent) -> object:
        try:
            return construct(ScalarNode(tag, text))
        except (ValueError, KeyError):
            kind = tag.rsplit(":", 1)[-1]
            raise self.fatal(f"invalid {kind} {text!r}", self.pos(event.start_mark)) from None

    def alias(self, event: ev.AliasEvent, depth: int) -> YNode:
        pos = self.pos(event.start_mark)
        name = event.anchor
        if name in self.open_anchors:
            raise self.fatal(
                f"recursive alias *{name}",
                pos,
                hint=f"*{name} stands inside the node anchored &{name}: it would contain itself",
            )
        node = self.anchors.get(name)
        if node is None:
            raise self.fatal(
                f"undefined alias *{name}",
                pos,
                hint=f"an alias must follow its anchor &{name} in the same document",
            )
        if isinstance(node, YMap | YSeq):
            size, height = self.measure(node)
            self.count(size, height + depth, pos)
        return node

    def measure(self, node: YNode) -> tuple[int, int]:
        """Nodes in ``node`` counting every alias in full, and its height (memoized)."""
        if isinstance(node, YScalar):
            return 1, 0
        found = self.measured.get(id(node))
        if found is None:
            children = (
                node.items if isinstance(node, YSeq) else [v for _, v in node.members.values()]
            )
            size, height = 1, 0
            for child in children:
                s, h = self.measure(child)
                size += s
                height = max(height, h)
            found = self.measured[id(node)] = (size, height + 1)
        return found

    def count(self, size: int, depth: int, pos: Pos) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANSION:
            raise self.fatal(
                f"aliases expand this document to more than {MAX_EXPANSION:,} nodes",
                pos,
                hint="podnet refuses documents whose aliases expand this far (an alias bomb?)",
            )
        if depth > MAX_DEPTH:
            raise self.fatal(
                f"nesting deeper than {MAX_DEPTH} levels (through an alias)",
                pos,
                hint=f"podnet refuses documents nested more than {MAX_DEPTH} levels deep",
            )

    def merge_value(self, frame: list, node: YNode) -> None:
        sources = node.items if isinstance(node, YSeq) else [node]
        for src in sources:
            if not isinstance(src, YMap):
                raise self.fatal("a merge key '<<' needs a mapping or a list of mappings", src.pos)
            if frame[3] is None:
                frame[3] = []
            frame[3].append(src)

    def apply_merges(self, node: YMap, merges: list[YMap]) -> None:
        # YAML merge keys (yaml.org/type/merge.html): explicit keys win, earlier merged maps win.
        merged: dict[str, tuple[YScalar, YNode]] = {}
        for src in merges:
            self.count(len(src.members), 0, src.pos)
            for k, v in src.members.items():
                merged.setdefault(k, v)
        for k in node.members:
            merged.pop(k, None)
        merged.update(node.members)
        node.members = merged


PLAIN_ONLY = "podnet reads plain YAML only (strings, numbers, booleans, null, maps, lists)"


def _tag_text(tag: str) -> str:
    """A tag as it was written: ``!!python/object`` rather than its long form.

    >>> _tag_text("tag:yaml.org,2002:python/object:os.system"), _tag_text("!Ref")
    ('!!python/object:os.system', '!Ref')
    """
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag


def _path(stack: list[list]) -> str:
    """The dotted path of the value being built (for messages)."""
    path = ""
    for node, key, *_ in stack:
        if isinstance(node, YSeq):
            path += f"[{len(node.items)}]"
        elif key is not None:
            path = join_key(path, key.text)
    return path


def join_key(path: str, key: str) -> str:
    """``path`` extended by a mapping key; keys that are not plain words go in brackets.

    >>> join_key("spec", "nodeName"), join_key("metadata.labels", "app.kubernetes.io/name")
    ('spec.nodeName', 'metadata.labels[app.kubernetes.io/name]')
    """
    if (
        key
        and (key[0].isalpha() or key[0] == "_")
        and key.replace("_", "").replace("-", "").isalnum()
    ):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


class _Merge:
    """Marks the merge key '<<'."""

    def __repr__(self) -> str:
        return "<<"


MERGE = _Merge()


# What the parser's wording usually means, for a reader who does not know YAML's grammar.
_SYNTAX_HINTS = (
    ("'\\t'", "indent with spaces: YAML does not allow tabs in indentation"),
    (
        "expected <block end>",
        "check the indentation: this line does not line up with the lines above",
    ),
    (
        "mapping values are not allowed",
        "quote a value that contains ': ', or check the indentation",
    ),
    ("end of stream", "a quote or bracket opened above is never closed"),
    ("expected ',' or", "a '{' or '[' opened above is not closed where expected"),
)


def _syntax_problem(file: str, exc: yaml.YAMLError, text: str = "") -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        # A character YAML does not allow (a control character, say); ``position`` indexes text.
        at = exc.position
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else 0
        return Problem(
            f"invalid YAML: character U+{char:04X} is not allowed in YAML text",
            Pos(file, line, col),
            hint="remove it, or write it as an escape inside double quotes: "
            + json.dumps(chr(char)),
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        hint = None
        if exc.context and exc.problem:
            hint = exc.context
            if exc.context_mark is not None:
                cm = exc.context_mark
                hint += f" at {Pos(file, cm.line + 1, cm.column + 1)}"
        advice = next((a for key, a in _SYNTAX_HINTS if key in message), None)
        if advice:
            hint = f"{advice} ({hint})" if hint else advice
        return Problem(message, pos, hint=hint)
    return Problem(f"invalid YAML: {exc}", Pos(file, 1, 1))


def parse_yaml(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every document of ``text`` as a positioned tree, and the problems found.

    >>> docs, problems = parse_yaml("kind: Pod\\nmetadata: {name: web}\\n", "p.yaml")
    >>> docs[0].root.members["metadata"][1].members["name"][1]
    YScalar('web' @ p.yaml:2:18)
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return _parse_with(fast, text, file)
        except yaml.YAMLError:
            pass  # parse again below: the pure-Python parser's messages do not depend on libyaml
    return _parse_with(yaml.SafeLoader, text, file)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic trees.

    Millions of new nodes would otherwise trigger full collections over and over (a third of the
    load time) although none of them can be part of a reference cycle.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_with(loader_class: type, text: str, file: str) -> tuple[list[Document], list[Problem]]:
    builder = _Builder(file)
    loader = None
    try:
        loader = loader_class(text)  # the reader checks every character here already
        builder.run(loader)
    except yaml.YAMLError as exc:
        if loader_class is not yaml.SafeLoader:
            raise
        builder.problems.append(_syntax_problem(file, exc, text))
    finally:
        if loader is not None:
            loader.dispose()
    return builder.docs, builder.problems

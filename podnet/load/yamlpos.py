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
_MAP_TAGS = frozenset((None, "!", _T + "map"))
_SEQ_TAGS = frozenset((None, "!", _T + "seq"))


class YScalar:
    """A scalar: ``value`` is str, int, float, bool or None; ``text`` as written."""

    __slots__ = ("pos", "value", "text")

    def __init__(self, pos: Pos, value: object, text: str):
        self.pos, self.value, self.text = pos, value, text

    def __repr__(self) -> str:
        return f"YScalar({self.value!r} @ {self.pos})"


class YMap:
    """A mapping: ``entries`` maps each key (its text) to (position of the key, value node)."""

    __slots__ = ("pos", "entries", "size", "height")

    def __init__(self, pos: Pos):
        self.pos = pos
        self.entries: dict[str, tuple[Pos, YNode]] = {}
        self.size = 1
        self.height = 1

    def __repr__(self) -> str:
        return f"YMap({list(self.entries)} @ {self.pos})"


class YSeq:
    """A sequence of nodes."""

    __slots__ = ("pos", "items", "size", "height")

    def __init__(self, pos: Pos):
        self.pos = pos
        self.items: list[YNode] = []
        self.size = 1
        self.height = 1

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
    return {k: plain(v) for k, (_, v) in node.entries.items()}


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
        self.resolver = Resolver()
        self.constructor = SafeConstructor()

    def pos(self, mark: yaml.Mark) -> Pos:
        return Pos(self.file, mark.line + 1, mark.column + 1)

    def run(self, loader: yaml.SafeLoader | yaml.CSafeLoader) -> None:
        try:
            self.document_loop(loader.get_event)
        except _Abort:
            return

    def document_loop(self, get) -> None:
        while True:
            event = get()
            if isinstance(event, ev.StreamEndEvent):
                return
            if isinstance(event, ev.DocumentStartEvent):
                self.document(get, self.pos(event.start_mark))

    def document(self, get, start: Pos) -> None:
        # Stack frames: [node, pending key (text, pos) or None, merges, key-is-merge]
        self.anchors: dict[str, YNode] = {}
        self.open_anchors: set[str] = set()
        self.expanded = 0
        stack: list[list] = []
        root: YNode | None = None
        ok = True
        try:
            while True:
                event = get()
                if isinstance(event, ev.DocumentEndEvent):
                    break
                node = self.step(event, stack)
                if node is not None:
                    if stack:
                        self.attach(stack, node)
                    else:
                        root = node
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

    def fatal(self, message: str, pos: Pos, path: str = "", hint: str | None = None) -> _Fatal:
        self.problems.append(Problem(message, pos, path, hint=hint))
        return _Fatal()

    def abort(self, message: str, pos: Pos, hint: str) -> _Abort:
        self.problems.append(Problem(message, pos, hint=hint))
        return _Abort()

    def step(self, event: ev.Event, stack: list[list]) -> YNode | None:
        """Handle one event; return a node when one is complete."""
        if isinstance(event, ev.ScalarEvent):
            node: YNode = self.scalar(event)
        elif isinstance(event, ev.MappingStartEvent | ev.SequenceStartEvent):
            is_map = isinstance(event, ev.MappingStartEvent)
            pos = self.pos(event.start_mark)
            stack.append([YMap(pos) if is_map else YSeq(pos), None, [], False, event.anchor])
            if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                raise self.fatal(f"unsupported YAML tag {event.tag}", pos, _path(stack))
            if len(stack) > MAX_DEPTH:
                raise self.abort(
                    f"nesting deeper than {MAX_DEPTH} levels",
                    pos,
                    hint=f"podnet refuses documents nested more than {MAX_DEPTH} levels deep",
                )
            if event.anchor is not None:
                self.open_anchors.add(event.anchor)
            return None
        elif isinstance(event, ev.MappingEndEvent | ev.SequenceEndEvent):
            frame = stack.pop()
            node = frame[0]
            if frame[2]:
                self.apply_merges(node, frame[2])
            anchor = frame[4]
            if anchor is not None:
                self.open_anchors.discard(anchor)
                self.anchors[anchor] = node
            return node
        elif isinstance(event, ev.AliasEvent):
            return self.alias(event, len(stack))
        else:  # pragma: no cover - the parser emits nothing else inside a document
            return None
        if event.anchor is not None:
            self.anchors[event.anchor] = node
        return node

    def scalar(self, event: ev.ScalarEvent) -> YScalar:
        pos = self.pos(event.start_mark)
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            tag = self.resolver.resolve(ScalarNode, text, event.implicit)
        if tag == _T + "str" or tag == _T + "timestamp":
            value: object = text
        elif tag == _T + "merge":
            value = MERGE
        elif tag == _T + "null":
            value = None
        elif tag == _T + "bool":
            value = self.constructor.construct_yaml_bool(ScalarNode(tag, text))
        elif tag == _T + "int":
            try:
                value = self.constructor.construct_yaml_int(ScalarNode(tag, text))
            except ValueError:
                raise self.fatal(f"invalid integer {text!r} for tag !!int", pos) from None
        elif tag == _T + "float":
            try:
                value = self.constructor.construct_yaml_float(ScalarNode(tag, text))
            except ValueError:
                raise self.fatal(f"invalid float {text!r} for tag !!float", pos) from None
        else:
            raise self.fatal(
                f"unsupported YAML tag {tag}",
                pos,
                hint="podnet reads plain YAML only (strings, numbers, booleans, null, maps, lists)",
            )
        return YScalar(pos, value, text)

    def alias(self, event: ev.AliasEvent, depth: int) -> YNode:
        pos = self.pos(event.start_mark)
        name = event.anchor
        if name in self.open_anchors:
            raise self.fatal(f"recursive alias *{name}", pos)
        node = self.anchors.get(name)
        if node is None:
            raise self.fatal(f"undefined alias *{name}", pos)
        if isinstance(node, YMap | YSeq):
            self.count(node.size, node.height + depth, pos)
        return node

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

    def attach(self, stack: list[list], node: YNode) -> None:
        frame = stack[-1]
        parent = frame[0]
        if isinstance(node, YMap | YSeq):
            parent.size += node.size
            parent.height = max(parent.height, node.height + 1)
        else:
            parent.size += 1
        if isinstance(parent, YSeq):
            parent.items.append(node)
            return
        if frame[3]:  # the value of a merge key '<<'
            frame[3] = False
            self.merge_value(frame, node)
            return
        key = frame[1]
        if key is None:
            if not isinstance(node, YScalar):
                raise self.fatal("a mapping key must be a scalar (found a mapping or list)", node.pos)
            if node.value is MERGE:
                frame[3] = True
                return
            frame[1] = (node.text, node.pos)
            return
        frame[1] = None
        text, kpos = key
        first = parent.entries.get(text)
        if first is not None:
            self.problems.append(
                Problem(f"duplicate key '{text}' (first at {first[0]})", kpos, _path(stack))
            )
            return
        parent.entries[text] = (kpos, node)

    def merge_value(self, frame: list, node: YNode) -> None:
        sources = node.items if isinstance(node, YSeq) else [node]
        for src in sources:
            if not isinstance(src, YMap):
                raise self.fatal("a merge key '<<' needs a mapping or a list of mappings", src.pos)
            frame[2].append(src)

    def apply_merges(self, node: YMap, merges: list[YMap]) -> None:
        # YAML merge keys (yaml.org/type/merge.html): explicit keys win, earlier merged maps win.
        merged: dict[str, tuple[Pos, YNode]] = {}
        for src in merges:
            self.count(len(src.entries), 0, src.pos)
            for k, v in src.entries.items():
                merged.setdefault(k, v)
        for k, v in node.entries.items():
            merged.pop(k, None)
        merged.update(node.entries)
        node.entries = merged


def _path(stack: list[list]) -> str:
    """The dotted path of the value being built (for messages)."""
    path = ""
    for node, key, *_ in stack:
        if isinstance(node, YSeq):
            path += f"[{len(node.items)}]"
        elif key is not None:
            path = join_key(path, key[0])
    return path


def join_key(path: str, key: str) -> str:
    """``path`` extended by a mapping key; keys that are not plain words go in brackets.

    >>> join_key("spec", "nodeName"), join_key("metadata.labels", "app.kubernetes.io/name")
    ('spec.nodeName', 'metadata.labels[app.kubernetes.io/name]')
    """
    if key and (key[0].isalpha() or key[0] == "_") and key.replace("_", "").replace("-", "").isalnum():
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


class _Merge:
    """Marks the merge key '<<'."""

    def __repr__(self) -> str:
        return "<<"


MERGE = _Merge()


def _syntax_problem(file: str, exc: yaml.YAMLError) -> Problem:
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
        return Problem(message, pos, hint=hint)
    return Problem(f"invalid YAML: {exc}", Pos(file, 1, 1))


def parse_yaml(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every document of ``text`` as a positioned tree, and the problems found.

    >>> docs, problems = parse_yaml("kind: Pod\\nmetadata: {name: web}\\n", "p.yaml")
    >>> docs[0].root.entries["metadata"][1].entries["name"][1]
    YScalar('web' @ p.yaml:2:18)
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return _parse_with(fast, text, file)
        except yaml.YAMLError:
            pass  # parse again below: the pure-Python parser's messages do not depend on libyaml
    return _parse_with(yaml.SafeLoader, text, file)


def _parse_with(loader_class: type, text: str, file: str) -> tuple[list[Document], list[Problem]]:
    builder = _Builder(file)
    loader = loader_class(text)
    try:
        builder.run(loader)
    except yaml.YAMLError as exc:
        if loader_class is not yaml.SafeLoader:
            raise
        builder.problems.append(_syntax_problem(file, exc))
    finally:
        loader.dispose()
    return builder.docs, builder.problems

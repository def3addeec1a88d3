"""Typed access to a positioned YAML mapping that validates as it reads.

A ``Cursor`` wraps one mapping of an object. Each accessor checks the value's type, records where
the value was written (``Obj.paths``, by dotted path relative to the object's root) and, when
something is wrong, appends a Problem to the shared ``Ctx`` instead of raising, so one run reports
every problem. Accessors return None (or the default) after a problem.

Like Kubernetes' JSON decoding, an explicit ``null`` counts as absent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError

from podnet.errors import Problem, did_you_mean
from podnet.load.yamlpos import YMap, YNode, YScalar, YSeq, join_key
from podnet.model.base import EMPTY, FrozenDict, Pos


class Ctx:
    """Problems of one load run, errors and warnings, in the order found."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.error_count = 0
        self.joins: dict[tuple[str, str], str] = {}  # (path, key) -> joined path, reused a lot

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        if problem.severity == "error":
            self.error_count += 1

    def error(self, message: str, pos: Pos | None, path: str = "", hint: str | None = None) -> None:
        self.add(Problem(message, pos, path, hint))

    def warn(self, message: str, pos: Pos | None, path: str = "", hint: str | None = None) -> None:
        self.add(Problem(message, pos, path, hint, severity="warning"))

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity != "error")


class Obj:
    """One object being read: where its values were written, and how to name its paths.

    ``prefix`` is the object's path inside its document (``items[3]`` for a List item), put in
    front of paths in messages; ``paths`` are relative to the object itself.
    """

    __slots__ = ("ctx", "prefix", "paths", "pos")

    def __init__(self, ctx: Ctx, pos: Pos, prefix: str = ""):
        self.ctx = ctx
        self.pos = pos
        self.prefix = prefix
        self.paths: dict[str, Pos] = {}

    def full(self, path: str) -> str:
        if not self.prefix:
            return path
        if not path:
            return self.prefix
        return f"{self.prefix}{path}" if path.startswith("[") else f"{self.prefix}.{path}"

    def error(self, message: str, pos: Pos | None, path: str, hint: str | None = None) -> None:
        self.ctx.error(message, pos, self.full(path), hint)

    def warn(self, message: str, pos: Pos | None, path: str, hint: str | None = None) -> None:
        self.ctx.warn(message, pos, self.full(path), hint)

    def frozen_paths(self) -> FrozenDict:
        return FrozenDict(self.paths)


def describe(node: YNode) -> str:
    """How a found value is named in messages.

    >>> describe(YScalar.at(Pos("f", 1, 1), "abc", "abc")), describe(YScalar.at(Pos("f", 1, 1), 8, "8"))
    ("str 'abc'", 'int 8')
    """
    if isinstance(node, YMap):
        return "mapping"
    if isinstance(node, YSeq):
        return "list"
    v = node.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"bool {node.text}"
    if isinstance(v, int):
        return f"int {node.text}"
    if isinstance(v, float):
        return f"float {node.text}"
    text = str(v)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"str {text!r}"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Cursor:
    """A mapping of an object, at ``path``; see the module docstring."""

    __slots__ = ("node", "path", "obj")

    def __init__(self, node: YMap, path: str, obj: Obj):
        self.node, self.path, self.obj = node, path, obj

    # ------------------------------------------------------------------------------ basics

    @property
    def pos(self) -> Pos:
        return self.node.pos

    def sub(self, key: str) -> str:
        joins = self.obj.ctx.joins
        found = joins.get((self.path, key))
        if found is None:
            found = join_key(self.path, key)
            if len(joins) < 100_000:
                joins[self.path, key] = found
        return found

    def error(self, message: str, key: str | None = None, hint: str | None = None) -> None:
        """A problem with the value at ``key`` (or with this mapping)."""
        node = self.raw(key) if key is not None else None
        pos = node.pos if node is not None else self.node.pos
        self.obj.error(message, pos, self.sub(key) if key is not None else self.path, hint)

    def warn(self, message: str, key: str | None = None, hint: str | None = None) -> None:
        node = self.raw(key) if key is not None else None
        pos = node.pos if node is not None else self.node.pos
        self.obj.warn(message, pos, self.sub(key) if key is not None else self.path, hint)

    def raw(self, key: str) -> YNode | None:
        entry = self.node.members.get(key)
        return None if entry is None else entry[1]

    def has(self, key: str) -> bool:
        """True when ``key`` is present with a non-null value."""
        node = self.raw(key)
        return node is not None and not (isinstance(node, YScalar) and node.value is None)

    def get(self, key: str, required: bool = False) -> YNode | None:
        """The value node at ``key`` (None when absent or null), its position recorded."""
        entry = self.node.members.get(key)
        if entry is None or (isinstance(entry[1], YScalar) and entry[1].value is None):
            if required:
                self.obj.error("missing required value", self.node.pos, self.sub(key))
            return None
        node = entry[1]
        self.obj.paths[self.sub(key)] = node.pos
        return node

    def known(self, read: Collection[str], ignored: Collection[str] = ()) -> None:
        """Report every key that is neither read by podnet nor known to Kubernetes here."""
        for key, (knode, _) in self.node.members.items():
            if key in read or key in ignored:
                continue
            self.obj.error(
                f"unknown key '{key}'",
                knode.pos,
                self.sub(key),
                did_you_mean(key, sorted({*read, *ignored})),
            )

    def wrong(self, key: str, node: YNode, expected: str) -> None:
        hint = None
        if expected == "string" and isinstance(node, YScalar):
            hint = f'quote it to make it a string: "{node.text}"'
        self.obj.error(
            f"wrong type (found {describe(node)}, expected {expected})",
            node.pos,
            self.sub(key),
            hint,
        )

    # ------------------------------------------------------------------------------ scalars

    def str(
        self,
        key: str,
        required: bool = False,
        default: str | None = None,
        choices: Iterable[str] | None = None,
    ) -> str | None:
        """A string value; with ``choices``, one of them (else an error with a hint)."""
        node = self.get(key, required)
        if node is None:
            return default
        if not isinstance(node, YScalar) or not isinstance(node.value, str):
            self.wrong(key, node, "string")
            return default
        value = node.value
        if choices is not None:
            options = list(choices)
            if value not in options:
                self.obj.error(
                    f"invalid value {value!r} (expected one of {', '.join(options)})",
                    node.pos,
                    self.sub(key),
                    did_you_mean(value, options),
                )
                return default
        return value

    def int(
        self,
        key: str,
        required: bool = False,
        default: int | None = None,
        lo: int | None = None,
        hi: int | None = None,
    ) -> int | None:
        """An integer value, checked against ``lo``..``hi`` when given."""
        node = self.get(key, required)
        if node is None:
            return default
        if not isinstance(node, YScalar) or not _is_int(node.value):
            self.wrong(key, node, "integer")
            return default
        return self.check_range(key, node, node.value, lo, hi, default)

    def check_range(
        self, key: str, node: YNode, value: int, lo: int | None, hi: int | None, default: int | None
    ) -> int | None:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            want = f"{lo}..{hi}" if lo is not None and hi is not None else f">= {lo}"
            if lo is None:
                want = f"<= {hi}"
            self.obj.error(f"{value} is out of range (expected {want})", node.pos, self.sub(key))
            return default
        return value

    def int_or_str(
        self, key: str, lo: int | None = None, hi: int | None = None
    ) -> int | str | None:
        """An IntOrString value (a port number or a port name)."""
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YScalar) or not isinstance(node.value, int | str):
            self.wrong(key, node, "integer or string")
            return None
        if isinstance(node.value, bool):
            self.wrong(key, node, "integer or string")
            return None
        if isinstance(node.value, int):
            return self.check_range(key, node, node.value, lo, hi, None)
        return node.value

    def bool(self, key: str, default: bool = False) -> bool:
        node = self.get(key)
        if node is None:
            return default
        if not isinstance(node, YScalar) or not isinstance(node.value, bool):
            self.wrong(key, node, "boolean")
            return default
        return node.value

    def scalar(self, key: str) -> YScalar | None:
        """Any scalar (for values with their own syntax, e.g. quantities)."""
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YScalar):
            self.wrong(key, node, "a scalar")
            return None
        return node

    # ------------------------------------------------------------------------------ collections

    def map(self, key: str, required: bool = False) -> Cursor | None:
        """The mapping at ``key`` as a Cursor."""
        node = self.get(key, required)
        if node is None:
            return None
        if not isinstance(node, YMap):
            self.wrong(key, node, "mapping")
            return None
        return Cursor(node, self.sub(key), self.obj)

    def seq(self, key: str, required: bool = False) -> tuple[str, YSeq] | None:
        node = self.get(key, required)
        if node is None:
            return None
        if not isinstance(node, YSeq):
            self.wrong(key, node, "list")
            return None
        return self.sub(key), node

    def maps(self, key: str, required: bool = False) -> Iterator[Cursor]:
        """Each mapping of the list at ``key`` as a Cursor (non-mappings are reported)."""
        found = self.seq(key, required)
        if found is None:
            return
        path, seq = found
        for i, item in enumerate(seq.items):
            ipath = f"{path}[{i}]"
            if isinstance(item, YScalar) and item.value is None:
                item_map = YMap.at(item.pos)  # `- ` alone: an empty object, as JSON null would be
            elif not isinstance(item, YMap):
                self.obj.error(
                    f"wrong type (found {describe(item)}, expected mapping)", item.pos, ipath
                )
                continue
            else:
                item_map = item
            self.obj.paths[ipath] = item.pos
            yield Cursor(item_map, ipath, self.obj)

    def strs(self, key: str) -> Iterator[tuple[str, Pos, str]]:
        """Each string of the list at ``key`` as (value, position, path)."""
        found = self.seq(key)
        if found is None:
            return
        path, seq = found
        for i, item in enumerate(seq.items):
            ipath = f"{path}[{i}]"
            if not isinstance(item, YScalar) or not isinstance(item.value, str):
                hint = None
                if isinstance(item, YScalar) and item.value is not None:
                    hint = f'quote it to make it a string: "{item.text}"'
                self.obj.error(
                    f"wrong type (found {describe(item)}, expected string)", item.pos, ipath, hint
                )
                continue
            self.obj.paths[ipath] = item.pos
            yield item.value, item.pos, ipath

    def str_map(self, key: str) -> FrozenDict:
        """A map of strings to strings (labels, annotations, selectors)."""
        node = self.get(key)
        if node is None:
            return EMPTY
        if not isinstance(node, YMap):
            self.wrong(key, node, "mapping")
            return EMPTY
        cur = Cursor(node, self.sub(key), self.obj)
        out: dict[str, str] = {}
        for k in node.members:
            v = cur.get(k)
            if v is None:
                out[k] = ""  # `key:` with no value: JSON null into a string is ""
            elif isinstance(v, YScalar) and isinstance(v.value, str):
                out[k] = v.value
            else:
                cur.wrong(k, v, "string")
        return FrozenDict(out)

    def keypos(self, key: str) -> Pos:
        entry = self.node.members.get(key)
        return entry[0].pos if entry else self.node.pos

    # ------------------------------------------------------------------------------ addresses

    def ipv4(self, key: str, required: bool = False) -> IPv4Address | None:
        value = self.str(key, required)
        if value is None:
            return None
        return parse_ipv4(value, self.obj, self.raw(key).pos, self.sub(key))

    def network(self, key: str, strict: bool = True, required: bool = False) -> IPv4Network | None:
        value = self.str(key, required)
        if value is None:
            return None
        return parse_network(value, self.obj, self.raw(key).pos, self.sub(key), strict)


def parse_ipv4(value: str, obj: Obj, pos: Pos, path: str) -> IPv4Address | None:
    """An IPv4 address, or None after reporting a problem."""
    try:
        return IPv4Address(value)
    except AddressValueError:
        hint = "podnet emulates IPv4 only" if ":" in value else None
        obj.error(f"invalid IPv4 address {value!r}", pos, path, hint)
        return None


def parse_network(value: str, obj: Obj, pos: Pos, path: str, strict: bool) -> IPv4Network | None:
    """An IPv4 CIDR; ``strict`` refuses host bits (with a hint naming the network)."""
    text = value.strip() if not strict else value
    if "/" not in text:
        obj.error(f"invalid CIDR {value!r} (expected address/prefix, e.g. 10.0.0.0/16)", pos, path)
        return None
    try:
        net = IPv4Network(text, strict=False)
    except (AddressValueError, NetmaskValueError, ValueError):
        hint = "podnet emulates IPv4 only" if ":" in value else None
        obj.error(f"invalid CIDR {value!r}", pos, path, hint)
        return None
    if strict and net.network_address != IPv4Address(text.split("/", 1)[0]):
        obj.error(
            f"invalid CIDR {value!r}: host bits are set",
            pos,
            path,
            f"did you mean '{net}'?",
        )
        return None
    return net

"""Small immutable building blocks shared by every model module."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Pos:
    """Where a value was written: file, 1-based line and 1-based column.

    >>> str(Pos("demo.yaml", 12, 5))
    'demo.yaml:12:5'
    """

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class FrozenDict(Mapping[str, Any]):
    """A read-only, hashable mapping that keeps insertion order.

    >>> d = FrozenDict({"app": "web"})
    >>> d["app"], len(d), hash(d) == hash(FrozenDict(app="web"))
    ('web', 1, True)
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), **kw: Any):
        self._data: dict[str, Any] = dict(data, **kw)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        # Mapping.get goes through __getitem__ and a KeyError: the dict answers directly
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    # the dict's own (read-only) views and membership test: Mapping's go through Python-level
    # __iter__ and __getitem__, and label selectors test every Pod's labels
    def __contains__(self, key: object) -> bool:
        return key in self._data

    def items(self):  # type: ignore[override]
        return self._data.items()

    def keys(self):  # type: ignore[override]
        return self._data.keys()

    def values(self):  # type: ignore[override]
        return self._data.values()

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._data.items(), key=lambda kv: kv[0])))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


EMPTY = FrozenDict()

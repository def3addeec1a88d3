"""The result of ``podnet reach`` (podnet.analysis.reach): :class:`Reach`, its cells and
classes, the summary counts, and the Pod-level answers expanded on demand by tracing one pair
of Pods through the engine (:meth:`Reach.cell`, :meth:`Reach.trace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

from podnet.analysis.reach_classes import _port_of
from podnet.errors import Problem, UsageError
from podnet.model.cluster import Cluster, Pod
from podnet.trace.endpoints import SrcRef
from podnet.trace.resolve import Target
from podnet.trace.run import trace_between

SYMBOL = {"allow": ".", "deny": "X", "partial": "~", "none": "?", "self": "-"}
POD_CELLS_MAX = 4_000_000
"""Pod x Pod cells up to which :attr:`Reach.cells` lists them (beyond: gigabytes)."""


@dataclass(frozen=True, slots=True)
class Cell:
    verdict: str  # allow | deny | partial | none | self
    disposition: str = ""
    dst: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PodClass:
    """Pods the network cannot tell apart, in one role (source or destination)."""

    id: str  # S1... / D1...
    members: tuple[str, ...]  # Pod keys, sorted
    protocol: str | None = None  # destination classes: the probed port
    port: int | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({k.partition("/")[0] for k in self.members}))


# class-pair codes: one character per cell of a class row
ALLOW, DENY_IN, DENY_EG, TRACED, SELF = "a", "i", "e", "t", "s"
_CODE_CELL = {
    ALLOW: Cell("allow"),
    DENY_IN: Cell("deny", "DENIED_INGRESS"),
    DENY_EG: Cell("deny", "DENIED_EGRESS"),
    SELF: Cell("self"),
}
_SYMBOLS = str.maketrans({ALLOW: ".", DENY_IN: "X", DENY_EG: "X", SELF: "-"})


@dataclass(frozen=True, slots=True, eq=False)
class Reach:
    """The table: classes, Pod -> class, class x class verdicts, counts; Pod cells on demand."""

    port: int | None
    protocol: str | None
    via_service: bool
    sources: tuple[str, ...]
    dests: tuple[str, ...]
    src_of: tuple[int, ...]  # per source: its source class
    dst_of: tuple[int, ...]
    src_classes: tuple[PodClass, ...]
    dst_classes: tuple[PodClass, ...]
    rows: tuple[str, ...]  # per source class: one code per destination class
    traced: dict[tuple[int, int], Cell]  # class pairs with a traced (or special) cell
    traces: int
    method: str  # trace | policy
    counts: dict[str, int]
    checked: int = 0
    disagreements: tuple[tuple[str, str, str, str], ...] = ()  # (S, D, evaluated, traced)
    loaded: object = field(default=None, repr=False)
    reasons: object = field(default=None, repr=False)  # (i, j, direction) -> reason text
    reps: dict = field(default_factory=dict, repr=False)  # class pair -> the Pod pair traced

    @property
    def classes(self) -> int:
        return len(self.src_classes) + len(self.dst_classes)

    def class_cell(self, i: int, j: int) -> Cell:
        """The verdict of source class ``i`` to destination class ``j``."""
        code = self.rows[i][j]
        if code == TRACED:
            return self.traced[(i, j)]
        cell = _CODE_CELL[code]
        if cell.verdict == "deny" and self.reasons is not None:
            direction = "ingress" if code == DENY_IN else "egress"
            return Cell("deny", cell.disposition, "", self.reasons(i, j, direction))
        return cell

    def symbols(self, i: int) -> str:
        """Source class ``i``'s row as cell symbols (``.X~?-``), one per destination class."""
        row = self.rows[i].translate(_SYMBOLS)
        if TRACED in row:
            row = "".join(
                SYMBOL[self.traced[(i, j)].verdict] if c == TRACED else c for j, c in enumerate(row)
            )
        return row

    @property
    def cells(self) -> tuple[tuple[Cell, ...], ...]:
        """The Pod x Pod table (each cell its class pair's verdict): for small tables only."""
        if len(self.sources) * len(self.dests) > POD_CELLS_MAX:
            raise UsageError(
                Problem(
                    f"{len(self.sources):,} x {len(self.dests):,} Pods are too many cells to list",
                    hint="ask verdict(src, dst), cell(src, dst) (traced) or the classes",
                )
            )
        targets = _dst_texts(self)
        out = []
        for s, si in zip(self.sources, self.src_of, strict=True):
            row = []
            for d, dj, text in zip(self.dests, self.dst_of, targets, strict=True):
                if s == d:
                    row.append(_CODE_CELL[SELF])
                    continue
                c = self.class_cell(si, dj)
                if c.verdict not in ("allow", "self"):
                    rep = self.reps.get((si, dj))
                    reason = c.reason
                    if rep is not None and rep != (s, d) and reason:
                        # the trace was of another pair of the same two classes: say which
                        reason = f"(as traced for {rep[0]} -> {rep[1]}, the same classes) {reason}"
                    c = Cell(c.verdict, c.disposition, text if text and c.dst else c.dst, reason)
                row.append(c)
            out.append(tuple(row))
        return tuple(out)

    def verdict(self, src: str, dst: str) -> Cell:
        """The class-level answer for two Pods (``NS/NAME``) of the table."""
        if src == dst:
            return _CODE_CELL[SELF]
        i, j = self._index(src, dst)
        return self.class_cell(self.src_of[i], self.dst_of[j])

    def trace(self, src: str, dst: str):
        """Trace the connection between two Pods of the table through the engine."""
        i, j = self._index(src, dst)
        loaded = self.loaded
        pods = {p.key: p for p in loaded.cluster.pods if p.key in (src, dst)}
        return _trace(loaded, pods[src], pods[dst], self.port, self.protocol, self.via_service)

    def cell(self, src: str, dst: str) -> Cell:
        """The Pod-level answer for two Pods of the table, traced."""
        if src == dst:
            return _CODE_CELL[SELF]
        t = self.trace(src, dst)
        return (
            Cell("none", reason=f"no Service selects {dst} on that port") if t is None else _cell(t)
        )

    def _index(self, src: str, dst: str) -> tuple[int, int]:
        try:
            return self.sources.index(src), self.dests.index(dst)
        except ValueError:
            raise UsageError(
                Problem(f"{src} -> {dst} is not a pair of this table", hint="pick Pods it holds")
            ) from None

    def summary(self) -> dict:
        return dict(self.counts)


def _dst_texts(r: Reach) -> list[str]:
    if r.via_service or r.loaded is None:
        return [""] * len(r.dests)
    pods = {p.key: p for p in r.loaded.cluster.pods}
    out = []
    for d in r.dests:
        num, proto = _port_of(pods[d], r.port, r.protocol)
        out.append(f"{pods[d].ip}:{num}/{proto}")
    return out


def _target(cluster: Cluster, pod: Pod, port: int | None, protocol: str | None,
            via_service: bool) -> Target | None:  # fmt: skip
    num, proto = _port_of(pod, port, protocol)
    if not via_service:
        return Target(pod.ip, num, proto, f"pod/{pod.key}:{num}", pod=pod)
    # (imported here: podnet.analysis.reach_service builds on this module's cell codes)
    from podnet.analysis.reach_service import service_target

    return service_target(cluster, pod, num, proto)


def _cell(trace) -> Cell:
    verdict = {"delivered": "allow", "dropped": "deny", "partial": "partial"}[trace.verdict]
    p = trace.paths[0] if trace.paths else None
    bad = next((x for x in trace.paths if not x.delivered), p)
    dst = f"{trace.packet.dst}:{trace.packet.dport}/{trace.packet.proto}"
    return Cell(
        verdict,
        bad.disposition if bad else "",
        dst,
        bad.forward.reason if bad and verdict != "allow" else "",
    )


def _trace(loaded, s: Pod, d: Pod, port, protocol, via_service, *, replies: bool = True):
    """The engine's trace of ``s`` -> ``d`` (None: no Service selects ``d`` on that port)."""
    target = _target(loaded.cluster, d, port, protocol, via_service)
    if target is None:
        return None
    origin = loaded.resolver().origin(SrcRef("pod", s.namespace, s.name, text=s.key))
    return trace_between(
        loaded.network, origin, target, src_text=s.key, dst_text=target.label, replies=replies
    )


def _evaluate(loaded, s: Pod, d: Pod, port, protocol, via_service) -> Cell:
    # a cell is decided by the forward legs (Trace.verdict, the first path not delivered):
    # the replies would cost as much again
    t = _trace(loaded, s, d, port, protocol, via_service, replies=False)
    if t is None:
        return Cell("none", reason=f"no Service selects {d.key} on that port")
    return _cell(t)


def _count(r: Reach, self_pairs: dict[tuple[int, int], int]) -> dict:
    """Summary counts from class sizes (multiplied), self pairs taken out."""
    sizes = [c.size for c in r.dst_classes]
    by = {"allow": 0, "deny": 0, "partial": 0, "none": 0, "self": 0}
    # destination classes grouped by size: a row's cells of one size are picked out and
    # counted with str.count (C loops over millions of cells, not Python ones)
    groups: dict[int, list[int]] = {}
    for j, size in enumerate(sizes):
        groups.setdefault(size, []).append(j)
    pick = [(size, itemgetter(*js), len(js) == 1) for size, js in groups.items()]
    for i, row in enumerate(r.rows):
        n = r.src_classes[i].size
        for size, get, one in pick:
            part = get(row) if one else "".join(get(row))
            for code in (ALLOW, DENY_IN, DENY_EG):
                by[_CODE_CELL[code].verdict] += n * size * part.count(code)
        for code in (TRACED, SELF):
            j = row.find(code)
            while j != -1:
                v = r.traced[(i, j)].verdict if code == TRACED else "self"
                by[v] += n * sizes[j]
                j = row.find(code, j + 1)
    for (i, j), k in self_pairs.items():
        code = r.rows[i][j]
        v = r.traced[(i, j)].verdict if code == TRACED else _CODE_CELL[code].verdict
        by[v] -= k
        by["self"] += k
    return {
        "pairs": by["allow"] + by["deny"] + by["partial"] + by["none"],
        "allowed": by["allow"],
        "denied": by["deny"],
        "partial": by["partial"],
        "unreachable": by["none"],
        "self": by["self"],
        "classes": r.classes,
        "traces": r.traces,
        "source_classes": len(r.src_classes),
        "destination_classes": len(r.dst_classes),
        "class_pairs": len(r.src_classes) * len(r.dst_classes),
        "method": r.method,
        "checked": r.checked,
        "disagreements": len(r.disagreements),
    }

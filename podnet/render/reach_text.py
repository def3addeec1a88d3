"""``podnet reach`` as a truth table: rows are sources, columns destinations.

Small tables (at most podnet.analysis.reach.POD_LEVEL_MAX cells) show every Pod; larger ones
(or ``classes=True``) the classes: each source and destination class with its size, first
member and namespaces, then per destination class the source classes it admits.

>>> from podnet.analysis.reach import Cell, PodClass, Reach
>>> cls = (PodClass("S1", ("x/a",)), PodClass("S2", ("x/b",)))
>>> dcl = (PodClass("D1", ("x/a",), "tcp", 80), PodClass("D2", ("x/b",), "tcp", 80))
>>> r = Reach(80, "tcp", False, ("x/a", "x/b"), ("x/a", "x/b"), (0, 1), (0, 1), cls, dcl,
...           ("si", "as"), {}, 2, "trace", {"pairs": 2, "allowed": 1, "denied": 1,
...           "partial": 0, "unreachable": 0, "self": 2, "classes": 4, "traces": 2})
>>> print(render_reach(r), end="")
reach: tcp port 80 to the Pod IP; 2 sources x 2 destinations
     x/a  x/b
x/a   -    X
x/b   .    -
. allowed  X denied  - self (not probed)
summary: 1 allowed, 1 denied of 2 pairs (2 self pairs not probed); 4 classes, 2 traces
"""

from __future__ import annotations

from podnet.analysis.reach import POD_LEVEL_MAX, SYMBOL, Reach

LEGEND = {
    ".": "allowed",
    "X": "denied",
    "~": "some paths only",
    "?": "no Service",
    "-": "self (not probed)",
}
MAX_HEADER = 12
SHOW_NAMESPACES = 3


def pod_level(r: Reach, classes: bool = False) -> bool:
    """Whether the outputs show every Pod (else the classes)."""
    return not classes and len(r.sources) * len(r.dests) <= POD_LEVEL_MAX


def render_reach(r: Reach, classes: bool = False, members: bool = False) -> str:
    out = [_head(r)]
    if pod_level(r, classes):
        cells = r.cells
        out += _pod_table(r, cells)
        used = {SYMBOL[c.verdict] for row in cells for c in row}
    else:
        body, used = _class_table(r, members)
        out += body
    out.append("  ".join(f"{s} {w}" for s, w in LEGEND.items() if s in used or s in ".X"))
    out.append(_summary(r))
    return "\n".join(out) + "\n"


def _head(r: Reach) -> str:
    if r.port is not None:
        what = f"{r.protocol or 'tcp'} port {r.port}"
    else:
        what = f"{r.protocol + ' on ' if r.protocol else ''}each destination Pod's first port"
    via = "through each destination's Service" if r.via_service else "to the Pod IP"
    return f"reach: {what} {via}; {len(r.sources):,} sources x {len(r.dests):,} destinations"


def _summary(r: Reach) -> str:
    s = r.summary()
    extra = "".join(f", {s[k]:,} {k}" for k in ("partial", "unreachable") if s[k])
    line = (f"summary: {s['allowed']:,} allowed, {s['denied']:,} denied{extra} of {s['pairs']:,} "
            f"pairs ({s['self']:,} self pairs not probed); {s['classes']:,} classes, "
            f"{s['traces']:,} traces")  # fmt: skip
    if r.method == "policy":
        line += (f"; {s['class_pairs']:,} class pairs by policy evaluation, {s['checked']} "
                 f"checked by tracing, {s['disagreements']} disagreeing")  # fmt: skip
    return line


def _pod_table(r: Reach, cells) -> list[str]:
    out = []
    numbered = max(len(k) for k in r.dests) > MAX_HEADER
    heads = [str(i + 1) if numbered else k for i, k in enumerate(r.dests)]
    width = max(len(h) for h in heads)
    left = max(len(k) for k in r.sources)
    out.append(" " * left + "  " + "  ".join(h.center(width) for h in heads).rstrip())
    for key, row in zip(r.sources, cells, strict=True):
        text = "  ".join(SYMBOL[c.verdict].center(width) for c in row)
        out.append(f"{key.ljust(left)}  {text}".rstrip())
    if numbered:
        out += [f"  {i + 1}: {k}" for i, k in enumerate(r.dests)]
    return out


def _where(c) -> str:
    ns = c.namespaces()
    more = f" +{len(ns) - SHOW_NAMESPACES} more" if len(ns) > SHOW_NAMESPACES else ""
    return ", ".join(ns[:SHOW_NAMESPACES]) + more


def _ranges(ids: list[int], prefix: str) -> str:
    """``[0, 1, 2, 5]`` -> ``S1-S3,S6``."""
    out, start = [], None
    for n, i in enumerate(ids):
        if start is None:
            start = i
        if n + 1 == len(ids) or ids[n + 1] != i + 1:
            out.append(f"{prefix}{start + 1}" + (f"-{prefix}{i + 1}" if i > start else ""))
            start = None
    return ",".join(out)


def _class_table(r: Reach, members: bool) -> tuple[list[str], set[str]]:
    out = [
        f"classes: {len(r.src_classes):,} of sources, {len(r.dst_classes):,} of destinations "
        "(Pods the network cannot tell apart)",
        "source classes:",
    ]
    for c in r.src_classes:
        out.append(f"  {c.id:<7} {c.size:>7,} Pods  {c.members[0]}  in {_where(c)}")
        if members:
            out += [f"            {k}" for k in c.members]
    out.append("destination classes:")
    for c in r.dst_classes:
        out.append(
            f"  {c.id:<7} {c.size:>7,} Pods  {c.protocol}/{c.port}  {c.members[0]}  in {_where(c)}"
        )
        if members:
            out += [f"            {k}" for k in c.members]
    out.append("by destination class: the source classes of each verdict")
    used: set[str] = set()
    n_s = len(r.src_classes)
    columns = zip(*(r.symbols(i) for i in range(n_s)), strict=True)
    for c, col in zip(r.dst_classes, columns, strict=True):
        by: dict[str, list[int]] = {}
        for i, sym in enumerate(col):
            by.setdefault(sym, []).append(i)
        used.update(by)
        parts = []
        for sym in LEGEND:
            if sym in by:
                ids = by[sym]
                what = "all" if len(ids) == n_s else _ranges(ids, "S")
                parts.append(f"{sym} {what}")
        out.append(f"  {c.id:<7} " + "  ".join(parts))
    return out, used

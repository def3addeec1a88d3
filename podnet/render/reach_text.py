"""``podnet reach`` as a truth table: rows are sources, columns destinations.

>>> from podnet.analysis.reach import Cell, Reach
>>> r = Reach(80, "tcp", False, ("x/a", "x/b"), ("x/a", "x/b"),
...           ((Cell("self"), Cell("deny")), (Cell("allow"), Cell("self"))), 2, 2)
>>> print(render_reach(r), end="")
reach: tcp port 80 to the Pod IP; 2 sources x 2 destinations
     x/a  x/b
x/a   -    X
x/b   .    -
. allowed  X denied  - self (not probed)
summary: 1 allowed, 1 denied of 2 pairs (2 self pairs not probed); 2 classes, 2 traces
"""

from __future__ import annotations

from podnet.analysis.reach import SYMBOL, Reach

LEGEND = {
    ".": "allowed",
    "X": "denied",
    "~": "some paths only",
    "?": "no Service",
    "-": "self (not probed)",
}
MAX_HEADER = 12


def render_reach(r: Reach) -> str:
    if r.port is not None:
        what = f"{r.protocol or 'tcp'} port {r.port}"
    else:
        what = f"{r.protocol + ' on ' if r.protocol else ''}each destination Pod's first port"
    via = "through each destination's Service" if r.via_service else "to the Pod IP"
    out = [f"reach: {what} {via}; {len(r.sources)} sources x {len(r.dests)} destinations"]
    numbered = max(len(k) for k in r.dests) > MAX_HEADER
    heads = [str(i + 1) if numbered else k for i, k in enumerate(r.dests)]
    width = max(len(h) for h in heads)
    left = max(len(k) for k in r.sources)
    out.append(" " * left + "  " + "  ".join(h.center(width) for h in heads).rstrip())
    for key, row in zip(r.sources, r.cells, strict=True):
        cells = "  ".join(SYMBOL[c.verdict].center(width) for c in row)
        out.append(f"{key.ljust(left)}  {cells}".rstrip())
    if numbered:
        out += [f"  {i + 1}: {k}" for i, k in enumerate(r.dests)]
    used = {SYMBOL[c.verdict] for row in r.cells for c in row}
    out.append("  ".join(f"{s} {w}" for s, w in LEGEND.items() if s in used or s in ".X"))
    s = r.summary()
    extra = "".join(f", {s[k]} {k}" for k in ("partial", "unreachable") if s[k])
    out.append(f"summary: {s['allowed']} allowed, {s['denied']} denied{extra} of {s['pairs']} pairs "
               f"({s['self']} self pairs not probed); {s['classes']} classes, {s['traces']} traces")  # fmt: skip
    return "\n".join(out) + "\n"

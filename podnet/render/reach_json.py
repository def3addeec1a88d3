"""``podnet reach -o json`` (shape in podnet.analysis.reach's docstring): the Pod-level table for
small inputs, the class-level one for large ones (or ``classes=True``)."""

from __future__ import annotations

import json

from podnet.analysis.reach import SYMBOL, Reach
from podnet.render.reach_text import pod_level


def reach_dict(r: Reach, classes: bool = False, members: bool = False) -> dict:
    head = {"port": r.port, "protocol": r.protocol, "via_service": r.via_service}
    if pod_level(r, classes):
        return head | _pods(r) | {"summary": r.summary()}
    return head | _classes(r, members) | {"summary": r.summary()}


def _pods(r: Reach) -> dict:
    cells = []
    table = r.cells
    for s, row in zip(r.sources, table, strict=True):
        for d, c in zip(r.dests, row, strict=True):
            if c.verdict not in ("allow", "self"):
                cells.append(
                    {
                        "from": s,
                        "to": d,
                        "verdict": c.verdict,
                        "disposition": c.disposition or None,
                        "dst": c.dst or None,
                        "reason": c.reason,
                    }
                )
    return {
        "level": "pod",
        "from": list(r.sources),
        "to": list(r.dests),
        "matrix": [[SYMBOL[c.verdict] for c in row] for row in table],
        "cells": cells,
    }


def _classes(r: Reach, members: bool) -> dict:
    def one(c, dst: bool) -> dict:
        d = {"id": c.id, "size": c.size, "first": c.members[0], "namespaces": list(c.namespaces())}
        if dst:
            d |= {"protocol": c.protocol, "port": c.port}
        if members:
            d["members"] = list(c.members)
        return d

    cells = []
    for (i, j), c in sorted(r.traced.items()):
        if c.verdict not in ("allow", "self"):
            cells.append(
                {
                    "from": r.src_classes[i].id,
                    "to": r.dst_classes[j].id,
                    "verdict": c.verdict,
                    "disposition": c.disposition or None,
                    "dst": c.dst or None,
                    "reason": c.reason,
                }
            )
    return {
        "level": "class",
        "source_classes": [one(c, False) for c in r.src_classes],
        "destination_classes": [one(c, True) for c in r.dst_classes],
        "class_matrix": [r.symbols(i) for i in range(len(r.src_classes))],
        "class_cells": cells,
        "disagreements": [
            {"from": a, "to": b, "evaluated": e, "traced": t} for a, b, e, t in r.disagreements
        ],
    }


def render_reach_json(r: Reach, classes: bool = False, members: bool = False) -> str:
    return json.dumps(reach_dict(r, classes, members), indent=1) + "\n"

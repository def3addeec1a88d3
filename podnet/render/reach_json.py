"""``podnet reach -o json`` (shape in podnet.analysis.reach's docstring)."""

from __future__ import annotations

import json

from podnet.analysis.reach import SYMBOL, Reach


def reach_dict(r: Reach) -> dict:
    cells = []
    for s, row in zip(r.sources, r.cells, strict=True):
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
        "port": r.port,
        "protocol": r.protocol,
        "via_service": r.via_service,
        "from": list(r.sources),
        "to": list(r.dests),
        "matrix": [[SYMBOL[c.verdict] for c in row] for row in r.cells],
        "cells": cells,
        "summary": r.summary(),
    }


def render_reach_json(r: Reach) -> str:
    return json.dumps(reach_dict(r), indent=1) + "\n"

"""``podnet check`` results as text and as the JSON of SPEC section 4."""

from __future__ import annotations

import json

from podnet.analysis.check import ProbeResult


def summary(results: tuple[ProbeResult, ...]) -> dict:
    ok = sum(1 for r in results if r.ok is True)
    failed = sum(1 for r in results if r.ok is False)
    return {
        "total": len(results),
        "ok": ok,
        "failed": failed,
        "unchecked": len(results) - ok - failed,
    }


def render_check_json(results: tuple[ProbeResult, ...]) -> str:
    out = {
        "results": [
            {
                "index": r.probe.index,
                "probe": r.probe.as_dict(),
                "verdict": r.verdict,
                "deny_kind": r.deny_kind,
                "endpoints": list(r.endpoints),
                "masq": r.masq,
                "ok": r.ok,
            }
            for r in results
        ],
        "summary": summary(results),
    }
    return json.dumps(out, indent=2, default=str) + "\n"


def _describe(r: ProbeResult) -> str:
    p = r.probe
    src = p.src or (f"node/{p.from_node}" if p.from_node else f"ext/{p.from_ip}@{p.at_node}")
    dst = str(p.to_ip) if p.to_ip else (f"svc/{p.service}" if p.service else p.to)
    port = f":{p.port}" if p.port else ""
    return f"{src} -> {dst}{port}/{p.protocol.lower()}"


def render_check_text(results: tuple[ProbeResult, ...]) -> str:
    lines = []
    for r in results:
        mark = {True: "ok  ", False: "FAIL", None: "    "}[r.ok]
        found = r.verdict + (f" ({r.deny_kind})" if r.deny_kind else "")
        if r.endpoints:
            found += " -> " + ", ".join(r.endpoints)
        if r.masq:
            found += " masq"
        lines.append(f"{mark} #{r.probe.index} {_describe(r)}: {found}")
        for w in r.mismatches:
            lines.append(f"       {w}")
        if r.ok is False:
            for path in r.trace.paths:
                if not path.delivered:
                    lines.append(f"       {path.disposition}: {path.forward.reason}")
                    break
    s = summary(results)
    lines.append(
        f"{s['total']} probes: {s['ok']} ok, {s['failed']} failed, {s['unchecked']} unchecked"
    )
    return "\n".join(lines) + "\n"

"""``podnet check`` results as text and as the JSON of SPEC section 4."""

from __future__ import annotations

import json

from podnet.analysis.check import CheckRun, ProbeResult


def summary(results: tuple[ProbeResult, ...], run: CheckRun | None = None) -> dict:
    """SPEC section 4's summary; when the model answered probes, also how many it answered
    (``modelled``), how many were traced, how many of its answers a trace checked and where
    the trace disagreed (the traced result was kept)."""
    ok = sum(1 for r in results if r.ok is True)
    failed = sum(1 for r in results if r.ok is False)
    out: dict = {
        "total": len(results),
        "ok": ok,
        "failed": failed,
        "unchecked": len(results) - ok - failed,
    }
    if run is not None and run.modelled:
        out.update(
            modelled=run.modelled,
            traced=run.traced,
            checked=run.checked,
            disagreements=[{"index": i, "model": m, "trace": t} for i, m, t in run.disagreements],
        )
    return out


def render_check_json(results: tuple[ProbeResult, ...], run: CheckRun | None = None) -> str:
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
        "summary": summary(results, run),
    }
    return json.dumps(out, indent=2, default=str) + "\n"


def _describe(r: ProbeResult) -> str:
    p = r.probe
    src = p.src or (f"node/{p.from_node}" if p.from_node else f"ext/{p.from_ip}@{p.at_node}")
    dst = str(p.to_ip) if p.to_ip else (f"svc/{p.service}" if p.service else p.to)
    port = f":{p.port}" if p.port else ""
    return f"{src} -> {dst}{port}/{p.protocol.lower()}"


def render_check_text(results: tuple[ProbeResult, ...], run: CheckRun | None = None) -> str:
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
    s = summary(results, run)
    lines.append(
        f"{s['total']} probes: {s['ok']} ok, {s['failed']} failed, {s['unchecked']} unchecked"
    )
    if "modelled" in s:
        lines.append(
            f"{s['modelled']} answered from kube-proxy's endpoints and the policy rules, "
            f"{s['traced']} traced ({s['checked']} to check those answers: "
            f"{len(s['disagreements'])} disagreed)"
        )
        for d in s["disagreements"]:
            lines.append(
                f"       #{d['index']}: the model said {d['model']}, the trace {d['trace']} (kept)"
            )
    return "\n".join(lines) + "\n"

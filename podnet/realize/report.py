"""Text and JSON for ``podnet verify``: each probe where kernel and emulator disagree, both sides,
and a summary with the counts."""

from __future__ import annotations

import json
from collections import Counter

from podnet.realize.verify import Comparison, VerifyRun


def probe_label(c: Comparison) -> str:
    """``#3 default/a -> svc default/b:80/TCP`` from the probe as written."""
    d = c.probe.as_dict()
    src = d.get("from") or (
        f"node/{d['from_node']}"
        if d.get("from_node")
        else f"ext/{d.get('from_ip')}@{d.get('at_node')}"
    )
    if d.get("to_ip"):
        dst = f"{d['to_ip']}"
    elif d.get("service"):
        dst = f"svc/{d['service']}"
    else:
        dst = f"pod/{d.get('to')}"
    port = d.get("port")
    return f"#{c.probe.index} {src} -> {dst}{':' + str(port) if port else ''}/{c.probe.protocol}"


def _kernel_side(c: Comparison) -> str:
    counts: Counter = Counter()
    for a in c.attempts:
        if a["outcome"] == "connected":
            counts[
                f"connected {a.get('pod')} (client seen as {(a.get('peer') or ['?'])[0]}, port {(a.get('local') or [None, '?'])[1]})"
            ] += 1
        else:
            counts[a["outcome"] + (f" [{a['detail']}]" if a.get("detail") else "")] += 1
    parts = [f"{k} x{n}" for k, n in sorted(counts.items())]
    return f"{len(c.attempts)} tries: " + "; ".join(parts)


def _emulator_side(c: Comparison) -> list[str]:
    out = []
    if c.result is None:
        return out
    for p in c.result.trace.paths:
        f = p.forward
        line = f"{p.probability} {f.disposition}"
        if f.endpoint:
            line += f" {f.endpoint}"
        if f.packet is not None and f.disposition == "DELIVERED":
            line += f" (client seen as {f.packet.src}, port {f.packet.dport})"
        line += f": {f.reason}"
        if p.reply is not None and p.reply.disposition != "DELIVERED":
            line += f"; reply {p.reply.disposition}: {p.reply.reason}"
        out.append(line)
    return out


def render_verify_text(run: VerifyRun, verbose: bool = False) -> str:
    """Disagreements (every probe with ``verbose``), notes, then the summary line."""
    lines: list[str] = []
    for c in run.comparisons:
        if c.agree is True and not verbose:
            continue
        state = {True: "AGREE", False: "DISAGREE", None: "SKIPPED"}[c.agree]
        lines.append(f"{state} {probe_label(c)}")
        if c.agree is None:
            lines.append(f"  skipped: {c.skipped}")
            continue
        emu = _emulator_side(c)
        lines.append("  emulator: " + (emu[0] if emu else "-"))
        lines += ["            " + e for e in emu[1:]]
        lines.append("  kernel:   " + _kernel_side(c))
        lines += [f"  - {d}" for d in c.differences]
        if c.agree is False and verbose and c.result is not None:
            from podnet.render.trace_text import render_trace

            lines += ["  " + t for t in render_trace(c.result.trace).splitlines()]
    lines += [f"note: {n}" for n in run.notes]
    lines.append(summary(run))
    return "\n".join(lines) + "\n"


def summary(run: VerifyRun) -> str:
    """``verify: 30 probes compared with the kernel, 30 agreed, 0 disagreed, 0 skipped``"""
    cs = run.comparisons
    compared = sum(1 for c in cs if c.agree is not None)
    agreed = sum(1 for c in cs if c.agree is True)
    skipped = sum(1 for c in cs if c.agree is None)
    return f"verify: {compared} probes compared with the kernel, {agreed} agreed, {compared - agreed} disagreed, {skipped} skipped"


def render_verify_json(run: VerifyRun) -> str:
    """Every probe with both sides, notes and counts, as JSON."""
    probes = []
    for c in run.comparisons:
        probes.append(
            {
                "probe": c.probe.as_dict(),
                "index": c.probe.index,
                "agree": c.agree,
                "skipped": c.skipped,
                "differences": list(c.differences),
                "emulator": {
                    "verdict": c.result.verdict if c.result else None,
                    "expected": [e.key for e in c.expected],
                    "paths": _emulator_side(c),
                },
                "kernel": list(c.attempts),
            }
        )
    cs = run.comparisons
    return (
        json.dumps(
            {
                "probes": probes,
                "notes": list(run.notes),
                "compared": sum(1 for c in cs if c.agree is not None),
                "agreed": sum(1 for c in cs if c.agree is True),
                "disagreed": sum(1 for c in cs if c.agree is False),
                "skipped": sum(1 for c in cs if c.agree is None),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )

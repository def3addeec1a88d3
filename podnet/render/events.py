"""Events as aligned text lines: ``N  ACTOR  ACTION  OBJECT  DETAIL`` (like ``kubectl get events``)."""

from __future__ import annotations

from collections.abc import Iterable

from podnet.model.cluster import Event, NodeVerdict, ScheduleDecision


def render_events(events: Iterable[Event]) -> str:
    """One line per event, columns aligned, numbered from 1."""
    rows = [(str(i), e.actor, e.action, e.object, e.detail) for i, e in enumerate(events, 1)]
    if not rows:
        return ""
    head = ("#", "ACTOR", "ACTION", "OBJECT", "DETAIL")
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(4)]
    out = []
    for r in [head, *rows]:
        cells = [r[0].rjust(widths[0])] + [r[k].ljust(widths[k]) for k in (1, 2, 3)] + [r[4]]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def render_schedule_table(decision: ScheduleDecision, n_nodes: int) -> str:
    """The scheduler's table for one Pod: each node, the filter that rejected it, its scores."""
    if decision.via != "scheduler":
        return f"not scheduled: bound to {decision.node} by {decision.via}\n"
    if not decision.verdicts:
        return f"{decision.node}: score {decision.score} (the cluster is too large to keep every node's verdict)\n"
    head = ("NODE", "FILTER", "LEASTALLOCATED", "SPREAD", "SCORE", "")
    rows = [head]
    for v in decision.verdicts:
        rows.append(_row(v, decision.node))
    widths = [max(len(r[k]) for r in rows) for k in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    fit = decision.feasible if decision.feasible is not None else "?"
    lines.append(
        f"{fit}/{n_nodes} nodes fit; the highest score wins, ties go to the first node listed"
    )
    return "\n".join(lines) + "\n"


def _row(v: NodeVerdict, chosen: str) -> tuple[str, ...]:
    if v.reasons:
        return (v.node, ", ".join(v.reasons), "-", "-", "-", "")
    return (
        v.node,
        "fits",
        str(v.least_allocated),
        str(v.spread),
        str(v.score),
        "<- bound" if v.node == chosen else "",
    )

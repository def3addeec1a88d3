"""A trace for a terminal: the same content as podnet.render.trace_text, drawn as a tree per hop
with colour (dispositions green or red, NAT yellow, rules dim, hop headers bold).

Colour is used only where it helps and only when asked: ``--color always``, or ``auto`` with a
terminal on stdout and no ``NO_COLOR`` in the environment (https://no-color.org). Pipes and
files always get the plain text of trace_text, byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

from podnet.model.trace import SUCCESS, Hop, Leg, Packet, Path, Trace
from podnet.render.trace_text import fmt_packet, fmt_prob

RESET = "\033[0m"
BOLD = "\033[1m"
DIM = "\033[2m"
RED = "\033[31m"
GREEN = "\033[32m"
YELLOW = "\033[33m"
BLUE = "\033[34m"
MAGENTA = "\033[35m"
CYAN = "\033[36m"

STEP_COLOURS = {
    "route": BLUE,
    "neigh": BLUE,
    "fdb": BLUE,
    "bridge": BLUE,
    "netfilter": DIM,
    "nat": YELLOW,
    "conntrack": MAGENTA,
    "policy": MAGENTA,
    "encap": CYAN,
    "decap": CYAN,
    "deliver": GREEN,
    "drop": RED,
}


def use_colour(choice: str, stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to draw in colour: ``always``, ``never``, or ``auto`` (a terminal and no
    ``NO_COLOR``).

    >>> import io
    >>> use_colour("auto", io.StringIO()), use_colour("always", io.StringIO())
    (False, True)
    """
    if choice == "always":
        return True
    if choice == "never":
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _c(code: str, text: str) -> str:
    return f"{code}{text}{RESET}"


def _disposition(d: str) -> str:
    return _c(BOLD + (GREEN if d in SUCCESS else RED), d)


def _hop_lines(hop: Hop, i: int, last: Packet | None, indent: str) -> list[str]:
    head = f"{indent}{_c(BOLD, f'{i:>2}')}  {hop.node or '-'}  {_c(BOLD, hop.netns)}  {_c(CYAN, hop.device)} {hop.direction}"
    if hop.packet != last:
        head += "   " + _c(YELLOW if hop.packet.encap is None else CYAN, fmt_packet(hop.packet))
    out = [head]
    n = len(hop.steps)
    for k, s in enumerate(hop.steps):
        branch = "└─" if k == n - 1 else "├─"
        colour = STEP_COLOURS.get(s.type, "")
        if s.rule:
            where = f"{s.table} {s.chain} #{s.rulenum}" if s.rulenum else f"{s.table} {s.chain}"
            body = f"{_c(colour, f'{s.type:<9}')}  {where}  {_c(DIM, s.rule)}"
        else:
            text = _c(YELLOW, s.text) if s.type == "nat" else s.text
            body = f"{_c(colour, f'{s.type:<9}')}  {text}"
        out.append(f"{indent}    {_c(DIM, branch)} {body}")
    return out


def _leg_lines(leg: Leg, indent: str) -> list[str]:
    out: list[str] = []
    last: Packet | None = None
    for i, hop in enumerate(leg.hops, 1):
        out += _hop_lines(hop, i, last, indent)
        last = hop.packet
    return out


def _path_lines(path: Path, index: int, total: int) -> list[str]:
    who = f"  -> {_c(BOLD, path.endpoint)}" if path.endpoint else ""
    out = [
        f"{_c(BOLD, f'path {index}/{total}')}  p={fmt_prob(path.probability)}  {_disposition(path.disposition)}{who}"
    ]
    out.append(f"  {path.forward.reason}")
    out += _leg_lines(path.forward, "  ")
    if path.reply is not None:
        out.append(
            f"  {_c(BOLD, 'reply')}: {_disposition(path.reply.disposition)}  {path.reply.reason}"
        )
        out += _leg_lines(path.reply, "  ")
    return out


def render_trace_tty(trace: Trace) -> str:
    """The trace as a coloured tree (for a terminal).

    >>> from ipaddress import IPv4Address as A
    >>> from podnet.model.trace import Step
    >>> p = Packet(A("10.244.1.2"), A("10.244.1.3"), "tcp", 40000, 80)
    >>> hop = Hop("n1", "pod:default/a", "eth0", "out", (Step("route", "default via 10.244.1.1 dev eth0"),), p)
    >>> t = Trace("a", "b", p, (Path(1, Leg("DELIVERED", (hop,), "ok", "default/b")),))
    >>> "└─" in render_trace_tty(t) and "\\033[32m" in render_trace_tty(t)
    True
    """
    p = trace.packet
    verdict = trace.verdict
    colour = GREEN if verdict == "delivered" else (YELLOW if verdict == "partial" else RED)
    lines = [
        f"{_c(BOLD, 'trace')} {trace.src} -> {trace.dst}",
        f"packet {p.src}:{p.sport} -> {p.dst}:{p.dport} {p.proto}",
        f"verdict {_c(BOLD + colour, verdict)} ({len(trace.paths)} path{'s' if len(trace.paths) != 1 else ''})",
    ]
    if trace.dns is not None:  # the name lookup first (podnet.trace.dnsflow), as plain text
        from podnet.render.trace_text import render_dns

        lines += render_dns(trace.dns)
    for i, path in enumerate(trace.paths, 1):
        lines.append("")
        lines += _path_lines(path, i, len(trace.paths))
    return "\n".join(lines) + "\n"

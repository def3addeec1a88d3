"""A picture of the cluster: each node a box holding its Pods, their veths, cni0, flannel.1 and
eth0; the underlay segment below, flannel's VXLAN overlay as one hub (any VTEP of the VNI reaches
any other, so a hub says what a mesh of n² tunnels would, legibly). A traced path is drawn on
top, one colour per path, each edge numbered with the hop it leads to as in the text trace.

The picture is Graphviz DOT text written here; the ``dot`` program (Debian package graphviz)
turns it into SVG or PNG.
"""

from __future__ import annotations

import shutil
import subprocess

from podnet.errors import Problem, UsageError
from podnet.model.trace import Trace

PATH_COLOURS = (
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
)
FONT = "Helvetica"
SMALL = 6  # nodes drawn with every wire to the underlay and overlay hubs


def _q(text: str) -> str:
    """A DOT double-quoted string.

    >>> _q('a "b"')
    '"a \\\\"b\\\\""'
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _id(text: str) -> str:
    return _q(text)


def element_of(network, netns: str, device: str) -> str:
    """The drawn element a hop on ``device`` of ``netns`` belongs to: a Pod (its eth0 and lo),
    a node device, an outside client."""
    if netns.startswith("pod:") or netns.startswith("external:"):
        return netns
    if device == "lo":
        return f"{netns}|eth0"
    return f"{netns}|{device}"


def _node_cluster(network, node, lines: list[str]) -> None:
    name = f"node:{node.name}"
    ns = network.get(name)
    label = (
        f"{node.name}\\n{node.ip}  podCIDR {node.pod_cidr}"
        if getattr(node, "pod_cidr", None)
        else f"{node.name}\\n{node.ip}"
    )
    lines.append(f"  subgraph {_q('cluster_' + name)} {{")
    lines.append(
        f'    label="{label}"; style="rounded,filled"; fillcolor="#f4f6fa"; color="#8a94a6"; fontname="{FONT} Bold"; fontsize=13;'
    )
    links = {lk.name: lk for lk in ns.links}
    pods = sorted(
        (
            p
            for p in network.cluster.pods
            if p.node == node.name and not p.host_network and network.pod_netns(p.key)
        ),
        key=lambda p: p.key,
    )
    if pods:
        lines.append("    { rank=same;")
        for p in pods:
            shown = p.name if p.namespace == "default" else f"{p.namespace}/{p.name}"
            lines.append(
                f'      {_id("pod:" + p.key)} [label="{shown}\\n{p.ip}" shape=box style="rounded,filled" fillcolor="#ffffff" color="#4a6fa5" tooltip={_q(p.key)}];'
            )
        lines.append("    }")
    for lk in sorted(ns.links, key=lambda x: x.index):
        me = f"{name}|{lk.name}"
        if lk.kind == "veth":
            lines.append(
                f'    {_id(me)} [label="{lk.name}" shape=box fontsize=8 height=0.2 width=0.4 margin="0.03,0.01" style=filled fillcolor="#eeeeee" color="#aaaaaa"];'
            )
        elif lk.kind == "bridge":
            addr = f"\\n{lk.addresses[0]}" if lk.addresses else ""
            lines.append(
                f'    {_id(me)} [label="{lk.name} (bridge){addr}" shape=box style="filled" fillcolor="#dbe9f6" color="#4a6fa5"];'
            )
        elif lk.kind == "vxlan":
            addr = f"\\n{lk.addresses[0].ip}" if lk.addresses else ""
            lines.append(
                f'    {_id(me)} [label="{lk.name} (VTEP){addr}" shape=hexagon style=filled fillcolor="#e5f5e0" color="#41ab5d"];'
            )
        elif lk.kind == "ether":
            addr = f"\\n{lk.addresses[0].ip}" if lk.addresses else ""
            lines.append(
                f'    {_id(me)} [label="{lk.name}{addr}" shape=box style=filled fillcolor="#fdebd0" color="#b9770e"];'
            )
    for lk in sorted(ns.links, key=lambda x: x.index):
        me = f"{name}|{lk.name}"
        if lk.kind == "veth" and lk.peer is not None and lk.peer[0].startswith("pod:"):
            lines.append(f'    {_id(lk.peer[0])} -> {_id(me)} [color="#888888"];')
        if lk.master and lk.master in links:
            lines.append(f'    {_id(me)} -> {_id(name + "|" + lk.master)} [color="#888888"];')
    # the host's routing joins cni0, flannel.1 and eth0 (not a wire: drawn dotted)
    order = [n for n in ("cni0", "flannel.1", "eth0") if n in links]
    for a, b in zip(order, order[1:], strict=False):
        lines.append(
            f'    {_id(name + "|" + a)} -> {_id(name + "|" + b)} [style=dotted color="#888888"];'
        )
    lines.append("  }")


def cluster_dot(network, trace: Trace | None = None, title: str | None = None) -> str:
    """The cluster (and the trace's paths) as Graphviz DOT text.

    Edges of path ``i`` are coloured ``PATH_COLOURS[i]`` and labelled with the number of the hop
    they lead to (the first hop's element is labelled ``1``).
    """
    cl = network.cluster
    lines = [
        "digraph podnet {",
        f'  graph [fontname="{FONT}" rankdir=TB nodesep=0.25 ranksep=0.45 compound=true newrank=true labelloc=t fontsize=16 label={_q(title or "")}];',
        f'  node [fontname="{FONT}" fontsize=10];',
        f'  edge [fontname="{FONT}" fontsize=10 dir=none];',
    ]
    for node in cl.nodes:
        _node_cluster(network, node, lines)
    # beyond a few nodes, the lines from every eth0 and flannel.1 to the two hubs hide the
    # picture: the hubs then say in words that every node is on them
    wires = len(cl.nodes) <= SMALL
    every = "" if wires else "\\n(every node's eth0)"
    lines.append(
        f'  "underlay" [label="underlay L2 segment\\n{network.underlay}{every}" shape=box style="filled" fillcolor="#fff3c4" color="#b9770e" width=3];'
    )
    vteps = []
    for node in cl.nodes:
        ns = network.get(f"node:{node.name}")
        for lk in ns.links:
            if lk.kind == "ether" and wires:
                lines.append(
                    f'  {_id(f"node:{node.name}|{lk.name}")} -> "underlay" [color="#b9770e"];'
                )
            if lk.kind == "vxlan" and lk.vxlan is not None:
                vteps.append((f"node:{node.name}|{lk.name}", lk.vxlan))
    if vteps:
        vx = vteps[0][1]
        every = "" if wires else "\\n(every node's flannel.1)"
        lines.append(
            f'  "overlay" [label="flannel VXLAN overlay\\nVNI {vx.vni}, UDP {vx.port}{every}" shape=hexagon style=filled fillcolor="#e5f5e0" color="#41ab5d"];'
        )
        for me, _ in vteps if wires else ():
            lines.append(f'  {_id(me)} -> "overlay" [style=dashed color="#41ab5d"];')
        lines.append('  { rank=same; "underlay"; "overlay"; }')
    lines += _grid(network, cl.nodes)
    if trace is not None:
        lines += _trace_lines(network, trace)
        lines += _legend(trace)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _grid(network, nodes) -> list[str]:
    """Invisible edges that lay the nodes out in rows of at most ``columns(n)``, left to right
    in the cluster's order: one long row stops being legible beyond a handful of nodes."""
    per_row = columns(len(nodes))
    out = []
    tops, bottoms = [], []
    for node in nodes:
        name = f"node:{node.name}"
        ns = network.get(name)
        pods = sorted(
            p.key
            for p in network.cluster.pods
            if p.node == node.name and not p.host_network and network.pod_netns(p.key)
        )
        order = [lk.name for lk in sorted(ns.links, key=lambda x: x.index) if lk.kind != "loopback"]
        tops.append(f"pod:{pods[0]}" if pods else f"{name}|{order[0]}")
        bottoms.append(f"{name}|eth0" if ns.link("eth0") is not None else f"{name}|{order[-1]}")
    for start in range(0, len(nodes), per_row):
        row = bottoms[start : start + per_row]
        if len(row) > 1:
            out.append("  { rank=same; " + " -> ".join(_id(e) for e in row) + " [style=invis]; }")
    for i in range(per_row, len(nodes)):
        out.append(f"  {_id(bottoms[i - per_row])} -> {_id(tops[i])} [style=invis weight=10];")
    return out


def columns(n: int) -> int:
    """Nodes per row: all of them up to 6, then about twice as many columns as rows.

    >>> columns(3), columns(20), columns(100)
    (3, 7, 15)
    """
    if n <= 6:
        return max(n, 1)
    import math

    return math.ceil(math.sqrt(2 * n + 0.25))


def _trace_lines(network, trace: Trace) -> list[str]:
    out: list[str] = []
    externals = set()
    for i, path in enumerate(trace.paths):
        colour = PATH_COLOURS[i % len(PATH_COLOURS)]
        hops = path.forward.hops
        prev = None
        for n, hop in enumerate(hops, 1):
            el = element_of(network, hop.netns, hop.device)
            if hop.netns.startswith("external:"):
                externals.add(hop.netns)
            if prev is None and i == 0:
                out.append(f'  {_id(el)} [penwidth=3 color="#222222" xlabel=<<b>1 start</b>>];')
            elif prev is not None and el != prev:
                tunnel = (
                    hop.packet.encap is not None
                    and hops[n - 2].packet.encap is not None
                    and hop.device == hops[n - 2].device
                )
                label = f"{n}" + (" VXLAN" if tunnel else "")
                out.append(
                    f'  {_id(prev)} -> {_id(el)} [color="{colour}" penwidth=3 dir=forward arrowsize=0.8 constraint=false label=<<font color="{colour}"><b>{label}</b></font>>];'
                )
            prev = el
        if path.forward.disposition not in ("DELIVERED", "EXITS_NETWORK") and prev is not None:
            out.append(
                f'  {_id(prev)} [penwidth=3 color="{colour}" style="filled,bold" fillcolor="#f8d7da"];'
            )
    for ext in sorted(externals):
        out.append(
            f'  {_id(ext)} [label="outside client\\n{ext.split(":", 1)[1]}" shape=box style="rounded,filled" fillcolor="#ffffff" color="#555555"];'
        )
        out.append(
            f'  {_id(ext)} -> "underlay" [style=dashed color="#555555" label="via gateway"];'
        )
    return out


def _legend(trace: Trace) -> list[str]:
    """A table naming each path's colour, probability, disposition and endpoint."""
    from podnet.render.trace_text import fmt_prob

    rows = [
        f'<tr><td colspan="2" align="left"><b>{_html(trace.src)} &#8594; {_html(trace.dst)}</b>  ({trace.verdict})</td></tr>'
    ]
    for i, path in enumerate(trace.paths):
        colour = PATH_COLOURS[i % len(PATH_COLOURS)]
        who = f" &#8594; {_html(path.endpoint)}" if path.endpoint else ""
        rows.append(
            f'<tr><td bgcolor="{colour}" width="24"> </td><td align="left">path {i + 1}  p={fmt_prob(path.probability)}  {path.disposition}{who}</td></tr>'
        )
    table = '<table border="0" cellborder="0" cellspacing="3">' + "".join(rows) + "</table>"
    return [f'  "legend" [shape=plaintext label=<{table}>];', '  { rank=sink; "legend"; }']


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(dot_text: str, path: str) -> None:
    """Write ``dot_text`` to ``path``: DOT as it is for ``.dot``/``.gv``, else through the
    ``dot`` program to SVG or PNG (by the file's extension)."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot_text)
        return
    if ext not in ("svg", "png", "pdf"):
        raise UsageError(
            Problem(
                f"cannot draw to '{path}' (found .{ext or 'no extension'}, expected .svg, .png, .pdf or .dot)",
                path="-o",
                hint="name the file picture.svg or picture.png",
            )
        )
    exe = shutil.which("dot")
    if exe is None:
        raise UsageError(
            Problem(
                "the Graphviz program 'dot' is not installed",
                path="-o",
                hint="install graphviz (apt-get install graphviz), or write the DOT text with -o picture.dot",
            )
        )
    done = subprocess.run(
        [exe, f"-T{ext}", "-o", path], input=dot_text.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise UsageError(
            Problem(f"dot failed: {done.stderr.decode(errors='replace').strip()}", path="-o")
        )

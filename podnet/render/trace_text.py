"""A trace as text a person reads at a glance: numbered hops, each decision in the words Linux
tools use (``ip route``, ``iptables-save``, ``bridge fdb``), NAT as a before -> after diff."""

from __future__ import annotations

from podnet.model.trace import Hop, Leg, Packet, Path, Trace


def fmt_prob(p) -> str:
    """A probability as kube-proxy prints it: ``0.3333333333``; exactly one is ``1``."""
    return "1" if p == 1 else f"{float(p):.10f}"


def fmt_packet(p: Packet) -> str:
    text = f"{p.src}:{p.sport} -> {p.dst}:{p.dport} {p.proto} ttl {p.ttl}"
    if p.mark:
        text += f" mark {p.mark:#x}"
    if p.encap is not None:
        e = p.encap
        text = f"{e.type} {e.src}:{e.sport} -> {e.dst}:{e.dport} vni {e.vni} | inner {text}"
    return text


def _steps(hop: Hop, out: list[str]) -> None:
    for s in hop.steps:
        if s.rule:
            where = f"{s.table} {s.chain} #{s.rulenum}" if s.rulenum else f"{s.table} {s.chain}"
            out.append(f"        {s.type:<9}  {where}  {s.rule}")
        else:
            out.append(f"        {s.type:<9}  {s.text}")


def render_leg(leg: Leg, indent: str = "  ") -> list[str]:
    out: list[str] = []
    last: Packet | None = None
    for i, hop in enumerate(leg.hops, 1):
        where = f"{hop.node or '-'}  {hop.netns}"
        head = f"{indent}{i:>2}  {where}  {hop.device} {hop.direction}"
        if hop.packet != last:
            head += f"   [{fmt_packet(hop.packet)}]"
            last = hop.packet
        out.append(head)
        _steps(hop, out)
    return out


def devices_line(leg: Leg) -> str:
    """The devices a leg crosses, at a glance: namespaces separated by ``|``.

    ``frontend eth0 | node-1 veth1a2b3c4d > cni0 > flannel.1 > eth0 | node-2 eth0 > ...``
    """
    groups: list[tuple[str, list[str]]] = []
    for hop in leg.hops:
        kind, _, name = hop.netns.partition(":")
        label = name.rsplit("/", 1)[-1] if kind == "pod" else (hop.node if kind == "node" else name)
        if not groups or groups[-1][0] != hop.netns:
            groups.append((hop.netns, [label]))
        dev = hop.device
        if groups[-1][1][-1] != dev:
            groups[-1][1].append(dev)
    return " | ".join(f"{devs[0]} " + " > ".join(devs[1:]) for _, devs in groups)


def render_path(path: Path, index: int, total: int) -> list[str]:
    who = f"  -> {path.endpoint}" if path.endpoint else ""
    out = [f"path {index}/{total}  p={fmt_prob(path.probability)}  {path.disposition}{who}"]
    out.append(f"  {path.forward.reason}")
    out.append(f"  via {devices_line(path.forward)}")
    out += render_leg(path.forward)
    if path.reply is not None:
        out.append(f"  reply: {path.reply.disposition}  {path.reply.reason}")
        out += render_leg(path.reply, indent="  ")
    return out


def render_trace(trace: Trace) -> str:
    """The whole trace as text.

    The first lines say what was sent and the verdict; then each path with its hops.
    """
    p = trace.packet
    lines = [
        f"trace {trace.src} -> {trace.dst}",
        f"packet {p.src}:{p.sport} -> {p.dst}:{p.dport} {p.proto}",
        f"verdict {trace.verdict} ({len(trace.paths)} path{'s' if len(trace.paths) != 1 else ''})",
    ]
    if trace.dns is not None:
        lines += render_dns(trace.dns)
    for i, path in enumerate(trace.paths, 1):
        lines.append("")
        lines += render_path(path, i, len(trace.paths))
    return "\n".join(lines) + "\n"


def render_dns(d) -> list[str]:
    """The name lookup before the connection: resolv.conf, the query's flow, names tried."""
    out = ["", f"dns {d.name}: {'resolved' if d.ok else 'FAILED'}  {d.reason}"]
    out.append(
        f"  resolv.conf: nameserver {d.server}  search {' '.join(d.search)}  options ndots:{d.ndots}"
    )
    if d.flow is not None:
        f = d.flow
        out.append(
            f"  query flow {f.packet.src}:{f.packet.sport} -> {f.packet.dst}:{f.packet.dport} {f.packet.proto}: {f.verdict}"
        )
        for i, path in enumerate(f.paths, 1):
            out += ["  " + x for x in render_path(path, i, len(f.paths))]
    for q in d.queries:
        out.append(f"  query {q.name} IN {q.qtype}: {q.rcode}")
        out += [f"    {a}" for a in q.answers]
    return out

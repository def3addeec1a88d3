"""A trace as the kernel's iptables TRACE target logs it (iptables-legacy, libxt_TRACE.man).

One line per rule position the packet reached, in each namespace it crossed:
``TRACE: table:chain:type:rulenum`` (type ``rule``, ``return`` or ``policy``) followed by the
packet as nf_log prints it (net/netfilter/nf_log_syslog.c with TRACE's NF_LOG_DEFAULT_MASK:
TCP sequence numbers, TCP options, and the socket's UID for local packets):
``IN= OUT= [PHYSIN= PHYSOUT=] [MAC=] SRC= DST= LEN= TOS= PREC= TTL= ID= [DF] PROTO= SPT= DPT= ...``.

A real node logs these lines to the kernel log after ``iptables -t raw -A PREROUTING -j TRACE``
and ``-A OUTPUT -j TRACE``; podnet prints them under a ``# namespace`` heading per hop, without
the kernel's trailing space.
"""

from __future__ import annotations

from podnet.dataplane.netfilter import HOOK_TABLES
from podnet.model.trace import Hop, Leg, NfTrace, Packet, Trace
from podnet.render.wire import (
    ZERO_MAC,
    ip_id,
    ip_length,
    l4_length,
    leg_mtu,
    outer_ip_id,
    tcp_options,
    tcp_seq,
    tcp_window,
)

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}


def _mac_field(rec: NfTrace) -> str:
    """``MAC=dst:src:type`` of the received frame, printed only on hooks with an input device."""
    if rec.in_iface is None:
        return ""
    if rec.in_iface == "lo":
        src = dst = ZERO_MAC
    else:
        src, dst = rec.src_mac or ZERO_MAC, rec.dst_mac or ZERO_MAC
    return f"MAC={dst}:{src}:08:00 "


def packet_fields(p: Packet, reply: bool, mtu: int, *, local: bool = False) -> str:
    """The nf_log dump of a packet (without the devices), as TRACE prints it.

    >>> from ipaddress import IPv4Address as A
    >>> packet_fields(Packet(A("10.244.1.2"), A("10.96.0.10"), "udp", 40000, 53), False, 1450)
    'SRC=10.244.1.2 DST=10.96.0.10 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=UDP SPT=40000 DPT=53 LEN=8 '
    """
    if p.encap is not None:
        e = p.encap
        inner_len = 14 + ip_length(p)
        text = f"SRC={e.src} DST={e.dst} LEN={20 + 8 + 8 + inner_len} TOS=0x00 PREC=0x00 TTL=64 ID={outer_ip_id(p)} "
        text += f"PROTO=UDP SPT={e.sport} DPT={e.dport} LEN={8 + 8 + inner_len} "
    else:
        text = f"SRC={p.src} DST={p.dst} LEN={ip_length(p)} TOS=0x00 PREC=0x00 TTL={p.ttl} ID={ip_id(p, reply)} DF "
        if p.proto == "tcp":
            seq, ack = tcp_seq(p, reply)
            flags = "ACK SYN " if reply else "SYN "
            opts = tcp_options(p, reply, mtu).hex().upper()
            text += f"PROTO=TCP SPT={p.sport} DPT={p.dport} SEQ={seq} ACK={ack} WINDOW={tcp_window(mtu)} RES=0x00 {flags}URGP=0 OPT ({opts}) "
        elif p.proto == "udp":
            text += f"PROTO=UDP SPT={p.sport} DPT={p.dport} LEN={l4_length(p)} "
        elif p.proto == "icmp":
            text += f"PROTO=ICMP TYPE={0 if reply else 8} CODE=0 ID={p.sport} SEQ=1 "
        else:
            # nf_log_syslog.c decodes no SCTP header: the protocol number only
            text += f"PROTO={PROTO_NUMBERS.get(p.proto, 0)} "
        if local:
            text += "UID=0 GID=0 "
    if p.mark:
        text += f"MARK=0x{p.mark:x} "
    return text


def _lines_for(rec: NfTrace, reply: bool, mtu: int, local: bool) -> list[str]:
    tables = HOOK_TABLES.get(rec.hook, ())
    nat_at = tables.index("nat") if "nat" in tables else len(tables)
    changed = rec.after != rec.packet
    devs = f"IN={rec.in_iface or ''} OUT={rec.out_iface or ''} "
    if rec.physin:
        devs += f"PHYSIN={rec.physin} "
    if rec.physout:
        devs += f"PHYSOUT={rec.physout} "
    devs += _mac_field(rec)
    out = []
    for table, chain, kind, num in rec.entries:
        # tables after nat see the translated packet; a rule is logged before its target acts
        after = changed and table in tables and tables.index(table) > nat_at
        p = rec.after if after else rec.packet
        line = (
            f"TRACE: {table}:{chain}:{kind}:{num} {devs}{packet_fields(p, reply, mtu, local=local)}"
        )
        out.append(line.rstrip())
    return out


def render_leg(leg: Leg, reply: bool, mtu: int) -> list[str]:
    out: list[str] = []
    for i, hop in enumerate(leg.hops, 1):
        if not hop.nftrace:
            continue
        out.append(f"# {i:>2}  {hop.node or '-'}  {hop.netns}  {hop.device} {hop.direction}")
        for rec in hop.nftrace:
            local = _is_local(hop, i, rec, reply)
            out += _lines_for(rec, reply, mtu, local)
    return out


def _is_local(hop: Hop, index: int, rec: NfTrace, reply: bool) -> bool:
    """Whether the packet comes from a full local socket (nf_log prints its UID): the first hop
    of a leg, on its way out; a SYN-ACK belongs to a request socket, which has none."""
    if index != 1 or rec.hook not in ("OUTPUT", "POSTROUTING") or rec.packet.encap is not None:
        return False
    return not (reply and rec.packet.proto == "tcp")


def render_iptables_trace(trace: Trace, network=None) -> str:
    """Every path's TRACE lines, forward then reply, under a heading per path and hop."""
    from podnet.render.pcap import network_mtu

    mtu = network_mtu(network) if network is not None else None
    lines: list[str] = []
    for n, path in enumerate(trace.paths, 1):
        if lines:
            lines.append("")
        lines.append(
            f"# path {n}/{len(trace.paths)}  {path.disposition}{'  -> ' + path.endpoint if path.endpoint else ''}"
        )
        lines += render_leg(path.forward, False, leg_mtu(path.forward, mtu))
        if path.reply is not None:
            lines.append(f"# reply  {path.reply.disposition}")
            lines += render_leg(path.reply, True, leg_mtu(path.reply, mtu))
    return "\n".join(lines) + "\n"

"""A trace as a capture file Wireshark opens: every frame that crosses a wire on every path,
forward and reply, built with scapy.

Each frame carries the MACs and addresses of its hop and the NAT done before it; on the underlay
the full VXLAN encapsulation (outer Ethernet / IPv4 / UDP 8472 / VXLAN VNI 1 around the inner
frame). The forward leg is a connection's first packet (TCP SYN, UDP datagram, SCTP INIT, ICMP
echo request), the reply its answer (SYN-ACK, datagram, INIT ACK, echo reply).

Timestamps are fixed so the file is the same byte for byte on every run: path ``i`` (0-based)
starts at second ``i`` of the epoch and its frames follow 1 µs apart. A ``.pcapng`` file
also names the device each frame was seen on and carries the hop as a packet comment.

scapy is imported inside the functions: it takes a second to load and only this output needs it.
"""

from __future__ import annotations

from collections.abc import Callable

from podnet.model.trace import Packet, Trace
from podnet.render.wire import (
    ICMP_DATA,
    WSCALE,
    Crossing,
    ip_id,
    leg_mtu,
    mss_for,
    outer_ip_id,
    path_crossings,
    tcp_seq,
    tcp_tsval,
    tcp_window,
)

DEFAULT_MTU = 1500
MtuLookup = Callable[[str, str], int | None]


def _l4(packet: Packet, reply: bool, mtu: int):
    from scapy.layers.inet import ICMP, TCP, UDP
    from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck

    if packet.proto == "tcp":
        seq, ack = tcp_seq(packet, reply)
        opts = [
            ("MSS", mss_for(mtu)),
            ("SAckOK", b""),
            ("Timestamp", tcp_tsval(packet, reply)),
            ("NOP", None),
            ("WScale", WSCALE),
        ]
        return TCP(
            sport=packet.sport,
            dport=packet.dport,
            seq=seq,
            ack=ack,
            flags="SA" if reply else "S",
            window=tcp_window(mtu),
            options=opts,
        )
    if packet.proto == "udp":
        return UDP(sport=packet.sport, dport=packet.dport)
    if packet.proto == "sctp":
        tag = tcp_seq(packet, reply)[0]
        chunk = SCTPChunkInitAck(init_tag=tag) if reply else SCTPChunkInit(init_tag=tag)
        return (
            SCTP(
                sport=packet.sport,
                dport=packet.dport,
                tag=tcp_seq(packet, False)[0] if reply else 0,
            )
            / chunk
        )
    # ICMP echo: podnet uses the ports as the echo id
    return ICMP(type=0 if reply else 8, id=packet.sport & 0xFFFF, seq=1) / (b"\x00" * ICMP_DATA)


def build_frame(c: Crossing, mtu: int = DEFAULT_MTU):
    """The scapy frame of one crossing (with the VXLAN encapsulation when the packet has one)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    p = c.packet
    inner_ip = IP(
        src=str(p.src),
        dst=str(p.dst),
        ttl=p.ttl,
        id=ip_id(p, c.reply),
        flags="DF",
        proto={"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}[p.proto],
    )
    inner = inner_ip / _l4(p, c.reply, mtu)
    if p.encap is None:
        return Ether(src=c.src_mac, dst=c.dst_mac) / inner
    e = p.encap
    isrc, idst = c.inner_macs or (c.src_mac, c.dst_mac)
    # The outer UDP checksum stays 0: Linux VXLAN over IPv4 sends none unless udpcsum is set
    # (drivers/net/vxlan/vxlan_core.c), and flannel does not set it.
    return (
        Ether(src=c.src_mac, dst=c.dst_mac)
        / IP(src=str(e.src), dst=str(e.dst), ttl=64, id=outer_ip_id(p))
        / UDP(sport=e.sport, dport=e.dport, chksum=0)
        / VXLAN(flags="Instance", vni=e.vni)
        / Ether(src=isrc, dst=idst)
        / inner
    )


def comment(c: Crossing, path: int, total: int) -> str:
    """The pcapng comment of a frame: path, leg, the devices at both ends."""
    leg = "reply" if c.reply else "forward"
    to = f"{c.received.netns} {c.received.device}" if c.received else "the underlay gateway"
    return f"path {path}/{total} {leg}: {c.sent.netns} {c.sent.device} -> {to}"


def frames(trace: Trace, mtu: MtuLookup | None = None) -> list[tuple]:
    """``(frame, seconds, microseconds, interface, comment)`` for every crossing of every path."""
    out = []
    total = len(trace.paths)
    for i, path in enumerate(trace.paths):
        # the MSS is announced by the sender of the SYN / SYN-ACK, from its device's MTU
        mtus = {False: leg_mtu(path.forward, mtu, DEFAULT_MTU)}
        if path.reply is not None:
            mtus[True] = leg_mtu(path.reply, mtu, DEFAULT_MTU)
        for k, c in enumerate(path_crossings(trace, i)):
            f = build_frame(c, mtus[c.reply])
            iface = f"{c.sent.netns}|{c.sent.device}"
            out.append((f, i, k, iface, comment(c, i + 1, total)))
    return out


def network_mtu(network) -> MtuLookup:
    """An MTU lookup over a built network (``podnet.dataplane.network.Network``)."""

    def look(netns: str, device: str) -> int | None:
        ns = network.get(netns)
        link = ns.link(device) if ns is not None else None
        return link.mtu if link is not None else None

    return look


def write_pcap(trace: Trace, path: str, network=None) -> int:
    """Write the trace's frames to ``path`` (pcap; pcapng when the name ends in ``.pcapng``).
    Returns the number of frames written.

    >>> import os, tempfile
    >>> from ipaddress import IPv4Address as A
    >>> from podnet.model.trace import Hop, Leg, Path
    >>> p = Packet(A("10.244.1.2"), A("10.244.2.2"), "udp", 40000, 53)
    >>> hops = (Hop("n1", "pod:a", "eth0", "out", (), p, "0a:58:0a:f4:01:02", "aa:aa:aa:aa:aa:aa"),
    ...         Hop("n1", "node:n1", "veth1", "in", (), p, "0a:58:0a:f4:01:02", "aa:aa:aa:aa:aa:aa"))
    >>> t = Trace("a", "b", p, (Path(1, Leg("DROPPED", hops, "x")),))
    >>> f = os.path.join(tempfile.mkdtemp(), "t.pcap")
    >>> write_pcap(t, f), os.path.getsize(f)
    (1, 82)
    """
    items = frames(trace, network_mtu(network) if network is not None else None)
    pcapng = path.endswith(".pcapng")
    if pcapng:
        from scapy.utils import PcapNgWriter

        writer = PcapNgWriter(path)
    else:
        from scapy.utils import PcapWriter

        writer = PcapWriter(path, linktype=1, sync=False)
    try:
        if not items:
            # an empty but valid capture: the file header alone
            writer._write_header(None)
        for f, sec, usec, iface, text in items:
            # a quarter microsecond past the tick: pcap rounds and pcapng truncates, both land on it
            f.time = (sec * 1_000_000 + usec + 0.25) / 1_000_000
            if pcapng:
                f.sniffed_on = iface
                f.comments = [text.encode()]
            writer.write(f)
    finally:
        writer.close()
    return len(items)

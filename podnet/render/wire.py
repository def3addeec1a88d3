"""What a trace's packets look like on the wire: the frames between devices and the header values
podnet does not model (IP ID, TCP sequence numbers, window, lengths), chosen the way Linux
chooses them and made deterministic.

Shared by the pcap writer and the iptables TRACE view, so that both show the same packet.

A *crossing* is a frame that leaves one device and arrives on another: a Pod's eth0 and its veth
peer, a bridge port and the Pod behind it, a node's eth0 and another node's on the underlay, lo
to itself. A hop that leaves (``out``) followed by a hop that arrives (``in``) is one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.model.trace import Hop, Leg, Packet, Trace

ZERO_MAC = "00:00:00:00:00:00"
# The underlay router is not emulated; frames to it get this locally administered address.
GATEWAY_MAC = "02:00:00:00:00:fe"

# A connection's first packet with Linux's defaults: the SYN carries MSS, SACK permitted,
# timestamps, NOP and window scale 7 (net/ipv4/tcp_output.c tcp_options_write), 20 bytes.
TCP_OPTION_BYTES = 20
WSCALE = 7
# ping's default payload (iputils ping -s 56).
ICMP_DATA = 56


@dataclass(frozen=True, slots=True)
class Crossing:
    """A frame on a wire: ``sent`` is the hop that transmits it, ``received`` the hop that takes
    it (None when it leaves the emulated network), ``packet`` its headers, ``reply`` whether it
    belongs to the reply leg, ``inner_macs`` the inner Ethernet addresses of a VXLAN packet."""

    sent: Hop
    received: Hop | None
    packet: Packet
    src_mac: str
    dst_mac: str
    reply: bool
    inner_macs: tuple[str, str] | None = None


def _hash16(*parts: object) -> int:
    key = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:2], "big")


def _hash32(*parts: object) -> int:
    key = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


def _inner_macs(hops: tuple[Hop, ...], upto: int) -> tuple[str, str]:
    """The inner frame's MACs of a VXLAN packet: those of the last hop before ``upto`` that sent
    the frame unencapsulated (the VXLAN device's own transmit)."""
    for h in reversed(hops[:upto]):
        if h.packet.encap is None and h.direction == "out":
            return (h.src_mac or ZERO_MAC, h.dst_mac or ZERO_MAC)
    return (ZERO_MAC, ZERO_MAC)


def leg_crossings(leg: Leg, reply: bool = False) -> list[Crossing]:
    """The frames of one leg, in order.

    The packet of a crossing is the one the receiving hop saw arrive (after every NAT of the
    sender's POSTROUTING); a leg that leaves the network ends with a frame toward the underlay's
    gateway.
    """
    out: list[Crossing] = []
    hops = leg.hops
    for i, a in enumerate(hops):
        if a.direction != "out":
            continue
        b = hops[i + 1] if i + 1 < len(hops) else None
        if b is not None and b.direction == "in":
            packet = b.packet
        elif b is None and leg.disposition == "EXITS_NETWORK" and leg.packet is not None:
            packet = leg.packet
        else:
            continue
        if a.device == "lo":
            src, dst = ZERO_MAC, ZERO_MAC
        else:
            src = a.src_mac or ZERO_MAC
            dst = a.dst_mac or GATEWAY_MAC
        inner = _inner_macs(hops, i) if packet.encap is not None else None
        out.append(Crossing(a, b, packet, src, dst, reply, inner))
    return out


def path_crossings(trace: Trace, index: int) -> list[Crossing]:
    """Every frame of path ``index`` (0-based): the forward leg's, then the reply's."""
    path = trace.paths[index]
    frames = leg_crossings(path.forward)
    if path.reply is not None:
        frames += leg_crossings(path.reply, reply=True)
    return frames


# ------------------------------------------------------------------ header values


def client_flow(packet: Packet, reply: bool) -> tuple:
    """The connection a packet belongs to, named by its client side (stable across NAT)."""
    return (packet.proto, packet.sport) if not reply else (packet.proto, packet.dport)


def ip_id(packet: Packet, reply: bool) -> int:
    """The IPv4 ID. A connected TCP socket counts from a random start (``inet_id``); a SYN-ACK
    and other DF packets of unconnected sockets carry 0 (net/ipv4/ip_output.c
    ``ip_build_and_send_pkt``, include/net/ip.h ``ip_select_ident_segs``)."""
    if packet.proto == "tcp" and not reply:
        return _hash16("ipid", *client_flow(packet, reply))
    return 0


def outer_ip_id(packet: Packet) -> int:
    """The outer IPv4 ID of a VXLAN packet: not DF (flannel leaves ``df`` unset), so the
    kernel's hashed identifier (``__ip_select_ident``); deterministic here."""
    e = packet.encap
    return _hash16("outer", e.src, e.dst, e.sport, e.dport) if e is not None else 0


def tcp_seq(packet: Packet, reply: bool) -> tuple[int, int]:
    """``(seq, ack)`` of the SYN (forward) or SYN-ACK (reply): the initial sequence numbers
    are hashes (the kernel's ``secure_tcp_seq`` is keyed too), the SYN-ACK acknowledges the
    SYN's."""
    client_isn = _hash32("isn-client", *client_flow(packet, reply))
    if not reply:
        return client_isn, 0
    return _hash32("isn-server", *client_flow(packet, reply)), (client_isn + 1) & 0xFFFFFFFF


def tcp_tsval(packet: Packet, reply: bool) -> tuple[int, int]:
    """``(TSval, TSecr)`` of the SYN / SYN-ACK timestamps option (the SYN-ACK echoes the SYN's)."""
    mine = tcp_seq(packet, reply)[0] >> 8
    return (mine, 0) if not reply else (mine, tcp_seq(packet, False)[0] >> 8)


def tcp_options(packet: Packet, reply: bool, mtu: int) -> bytes:
    """The SYN's (or SYN-ACK's) option bytes: MSS, SACK permitted, timestamps, NOP, window
    scale — Linux's order (net/ipv4/tcp_output.c tcp_options_write).

    >>> from ipaddress import IPv4Address as A
    >>> len(tcp_options(Packet(A("10.0.0.1"), A("10.0.0.2"), "tcp", 1, 2), False, 1450))
    20
    """
    tsval, tsecr = tcp_tsval(packet, reply)
    return (
        bytes([2, 4])
        + mss_for(mtu).to_bytes(2, "big")
        + bytes([4, 2, 8, 10])
        + tsval.to_bytes(4, "big")
        + tsecr.to_bytes(4, "big")
        + bytes([1, 3, 3, WSCALE])
    )


def leg_mtu(leg: Leg, mtu: Callable[[str, str], int | None] | None, default: int = 1500) -> int:
    """The MTU of the device the leg's first packet leaves by: its MSS is announced from it."""
    if mtu is None or not leg.hops:
        return default
    first = leg.hops[0]
    return mtu(first.netns, first.device) or default


def mss_for(mtu: int) -> int:
    """The MSS a SYN announces: the device MTU less the IPv4 and TCP headers."""
    return mtu - 40


def tcp_window(mtu: int) -> int:
    """The SYN's window: 65535 rounded down to a multiple of the MSS
    (net/ipv4/tcp_output.c ``tcp_select_initial_window``).

    >>> tcp_window(1450), tcp_window(1500)
    (64860, 64240)
    """
    mss = mss_for(mtu)
    return (65535 // mss) * mss


def l4_length(packet: Packet) -> int:
    """The bytes after the IPv4 header of the first packet (and of its reply)."""
    return {
        "tcp": 20 + TCP_OPTION_BYTES,
        "udp": 8,
        "sctp": 12 + 20,  # common header + INIT / INIT ACK chunk without parameters
        "icmp": 8 + ICMP_DATA,
    }.get(packet.proto, 0)


def ip_length(packet: Packet) -> int:
    """The IPv4 total length of the (inner) packet."""
    return 20 + l4_length(packet)


def addr(ip: IPv4Address | None) -> str:
    return "" if ip is None else str(ip)

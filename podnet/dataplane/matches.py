"""The conditions of an iptables rule. Each match has ``test(st, ctx) -> bool`` with its
negation applied inside; ``st`` is the walk's packet state (``src``/``dst`` as ints, ``proto``,
``sport``, ``dport``, ``mark``, ``ctstate``, ``ctstatus``, ``packet()``) and ``ctx`` the hook
context (:class:`podnet.dataplane.netfilter.HookContext`)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from podnet.dataplane.rulevalues import MASK32

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}
_LOOPBACK = (0x7F000000, 0xFF000000)  # 127.0.0.0/8
_MULTICAST = (0xE0000000, 0xF0000000)  # 224.0.0.0/4

CT_STATES = frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "SNAT", "DNAT"})
CT_STATUSES = frozenset({"NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"})
# include/uapi/linux/rtnetlink.h RTN_* names as libxt_addrtype spells them.
ADDR_TYPES = frozenset(
    {
        "UNSPEC",
        "UNICAST",
        "LOCAL",
        "BROADCAST",
        "ANYCAST",
        "MULTICAST",
        "BLACKHOLE",
        "UNREACHABLE",
        "PROHIBIT",
        "THROW",
        "NAT",
        "XRESOLVE",
    }
)


# --------------------------------------------------------------------------------------------
# Address classification shared by addrtype and pkttype


def addr_types(ip: int, ctx: Any) -> frozenset[str]:
    """The routing types of address ``ip`` in the namespace of ``ctx`` (``-m addrtype``).

    ``ctx.addrtype`` (a callable ``IPv4Address -> str``), when set, decides; otherwise an address
    is LOCAL if it is one of ``ctx.local_addrs`` or in 127.0.0.0/8 (the kernel's local table
    holds the whole loopback network), BROADCAST if it is 255.255.255.255 or one of
    ``ctx.broadcast_addrs``, MULTICAST in 224.0.0.0/4, UNSPEC for 0.0.0.0 and UNICAST otherwise.
    """
    classify = getattr(ctx, "addrtype", None)
    if classify is not None:
        return frozenset({classify(IPv4Address(ip))})
    if ip == 0:
        return frozenset({"UNSPEC"})
    if ip & _MULTICAST[1] == _MULTICAST[0]:
        return frozenset({"MULTICAST"})
    if ip == MASK32 or ip in ctx.broadcast_ints:
        return frozenset({"BROADCAST"})
    if ip in ctx.local_ints or ip & _LOOPBACK[1] == _LOOPBACK[0]:
        return frozenset({"LOCAL"})
    return frozenset({"UNICAST"})


# --------------------------------------------------------------------------------------------
# Matches: each has ``test(st, ctx) -> bool`` and ``neg`` applied inside.


@dataclass(frozen=True, slots=True)
class AddrMatch:
    """``[!] -s/-d addr[/mask]``."""

    field: str  # src | dst
    net: int
    mask: int
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        ip = st.src if self.field == "src" else st.dst
        return ((ip & self.mask) == self.net) != self.neg


@dataclass(frozen=True, slots=True)
class IfaceMatch:
    """``[!] -i/-o name`` (a trailing ``+`` matches any name with that prefix)."""

    field: str  # in | out
    name: str
    prefix: bool
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        # A hook without that device compares against the empty name (ip_tables.c ifname_compare).
        dev = (ctx.in_iface if self.field == "in" else ctx.out_iface) or ""
        hit = dev.startswith(self.name) if self.prefix else dev == self.name
        return hit != self.neg


@dataclass(frozen=True, slots=True)
class ProtoMatch:
    """``[!] -p proto``."""

    proto: str
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        return (st.proto == self.proto) != self.neg


@dataclass(frozen=True, slots=True)
class FragMatch:
    """``[!] -f``: the packets podnet follows are never non-first fragments."""

    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        return self.neg


@dataclass(frozen=True, slots=True)
class PortMatch:
    """``-m tcp|udp|sctp [!] --sport/--dport N[:M]``."""

    field: str  # sport | dport
    lo: int
    hi: int
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        port = st.sport if self.field == "sport" else st.dport
        return (self.lo <= port <= self.hi) != self.neg


@dataclass(frozen=True, slots=True)
class MultiportMatch:
    """``-m multiport [!] --dports/--sports/--ports LIST``."""

    field: str  # sport | dport | any
    ranges: tuple[tuple[int, int], ...]
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        ports = (st.sport, st.dport) if self.field == "any" else (getattr(st, self.field),)
        hit = any(lo <= p <= hi for p in ports for lo, hi in self.ranges)
        return hit != self.neg


@dataclass(frozen=True, slots=True)
class MarkMatch:
    """``-m mark [!] --mark V[/M]``: ``(mark & M) == V``."""

    value: int
    mask: int = MASK32
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        return ((st.mark & self.mask) == self.value) != self.neg


@dataclass(frozen=True, slots=True)
class CtStateMatch:
    """``-m conntrack [!] --ctstate LIST`` and ``-m state [!] --state LIST``.

    SNAT and DNAT are the virtual states of a connection whose status says it was translated
    (net/netfilter/xt_conntrack.c ``conntrack_mt``).
    """

    states: frozenset[str]
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        hit = st.ctstate in self.states or bool(self.states & st.ctstatus)
        return hit != self.neg


@dataclass(frozen=True, slots=True)
class CtStatusMatch:
    """``-m conntrack [!] --ctstatus LIST``."""

    statuses: frozenset[str]
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        have = st.ctstatus
        hit = bool(self.statuses & have) or ("NONE" in self.statuses and not have)
        return hit != self.neg


@dataclass(frozen=True, slots=True)
class AddrTypeMatch:
    """``-m addrtype [!] --src-type/--dst-type LIST``."""

    field: str  # src | dst
    types: frozenset[str]
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        ip = st.src if self.field == "src" else st.dst
        return bool(addr_types(ip, ctx) & self.types) != self.neg


@dataclass(frozen=True, slots=True)
class RecentMatch:
    """``-m recent --name N --rcheck|--update|--set``: the address is in list N (the caller
    passes in ``ctx.recent`` only entries fresh for ``--seconds``); ``--set`` always matches."""

    name: str
    mode: str  # set | rcheck | update
    field: str = "src"
    mask: int = MASK32
    seconds: int | None = None
    reap: bool = False
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        if self.mode == "set":
            return not self.neg
        ip = st.src if self.field == "src" else st.dst
        members = ctx.recent.get(self.name, ())
        hit = any((int(m) & self.mask) == (ip & self.mask) for m in members)
        return hit != self.neg


@dataclass(frozen=True, slots=True)
class PhysdevMatch:
    """One ``-m physdev`` condition: ``[!] --physdev-in/out name`` or ``[!] --physdev-is-*``."""

    kind: str  # in | out | is-in | is-out | is-bridged
    name: str = ""
    prefix: bool = False
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        if self.kind == "is-in":
            hit = ctx.physin is not None
        elif self.kind == "is-out":
            hit = ctx.physout is not None
        elif self.kind == "is-bridged":
            # xt_physdev.c: bridged means the frame has a bridge output port.
            hit = ctx.physout is not None
        else:
            dev = ctx.physin if self.kind == "in" else ctx.physout
            if dev is None:
                hit = False
            else:
                hit = dev.startswith(self.name) if self.prefix else dev == self.name
        return hit != self.neg


@dataclass(frozen=True, slots=True)
class SetMatch:
    """``-m set [!] --match-set NAME FLAGS``; the set is resolved through ``ctx.ipset_lookup``."""

    name: str
    flags: tuple[str, ...]
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        peek = getattr(st, "peek", None)
        if peek is None or callable(ctx.ipsets):
            return ctx.ipset_lookup(self.name, self.flags, st.packet()) != self.neg
        # A set is looked up by the fields its flags name (ip_set_core.c): the address, and
        # for a two-dimension set the port of the second flag (so do the sets of
        # podnet.model.dataplane and podnet.dataplane.netfilter). Noting only those reads lets
        # a memoised walk serve packets whose other ports differ.
        if len(self.flags) >= 2:
            _ = st.sport if self.flags[1] == "src" else st.dport
        return ctx.ipset_lookup(self.name, self.flags, peek()) != self.neg


@dataclass(frozen=True, slots=True)
class PktTypeMatch:
    """``-m pkttype [!] --pkt-type unicast|broadcast|multicast`` (from the destination's type)."""

    pkt_type: str
    neg: bool = False

    def test(self, st: Any, ctx: Any) -> bool:
        types = addr_types(st.dst, ctx)
        if "MULTICAST" in types:
            kind = "multicast"
        elif "BROADCAST" in types:
            kind = "broadcast"
        else:
            kind = "unicast"
        return (kind == self.pkt_type) != self.neg


Match = (
    AddrMatch
    | IfaceMatch
    | ProtoMatch
    | FragMatch
    | PortMatch
    | MultiportMatch
    | MarkMatch
    | CtStateMatch
    | CtStatusMatch
    | AddrTypeMatch
    | RecentMatch
    | PhysdevMatch
    | SetMatch
    | PktTypeMatch
)

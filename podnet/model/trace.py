"""Packets and traces: Trace -> Path -> Hop -> Step, with a small fixed set of dispositions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from ipaddress import IPv4Address

from podnet.model.base import EMPTY, FrozenDict

DISPOSITIONS = (
    "DELIVERED",
    "REJECTED",
    "DROPPED",
    "DENIED_INGRESS",
    "DENIED_EGRESS",
    "NO_ROUTE",
    "NEIGHBOR_UNREACHABLE",
    "LOOP",
    "TTL_EXCEEDED",
    "EXITS_NETWORK",
)
SUCCESS = frozenset({"DELIVERED", "EXITS_NETWORK"})

STEP_TYPES = (
    "route",
    "neigh",
    "fdb",
    "bridge",
    "netfilter",
    "nat",
    "conntrack",
    "policy",
    "encap",
    "decap",
    "deliver",
    "drop",
)


@dataclass(frozen=True, slots=True)
class Encap:
    """The outer headers of an encapsulated packet (VXLAN)."""

    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int = 8472
    vni: int = 1
    type: str = "vxlan"


@dataclass(frozen=True, slots=True)
class Packet:
    """The IPv4 header fields a trace follows, plus the skb mark and an outer encapsulation."""

    src: IPv4Address
    dst: IPv4Address
    proto: str  # tcp | udp | sctp | icmp
    sport: int
    dport: int
    ttl: int = 64
    mark: int = 0
    encap: Encap | None = None

    def with_(self, **kw) -> Packet:
        """A copy with ``kw`` changed (``dataclasses.replace``, written out: a trace makes
        hundreds of these)."""
        g = kw.pop
        p = new_packet(
            g("src", self.src),
            g("dst", self.dst),
            g("proto", self.proto),
            g("sport", self.sport),
            g("dport", self.dport),
            g("ttl", self.ttl),
            g("mark", self.mark),
            g("encap", self.encap),
        )
        if kw:  # not a field: let dataclasses say so
            return replace(self, **kw)
        return p

    def flow(self) -> str:
        """``10.244.1.2:40000 -> 10.96.0.20:80 tcp``"""
        return f"{self.src}:{self.sport} -> {self.dst}:{self.dport} {self.proto}"


@dataclass(frozen=True, slots=True)
class Step:
    """One decision at a hop: a route lookup, a rule that matched, a NAT, an encapsulation...

    ``table``/``chain``/``rule``/``rulenum`` are set for ``netfilter`` and ``nat`` steps (``rule``
    as iptables-save prints it, ``-A CHAIN ...``).
    """

    type: str
    text: str
    table: str | None = None
    chain: str | None = None
    rule: str | None = None
    rulenum: int | None = None
    detail: FrozenDict = EMPTY


@dataclass(frozen=True, slots=True)
class NfTrace:
    """One walk of a netfilter hook as the kernel's TRACE target reports it.

    ``entries`` are ``(table, chain, type, rulenum)`` (podnet.dataplane.netfilter.Outcome.trace);
    ``packet`` the packet entering the hook and ``after`` leaving it (they differ after NAT),
    with their encapsulation; ``in_iface``/``out_iface``/``physin``/``physout`` the devices the
    hook knew; ``src_mac``/``dst_mac`` the received frame's addresses.
    """

    hook: str
    entries: tuple[tuple[str, str, str, int], ...]
    packet: Packet
    after: Packet
    in_iface: str | None = None
    out_iface: str | None = None
    physin: str | None = None
    physout: str | None = None
    src_mac: str | None = None
    dst_mac: str | None = None


class NfTraces(Sequence):
    """A hop's :class:`NfTrace` records, made from their fields when first read: a trace
    walks dozens of hooks, and only ``-o iptables-trace`` reads what they saw.

    >>> p = Packet(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), "tcp", 1, 2)
    >>> t = NfTraces((("OUTPUT", (), p, p, None, "eth0", None, None, None, None),))
    >>> len(t), t[0].hook, t == (NfTrace("OUTPUT", (), p, p, None, "eth0"),)
    (1, 'OUTPUT', True)
    """

    # (podnet.trace.flight makes these without __init__, storing both slots itself)
    __slots__ = ("_fields", "_made")

    def __init__(self, records: tuple[tuple, ...]):
        self._fields = records  # each: NfTrace's ten fields in order
        self._made: tuple[NfTrace, ...] | None = None

    def _records(self) -> tuple[NfTrace, ...]:
        made = self._made
        if made is None:
            made = self._made = tuple(new_nftrace(*f) for f in self._fields)
        return made

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, i):
        return self._records()[i]

    def __iter__(self):
        return iter(self._records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, NfTraces)):
            return self._records() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._records())

    def __repr__(self) -> str:
        return repr(self._records())


@dataclass(frozen=True, slots=True)
class Hop:
    """The packet on one device of one namespace, and what that namespace decided.

    ``src_mac``/``dst_mac`` are the Ethernet addresses of the frame on the device (None where
    there is no frame yet or no Ethernet header, e.g. on lo); ``nftrace`` the netfilter hooks
    walked at this hop, for ``-o iptables-trace`` (not part of a hop's identity; a tuple or
    an :class:`NfTraces`).
    """

    node: str | None
    netns: str
    device: str
    direction: str  # in | out
    steps: tuple[Step, ...]
    packet: Packet
    src_mac: str | None = None
    dst_mac: str | None = None
    nftrace: tuple[NfTrace, ...] | NfTraces = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Leg:
    """A packet's way in one direction: its hops and how it ended."""

    disposition: str
    hops: tuple[Hop, ...]
    reason: str
    endpoint: str | None = None  # "ns/pod" that received it, or None
    packet: Packet | None = None  # the headers as the receiving socket saw them (after all NAT)


@dataclass(frozen=True, slots=True)
class Path:
    """One way the packet can go (kube-proxy's random choice makes several), with its reply."""

    probability: Fraction
    forward: Leg
    reply: Leg | None = None
    # netns -> podnet.dataplane.conntrack.ConntrackTable: the connections this path (forward and
    # reply) left behind, for `podnet show conntrack --after-trace`; not part of its identity
    conntrack: FrozenDict = field(default=EMPTY, compare=False)

    @property
    def disposition(self) -> str:
        return self.forward.disposition

    @property
    def endpoint(self) -> str | None:
        return self.forward.endpoint

    @property
    def hops(self) -> tuple[Hop, ...]:
        return self.forward.hops

    @property
    def delivered(self) -> bool:
        return self.forward.disposition in SUCCESS


@dataclass(frozen=True, slots=True)
class DnsQuery:
    """One question the Pod's resolver sent and CoreDNS's answer (records as dig prints them)."""

    name: str
    qtype: str
    rcode: str  # NOERROR | NXDOMAIN | SERVFAIL | TIMEOUT (no answer came back)
    answers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsLookup:
    """How DST's name was resolved from the source Pod before the connection (podnet.dns).

    ``flow`` is the UDP query to the cluster DNS server, traced like any packet; ``queries`` the
    names tried in the resolver's search order; ``address`` what the connection goes to (None:
    the lookup failed, or it ended outside the cluster); ``reason`` one sentence.
    """

    name: str
    server: IPv4Address
    search: tuple[str, ...]
    ndots: int
    queries: tuple[DnsQuery, ...]
    flow: Trace | None
    ok: bool
    address: IPv4Address | None
    reason: str


@dataclass(frozen=True, slots=True)
class Trace:
    """All paths of one packet from SRC to DST.

    ``verdict`` is ``delivered`` (every path), ``dropped`` (none) or ``partial``. ``dns`` is set
    when DST was a name the source Pod resolved first.
    """

    src: str
    dst: str
    packet: Packet
    paths: tuple[Path, ...]
    dns: DnsLookup | None = None

    @property
    def verdict(self) -> str:
        ok = [p.delivered for p in self.paths]
        if ok and all(ok):
            return "delivered"
        if any(ok):
            return "partial"
        return "dropped"

    @property
    def delivered(self) -> bool:
        return self.verdict == "delivered"

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The Pods reached on delivered paths, sorted, without repeats."""
        return tuple(sorted({p.endpoint for p in self.paths if p.delivered and p.endpoint}))


def ip_text(a: IPv4Address) -> str:
    """``str(a)``, written out: twice as fast, and traces format addresses in many texts.

    >>> ip_text(IPv4Address("10.244.1.2"))
    '10.244.1.2'
    """
    i = a._ip  # the address as an int (int() goes through a Python-level __int__)
    text = _TEXTS.get(i)
    if text is None:  # (a trace names the same few addresses in many texts: made once)
        if len(_TEXTS) >= _TEXTS_LIMIT:
            _TEXTS.clear()
        text = _TEXTS[i] = f"{i >> 24}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return text


_TEXTS: dict[int, str] = {}
_TEXTS_LIMIT = 1 << 18  # bounds the memo's memory (about 25 MiB at most)


def fast_constructor(cls: type):
    """A positional constructor for a frozen, slotted dataclass without ``__post_init__``,
    equal to calling the class (a trace makes hundreds of packets, steps and hops).

    The frozen ``__init__`` sets each field through ``object.__setattr__``, and even a slot
    descriptor's ``__set__`` is a call with its arguments parsed. Here the fields are stored
    into an instance of a plain class with the same slots (a store as fast as any attribute
    store), which then becomes an instance of ``cls``: CPython allows assigning ``__class__``
    between classes of the same layout (typeobject.c, ``compatible_for_assignment``). A
    constructor is made once per class; from then on the object is ``cls``'s in every respect.
    The plain object is made by calling its class, which has no ``__init__``: a third faster
    than ``object.__new__(builder)``, whose wrapper checks its argument at every call
    (typeobject.c, ``tp_new_wrapper``).

    >>> from ipaddress import IPv4Address as A
    >>> p = fast_constructor(Packet)(A("10.0.0.1"), A("10.0.0.2"), "tcp", 1, 2, 64, 0, None)
    >>> type(p) is Packet, p == Packet(A("10.0.0.1"), A("10.0.0.2"), "tcp", 1, 2, 64, 0, None)
    (True, True)
    """
    names = tuple(f.name for f in fields(cls))
    if getattr(cls, "__slots__", None) != names or getattr(cls, "__post_init__", None) is not None:
        raise TypeError(f"{cls.__name__}: not a slotted dataclass of fields only")
    builder = type(f"_{cls.__name__}Builder", (), {"__slots__": names})
    env = {"_builder": builder, "cls": cls}
    body = "".join(f"    new.{n} = {n}\n" for n in names)
    exec(  # noqa: S102 (the source is made from the class's own field names)
        f"def make({', '.join(names)}):\n    new = _builder()\n{body}"
        "    new.__class__ = cls\n    return new\n",
        env,
    )
    return env["make"]


new_encap = fast_constructor(Encap)
"""``new_encap(src, dst, sport, dport, vni, type)``: ``Encap(...)``, faster."""
new_packet = fast_constructor(Packet)
"""``new_packet(src, dst, proto, sport, dport, ttl, mark, encap)``: ``Packet(...)``, faster."""
new_nftrace = fast_constructor(NfTrace)
"""``NfTrace(...)`` with all ten fields given in order, faster."""
new_step = fast_constructor(Step)
"""``Step(...)`` with all seven fields given in order, faster."""
new_hop = fast_constructor(Hop)
"""``Hop(...)`` with all nine fields given in order, faster."""

"""Walk a netfilter hook the way the kernel does: tables in priority order, chains rule by rule.

One call of :func:`traverse` returns every way the packet can leave the hook. A ``statistic``
match forks the walk into the branch where it matches and the one where it does not, so the
outcomes of one call carry exact probabilities that sum to 1. Semantics follow
net/ipv4/netfilter/ip_tables.c ``ipt_do_table``: the first matching rule acts; a jump pushes a
return point; RETURN or the end of a user chain pops it; the end of a built-in chain (or a RETURN
in it) applies the policy; ACCEPT ends the table (the next table of the hook still runs); DROP and
REJECT end the hook; DNAT/SNAT/MASQUERADE end the nat table after changing the packet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

from podnet.dataplane.nfwalk import Branch, Nat, candidates, chain_of, policy, walk
from podnet.dataplane.rules import RuleError
from podnet.dataplane.ruleset import Ruleset
from podnet.model.base import EMPTY
from podnet.model.trace import Packet, Step, fast_constructor, new_packet

__all__ = [
    "HOOK_TABLES",
    "HookContext",
    "IpSet",
    "IpSetLookup",
    "Nat",
    "Outcome",
    "carry_ports",
    "TraceEntry",
    "trace_lines",
    "traverse",
]

# include/uapi/linux/netfilter_ipv4.h priorities: raw -300, mangle -150, nat(dst) -100, filter 0,
# security 50 (not modelled), nat(src) 100.
HOOK_TABLES: Mapping[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "nat"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat"),
}
_ONE = Fraction(1)


@dataclass(frozen=True, slots=True)
class IpSet:
    """An ipset: ``members`` are networks/addresses (``hash:ip``, ``hash:net``) or
    ``(address-or-network, proto, port)`` tuples (``hash:ip,port``, ``hash:net,port``).

    >>> s = IpSet("KUBE-LOOP-BACK", "hash:ip,port",
    ...           frozenset({(IPv4Address("10.244.1.2"), "tcp", 8080)}))
    >>> p = Packet(IPv4Address("10.244.1.9"), IPv4Address("10.244.1.2"), "tcp", 40000, 8080)
    >>> s.contains(("dst", "dst"), p), s.contains(("src", "dst"), p)
    (True, False)
    """

    name: str
    type: str
    members: frozenset

    def contains(self, flags: tuple[str, ...], packet: Packet) -> bool:
        """``ip_set_test`` for the packet fields ``flags`` select (src/dst per dimension)."""
        addr = packet.src if flags[0] == "src" else packet.dst
        for m in self.members:
            if isinstance(m, tuple):
                if len(flags) < 2:
                    continue  # a 2-dimension set needs two flags (ip_set_core.c)
                port = packet.sport if flags[1] == "src" else packet.dport
                net, proto, mport = m
                if proto == packet.proto and mport == port and _in(addr, net):
                    return True
            elif _in(addr, m):
                return True
        return False


def _in(addr: IPv4Address, m: IPv4Address | IPv4Network) -> bool:
    return addr == m if isinstance(m, IPv4Address) else addr in m


IpSetLookup = Callable[[str, tuple[str, ...], Packet], bool]


@dataclass(frozen=True, slots=True)
class HookContext:
    """What the hook knows besides the packet.

    ``in_iface``/``out_iface``: devices (None where the hook has none: OUTPUT has no input,
    PREROUTING no output); ``physin``/``physout``: bridge ports of a bridged frame
    (br_netfilter); ``ctstate``: NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED;
    ``ctstatus``: the connection's status flags (``DNAT``, ``SNAT``, ``ASSURED``, ...);
    ``ct_new``: the packet starts a connection, so the nat table is consulted; ``local_addrs``
    (and 127.0.0.0/8) are LOCAL and ``broadcast_addrs`` BROADCAST for ``-m addrtype``, unless
    ``addrtype`` (``IPv4Address -> type name``) is given; ``masq_addr``: the primary address of
    ``out_iface``, taken by MASQUERADE; ``recent``: ``xt_recent`` lists and their fresh entries;
    ``ipsets``: name -> :class:`IpSet`, or a callable ``(name, flags, packet) -> bool``.
    """

    in_iface: str | None = None
    out_iface: str | None = None
    physin: str | None = None
    physout: str | None = None
    ctstate: str = "NEW"
    ctstatus: frozenset[str] = frozenset()
    ct_new: bool = True
    local_addrs: frozenset[IPv4Address] = frozenset()
    broadcast_addrs: frozenset[IPv4Address] = frozenset()
    masq_addr: IPv4Address | None = None
    recent: Mapping[str, frozenset[IPv4Address]] = EMPTY
    ipsets: Mapping[str, IpSet] | IpSetLookup = EMPTY
    addrtype: Callable[[IPv4Address], str] | None = None
    local_ints: frozenset[int] = field(init=False, repr=False, compare=False)
    broadcast_ints: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "local_ints", frozenset(int(a) for a in self.local_addrs))
        object.__setattr__(self, "broadcast_ints", frozenset(int(a) for a in self.broadcast_addrs))

    def ipset_lookup(self, name: str, flags: tuple[str, ...], packet: Packet) -> bool:
        """Whether ``packet`` is in ipset ``name``; a missing set is a RuleError (the kernel
        refuses a rule that names a set that does not exist)."""
        if callable(self.ipsets):
            return self.ipsets(name, flags, packet)
        s = self.ipsets.get(name)
        if s is None:
            raise RuleError(f"ipset {name!r} does not exist")
        return s.contains(flags, packet)


TraceEntry = tuple[str, str, str, int]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One way a packet leaves a hook.

    ``trace`` lists ``(table, chain, type, rulenum)`` for every rule position the kernel's TRACE
    target would report (type ``rule``, ``return`` or ``policy``); ``steps`` only the matched
    rules and deciding policies worth showing. ``ctstatus`` is the connection status after the
    hook (DNAT/SNAT added by a translation here); ``untracked`` is set by NOTRACK.
    """

    probability: Fraction
    verdict: str  # ACCEPT | DROP | REJECT
    packet: Packet
    nat: Nat | None
    recent_set: tuple[tuple[str, IPv4Address], ...]
    steps: tuple[Step, ...]
    reject_with: str | None = None
    trace: tuple[TraceEntry, ...] = ()
    ctstatus: frozenset[str] = frozenset()
    untracked: bool = False


_new_outcome = fast_constructor(Outcome)
"""``Outcome(...)`` with all ten fields given in order, faster (one per way out of a walk)."""


def trace_lines(outcome: Outcome) -> tuple[str, ...]:
    """The ``TRACE: table:chain:type:rulenum`` prefixes iptables-legacy logs (libxt_TRACE.man).

    >>> o = Outcome(_ONE, "ACCEPT", Packet(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"),
    ...             "tcp", 1, 2), None, (), (), trace=(("filter", "INPUT", "policy", 1),))
    >>> trace_lines(o)
    ('TRACE: filter:INPUT:policy:1',)
    """
    return tuple(f"TRACE: {t}:{c}:{k}:{n}" for t, c, k, n in outcome.trace)


def traverse(
    ruleset: Ruleset,
    hook: str,
    ctx: HookContext,
    packet: Packet,
    *,
    tables: Sequence[str] | None = None,
    record_returns: bool = False,
    reads: list[int] | None = None,
    found: dict | None = None,
) -> tuple[Outcome, ...]:
    """Every outcome of ``packet`` passing netfilter hook ``hook`` (PREROUTING, INPUT, FORWARD,
    OUTPUT or POSTROUTING), in a stable order, with probabilities summing to exactly 1.

    ``tables`` restricts the walk to those tables (hook order is kept); the nat table is walked
    only when ``ctx.ct_new`` (later packets are translated by conntrack). ``record_returns``
    adds a step for each implicit return from a user chain. ``reads``, when given, gets bit 1
    set if a rule looked at the source port and bit 2 the destination port. ``found``, when
    given, keeps the chains walks looked up in ``ruleset`` by ``(table, name)`` (None for
    none): a caller that walks the same ruleset again and again passes the same dict. A
    ruleset never changes once made (a lazy one compiles a chain once and keeps it), so what a
    lookup found stays true, and a plain dict answers without the ruleset's Python-level calls.
    """
    order = HOOK_TABLES.get(hook)
    if order is None:
        raise ValueError(f"unknown hook {hook!r} (expected one of {', '.join(HOOK_TABLES)})")
    if tables is not None:
        order = tuple(t for t in order if t in tables)
    if found is None:
        found = {}
    root = Branch.__new__(Branch)
    root.prob = (1, 1)  # numerator, denominator: Fraction arithmetic is too slow per fork
    root.src, root.dst = packet.src._ip, packet.dst._ip  # (int() is a Python-level call)
    root.proto, root._sport, root._dport, root.mark = (
        packet.proto,
        packet.sport,
        packet.dport,
        packet.mark,
    )
    root.reads = reads if reads is not None else [0]
    root.ctstate, root.ctstatus, root.untracked = ctx.ctstate, ctx.ctstatus, False
    root.steps, root.trace, root.recent, root.stack = [], [], [], []
    root.nat = root.verdict = root.reject_with = None
    root.ti, root.chain, root.pos, root.cands, root.base = 0, None, 0, None, packet
    root.root = None
    pending = [root]
    outcomes: list[Outcome] = []
    ntables = len(order)
    while pending:
        br = pending.pop()
        while br.verdict is None and br.ti < ntables:
            if br.chain is None:
                tname = order[br.ti]
                cc = chain_of(ruleset, found, tname, hook)
                if cc is None or (tname == "nat" and (not ctx.ct_new or br.untracked)):
                    br.ti += 1
                    continue
                if not cc.rules:  # an empty built-in chain: only its policy
                    br.trace.append((tname, hook, "policy", 1))
                    if cc.policy != "ACCEPT":
                        br.verdict = policy(br, cc, 0, record=False)
                    br.ti += 1
                    continue
                br.chain, br.pos, br.stack = cc, 0, []
                br.cands = None if cc.index is None else candidates(cc, br)
                br.root = cc
            decision = walk(ruleset, found, br, ctx, pending, record_returns)
            if decision == "DROP" or decision == "REJECT":
                br.verdict = decision
            br.chain = None
            br.ti += 1
        prob = br.prob
        outcomes.append(
            _new_outcome(
                _ONE if prob == (1, 1) else Fraction(*prob),
                br.verdict or "ACCEPT",
                br.result(),
                br.nat,
                tuple(br.recent),
                tuple(br.steps),
                br.reject_with,
                tuple(br.trace),
                br.ctstatus,
                br.untracked,
            )
        )
    return tuple(outcomes)


def carry_ports(q: Packet, read: int, sport: int, dport: int) -> Packet:
    """A remembered walk's packet for a packet whose ports differ where the walk did not read
    them (``read``: bit 1 sport, bit 2 dport): an unread port was not written either, it leaves
    the hook as it came in."""
    return new_packet(
        q.src,
        q.dst,
        q.proto,
        q.sport if read & 1 else sport,
        q.dport if read & 2 else dport,
        q.ttl,
        q.mark,
        q.encap,
    )

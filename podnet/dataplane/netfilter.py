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

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

from podnet.dataplane.rules import RuleError
from podnet.dataplane.ruleset import CompiledChain, Ruleset
from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Packet, Step, new_packet

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


@dataclass(frozen=True, slots=True)
class Nat:
    """An address translation: DNAT changes (dst, dport), SNAT/MASQUERADE (src, sport)."""

    kind: str  # DNAT | SNAT | MASQUERADE
    before: tuple[IPv4Address, int]
    after: tuple[IPv4Address, int]

    def text(self) -> str:
        """``DNAT 172.30.0.41:80 -> 10.180.0.1:80``"""
        b, a = self.before, self.after
        return f"{self.kind} {b[0]}:{b[1]} -> {a[0]}:{a[1]}"


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


def trace_lines(outcome: Outcome) -> tuple[str, ...]:
    """The ``TRACE: table:chain:type:rulenum`` prefixes iptables-legacy logs (libxt_TRACE.man).

    >>> o = Outcome(_ONE, "ACCEPT", Packet(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"),
    ...             "tcp", 1, 2), None, (), (), trace=(("filter", "INPUT", "policy", 1),))
    >>> trace_lines(o)
    ('TRACE: filter:INPUT:policy:1',)
    """
    return tuple(f"TRACE: {t}:{c}:{k}:{n}" for t, c, k, n in outcome.trace)


class _Branch:
    """The walk's mutable state for one branch; copied when a statistic match forks."""

    __slots__ = (
        "prob",
        "src",
        "dst",
        "proto",
        "_sport",
        "_dport",
        "reads",
        "mark",
        "ctstate",
        "ctstatus",
        "untracked",
        "steps",
        "trace",
        "nat",
        "recent",
        "verdict",
        "reject_with",
        "ti",
        "chain",
        "pos",
        "cands",
        "stack",
        "base",
        "root",
    )

    # The ports are read through properties that note the read in ``reads`` (shared by every
    # branch of one walk; bit 1: sport, bit 2: dport): a walk that never read a port gives the
    # same outcomes for any value of it, which lets :func:`traverse_memo` reuse them exactly.
    @property
    def sport(self) -> int:
        self.reads[0] |= 1
        return self._sport

    @sport.setter
    def sport(self, value: int) -> None:
        self._sport = value

    @property
    def dport(self) -> int:
        self.reads[0] |= 2
        return self._dport

    @dport.setter
    def dport(self, value: int) -> None:
        self._dport = value

    def fork(self) -> _Branch:
        b = _Branch.__new__(_Branch)
        b.prob, b.src, b.dst, b.proto = self.prob, self.src, self.dst, self.proto
        b._sport, b._dport, b.reads = self._sport, self._dport, self.reads
        b.mark, b.ctstate = self.mark, self.ctstate
        b.ctstatus, b.untracked, b.nat, b.verdict = self.ctstatus, self.untracked, self.nat, None
        b.reject_with, b.ti, b.chain, b.pos = self.reject_with, self.ti, self.chain, self.pos
        b.cands, b.base, b.root = self.cands, self.base, self.root
        b.steps = self.steps.copy()
        b.trace = self.trace.copy()
        b.recent = self.recent.copy()
        b.stack = self.stack.copy()
        return b

    def peek(self) -> Packet:
        """The packet as the walk has it now, for a match that notes its own reads."""
        return self.result()

    def packet(self) -> Packet:
        """The packet as the walk has it now (a match may look at every field)."""
        self.reads[0] |= 3
        return self.result()

    def result(self) -> Packet:
        """The packet leaving the hook (not a read of the ports by a rule)."""
        base = self.base
        # the addresses as they came in where unchanged: no new IPv4Address to make
        src = base.src if self.src == int(base.src) else IPv4Address(self.src)
        dst = base.dst if self.dst == int(base.dst) else IPv4Address(self.dst)
        return new_packet(
            src, dst, self.proto, self._sport, self._dport, base.ttl, self.mark, base.encap
        )


def traverse(
    ruleset: Ruleset,
    hook: str,
    ctx: HookContext,
    packet: Packet,
    *,
    tables: Sequence[str] | None = None,
    record_returns: bool = False,
    reads: list[int] | None = None,
) -> tuple[Outcome, ...]:
    """Every outcome of ``packet`` passing netfilter hook ``hook`` (PREROUTING, INPUT, FORWARD,
    OUTPUT or POSTROUTING), in a stable order, with probabilities summing to exactly 1.

    ``tables`` restricts the walk to those tables (hook order is kept); the nat table is walked
    only when ``ctx.ct_new`` (later packets are translated by conntrack). ``record_returns``
    adds a step for each implicit return from a user chain. ``reads``, when given, gets bit 1
    set if a rule looked at the source port and bit 2 the destination port.
    """
    order = HOOK_TABLES.get(hook)
    if order is None:
        raise ValueError(f"unknown hook {hook!r} (expected one of {', '.join(HOOK_TABLES)})")
    if tables is not None:
        order = tuple(t for t in order if t in tables)
    root = _Branch.__new__(_Branch)
    root.prob = (1, 1)  # numerator, denominator: Fraction arithmetic is too slow per fork
    root.src, root.dst = int(packet.src), int(packet.dst)
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
    while pending:
        br = pending.pop()
        while br.verdict is None and br.ti < len(order):
            if br.chain is None:
                tname = order[br.ti]
                cc = ruleset.chain(tname, hook)
                if cc is None or (tname == "nat" and (not ctx.ct_new or br.untracked)):
                    br.ti += 1
                    continue
                if not cc.rules:  # an empty built-in chain: only its policy
                    br.trace.append((tname, hook, "policy", 1))
                    if cc.policy != "ACCEPT":
                        br.verdict = _policy(br, cc, 0, record=False)
                    br.ti += 1
                    continue
                br.chain, br.pos, br.cands, br.stack = cc, 0, _candidates(cc, br), []
                br.root = cc
            decision = _walk(ruleset, br, ctx, pending, record_returns)
            if decision in ("DROP", "REJECT"):
                br.verdict = decision
            br.chain = None
            br.ti += 1
        outcomes.append(
            Outcome(
                Fraction(*br.prob),
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


MEMO_LIMIT = 1 << 16
"""Walks a :func:`traverse_memo` memo holds before it starts afresh (bounds its memory)."""


def traverse_memo(
    memo: dict, key: tuple, ruleset: Ruleset, hook: str, ctx: HookContext, packet: Packet
) -> tuple[Outcome, ...]:
    """:func:`traverse` through ``memo``, for callers that walk the same hooks again and again.

    ``key`` must identify everything the walk depends on except the packet's ports: the
    ruleset, ``hook``, every field of ``ctx`` and the packet's other fields. The walk is
    deterministic and sees the ports only through reads it records, so a walk that read
    neither port gives the same outcomes, with the packet's own ports carried through, for any
    ports (a NAT that rewrites a port reads it first); one that read them is reused only for
    the same values of the ports it read. Hence a hit is exactly what a new walk would give.
    """
    by_reads = memo.get(key)
    if by_reads is None:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        by_reads = memo[key] = {}
    else:
        sport, dport = packet.sport, packet.dport
        for read, known in by_reads.items():
            hit = known.get((sport if read & 1 else None, dport if read & 2 else None))
            if hit is not None:
                return _carry_ports(hit, sport, dport)
    reads = [0]
    outcomes = traverse(ruleset, hook, ctx, packet, reads=reads)
    read = reads[0]
    known = by_reads.setdefault(read, {})
    if len(known) >= MEMO_LIMIT:
        known.clear()
    known[(packet.sport if read & 1 else None, packet.dport if read & 2 else None)] = (
        outcomes,
        read,
        packet.sport,
        packet.dport,
    )
    return outcomes


def _carry_ports(hit: tuple, sport: int, dport: int) -> tuple[Outcome, ...]:
    """Memoised outcomes for a packet whose ports may differ from the walk's where unread."""
    outcomes, read, was_sport, was_dport = hit
    if sport == was_sport and dport == was_dport:
        return outcomes
    # an unread port was not written either: it leaves the hook as it came in
    return tuple(
        Outcome(
            o.probability,
            o.verdict,
            Packet(
                q.src,
                q.dst,
                q.proto,
                q.sport if read & 1 else sport,
                q.dport if read & 2 else dport,
                q.ttl,
                q.mark,
                q.encap,
            ),
            o.nat,
            o.recent_set,
            o.steps,
            o.reject_with,
            o.trace,
            o.ctstatus,
            o.untracked,
        )
        for o in outcomes
        for q in (o.packet,)
    )


def _walk(
    ruleset: Ruleset, br: _Branch, ctx: HookContext, pending: list[_Branch], record_returns: bool
) -> str:
    """Run one table of the hook for ``br`` until it decides; forks go onto ``pending``."""
    chain: CompiledChain = br.chain
    pos, cands, stack = br.pos, br.cands, br.stack
    table = chain.table
    while True:
        rules = chain.rules
        n = len(rules)
        if cands is not None:
            j = bisect_left(cands, pos)
            pos = cands[j] if j < len(cands) else n
        if pos >= n:
            if chain is br.root:
                return _policy(br, chain, n)
            br.trace.append((table, chain.name, "return", n + 1))
            if record_returns:
                br.steps.append(
                    Step("netfilter", f"{table} {chain.name} return", table, chain.name)
                )
            if not stack:  # the end of a chain entered by goto from the built-in chain
                return _policy(br, br.root, len(br.root.rules))
            chain, pos, cands = stack.pop()
            continue
        rule = rules[pos]
        for check in rule.checks:
            if not check(br, ctx):
                break
        else:
            p = rule.probability
            if p is not None and p != 1:
                if p == 0:
                    pos += 1
                    continue
                pn, pd = p.numerator, p.denominator
                bn, bd = br.prob
                other = br.fork()
                other.prob = (bn * (pd - pn), bd * pd)
                other.chain, other.pos, other.cands = chain, pos + 1, cands
                pending.append(other)
                br.prob = (bn * pn, bd * pd)
            # The rule matched: the kernel traces it (ip_tables.c trace_packet), then acts.
            t = rule.target
            kind = t.kind if t is not None else None
            br.trace.append((table, chain.name, chain.labels[pos], pos + 1))
            for name, fld, mask in rule.recent_set:
                ip = br.src if fld == "src" else br.dst
                br.recent.append((name, IPv4Address(ip & mask)))
            if kind is None or kind in ("LOG", "TRACE"):
                br.steps.append(_static_step(chain, pos))
                pos += 1
                continue
            if kind == "JUMP" or kind == "GOTO":
                br.steps.append(_static_step(chain, pos))
                if kind == "JUMP":
                    stack.append((chain, pos + 1, cands))
                chain = br.chain = _target_chain(ruleset, chain, t.chain)
                pos, cands = 0, _candidates(chain, br)
                continue
            if kind == "MARK":
                old = br.mark
                br.mark = t.apply_mark(old)
                br.steps.append(
                    _step(
                        chain,
                        pos,
                        f"{t.text} (mark {old:#x} -> {br.mark:#x})",
                        mark=f"{br.mark:#x}",
                    )
                )
                pos += 1
                continue
            if kind == "NOTRACK":
                br.untracked, br.ctstate = True, "UNTRACKED"
                br.steps.append(_static_step(chain, pos))
                pos += 1
                continue
            if kind == "RETURN":
                br.steps.append(_static_step(chain, pos))
                if stack:
                    chain, pos, cands = stack.pop()
                    continue
                return _policy(br, br.root, len(br.root.rules))
            if kind in ("DNAT", "SNAT", "MASQUERADE"):
                return _nat(br, ctx, chain, pos)
            br.steps.append(_static_step(chain, pos))
            if kind == "REJECT":
                br.reject_with = t.reject_with
            return kind  # ACCEPT | DROP | REJECT
        pos += 1


class _Peek:
    """The fields an index looks at, without noting a read of the destination port."""

    __slots__ = ("src", "dst", "proto", "dport")

    def __init__(self, br: _Branch):
        self.src, self.dst, self.proto, self.dport = br.src, br.dst, br.proto, br._dport


_PORT_KEYS = "port keys"  # a key of CompiledChain._steps (whose own keys are rule positions)


def _candidates(chain: CompiledChain, br: _Branch) -> tuple[int, ...] | None:
    """``chain.candidates(br)``, noting a read of the destination port only when the index
    could give another answer for another port: some key of it has the packet's destination
    and protocol, or its protocol alone (the replies' ports are the clients' source ports)."""
    if chain.index is None:
        return None
    memo = chain._steps
    keys = memo.get(_PORT_KEYS)
    if keys is None:  # once per chain: the (dst, proto) and proto parts of its port keys
        keys = memo[_PORT_KEYS] = (
            frozenset((k[0], k[1]) for k in chain.index),
            frozenset(k[0] for k in chain.port_index),
        )
    if br.proto in keys[1] or (br.dst, br.proto) in keys[0]:
        return chain.candidates(br)
    return chain.candidates(_Peek(br))


def _target_chain(ruleset: Ruleset, chain: CompiledChain, name: str) -> CompiledChain:
    target = ruleset.chains.get((chain.table, name))
    if target is None:  # Ruleset.from_tables refuses this; a hand-built Ruleset might not
        raise RuleError(f"jump to chain {name!r} that does not exist in table {chain.table}")
    return target


def _policy(br: _Branch, chain: CompiledChain, n: int, record: bool = True) -> str:
    """Apply a built-in chain's policy. Its step is shown when rules were walked or it is not
    ACCEPT: an empty chain accepting everything explains nothing."""
    policy = chain.policy or "ACCEPT"
    if record:
        br.trace.append((chain.table, chain.name, "policy", n + 1))
    if n or policy != "ACCEPT":
        br.steps.append(
            Step(
                "netfilter",
                f"{chain.table} {chain.name} policy {policy}",
                chain.table,
                chain.name,
                None,
                None,
                FrozenDict(target=policy),
            )
        )
    if policy not in ("ACCEPT", "DROP"):  # iptables allows only these two as policies
        policy = "DROP"
    return policy


def _step(chain: CompiledChain, pos: int, action: str, **detail: str) -> Step:
    rule = chain.rules[pos]
    extra = {"target": rule.target.text if rule.target else ""}
    if rule.comment is not None:
        extra["comment"] = rule.comment
    if rule.probability is not None:
        extra["probability"] = str(rule.probability)
    extra.update(detail)
    text = f"{chain.table} {chain.name} rule {pos + 1} {action}"
    if rule.probability is not None:
        text += f" (p={rule.probability})"
    kind = "nat" if rule.target and rule.target.kind in ("DNAT", "SNAT", "MASQUERADE") else None
    return Step(
        kind or "netfilter",
        text,
        chain.table,
        chain.name,
        chain.rule_text(pos),
        pos + 1,
        FrozenDict(extra),
    )


def _static_step(chain: CompiledChain, pos: int) -> Step:
    """Steps of targets whose text does not depend on the packet, memoised per chain."""
    memo = chain._steps
    step = memo.get(pos)
    if step is None:
        t = chain.rules[pos].target
        if t is None:
            action = "(no target: continue)"
        elif t.kind == "JUMP":
            action = f"-> {t.chain}"
        elif t.kind == "GOTO":
            action = f"goto {t.chain}"
        else:
            action = t.text
        step = memo[pos] = _step(chain, pos, action)
    return step


def _nat(br: _Branch, ctx: HookContext, chain: CompiledChain, pos: int) -> str:
    t = chain.rules[pos].target
    if t.kind == "DNAT":
        before = (IPv4Address(br.dst), br.dport)
        br.dst = t.to_int
        if t.to_port is not None:
            br.dport = t.to_port
        after = (t.to_addr, br.dport)
        br.ctstatus = br.ctstatus | {"DNAT"}
    else:
        before = (IPv4Address(br.src), br.sport)
        addr = t.to_addr if t.kind == "SNAT" else ctx.masq_addr
        if addr is None:
            # MASQUERADE with no address on the output device: the kernel drops the packet
            # (net/netfilter/nf_nat_masquerade.c returns NF_DROP).
            br.steps.append(
                _step(chain, pos, "MASQUERADE: no address on the output device, dropped")
            )
            return "DROP"
        br.src = int(addr)
        if t.to_port is not None:
            br.sport = t.to_port
        after = (addr, br.sport)
        br.ctstatus = br.ctstatus | {"SNAT"}
    br.nat = Nat(t.kind, before, after)
    b = f"{_ipstr(before[0])}:{before[1]}"
    a = f"{_ipstr(after[0])}:{after[1]}"
    br.steps.append(_step(chain, pos, f"{t.kind} {b} -> {a}", before=b, after=a))
    return "ACCEPT"


def _ipstr(ip: IPv4Address | int) -> str:
    """Dotted quad, faster than ``str(IPv4Address)`` on the hot path."""
    i = int(ip)
    return f"{i >> 24}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"

"""The rule-by-rule walk of one table of a hook for :func:`podnet.dataplane.netfilter.traverse`:
the walk's state per branch, the matched rule's action, its steps and TRACE entries.

Semantics follow net/ipv4/netfilter/ip_tables.c ``ipt_do_table`` (see podnet.dataplane.netfilter).
What a matched rule does whatever the packet (its TRACE entry, its step where the text does not
depend on the packet, where it jumps) is worked out once per chain position and kept in the
chain's ``_steps`` memo: a walk then costs little more than the rules' own matches.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from podnet.dataplane.rules import RuleError
from podnet.dataplane.ruleset import CompiledChain, Ruleset
from podnet.model.base import FrozenDict
from podnet.model.trace import Packet, Step, new_packet, new_step

if TYPE_CHECKING:
    from podnet.dataplane.netfilter import HookContext


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


class Branch:
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
    # same outcomes for any value of it, which lets the trace's memo of walks (podnet.trace.hooks) reuse them exactly.
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

    def fork(self) -> Branch:
        b = Branch.__new__(Branch)
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
        # (IPv4Address keeps its int in _ip: int() is a Python-level call)
        src, dst = base.src, base.dst
        same_src, same_dst = self.src == src._ip, self.dst == dst._ip
        if (
            same_src
            and same_dst
            and self._sport == base.sport
            and self._dport == base.dport
            and self.mark == base.mark
        ):
            return base  # nothing changed: the packet itself
        if not same_src:
            src = IPv4Address(self.src)
        if not same_dst:
            dst = IPv4Address(self.dst)
        return new_packet(
            src, dst, self.proto, self._sport, self._dport, base.ttl, self.mark, base.encap
        )


_MISS = object()


def chain_of(ruleset: Ruleset, found: dict, table: str, name: str) -> CompiledChain | None:
    """``ruleset.chain(table, name)`` through ``found`` (a lookup that raises is not kept)."""
    key = (table, name)
    cc = found.get(key, _MISS)
    if cc is _MISS:
        cc = found[key] = ruleset.chain(table, name)
    return cc


# What a matched rule does, by target kind: 0 go on (no target, LOG, TRACE), 1 JUMP, 2 GOTO,
# 3 MARK, 4 NOTRACK, 5 RETURN, 6 a NAT; any other kind ends the table with its verdict (7).
_CODES = {
    None: 0,
    "LOG": 0,
    "TRACE": 0,
    "JUMP": 1,
    "GOTO": 2,
    "MARK": 3,
    "NOTRACK": 4,
    "RETURN": 5,
    "DNAT": 6,
    "SNAT": 6,
    "MASQUERADE": 6,
}


def walk(
    ruleset: Ruleset,
    found: dict,
    br: Branch,
    ctx: HookContext,
    pending: list[Branch],
    record_returns: bool,
) -> str:
    """Run one table of the hook for ``br`` until it decides; forks go onto ``pending``."""
    chain: CompiledChain = br.chain
    pos, cands, stack = br.pos, br.cands, br.stack
    table = chain.table
    trace_append = br.trace.append
    steps_append = br.steps.append
    rules = chain.rules
    n = len(rules)
    memo = chain._steps
    while True:
        if cands is not None:
            j = bisect_left(cands, pos)
            pos = cands[j] if j < len(cands) else n
        if pos >= n:
            if chain is br.root:
                return policy(br, chain, n)
            trace_append((table, chain.name, "return", n + 1))
            if record_returns:
                steps_append(Step("netfilter", f"{table} {chain.name} return", table, chain.name))
            if not stack:  # the end of a chain entered by goto from the built-in chain
                return policy(br, br.root, len(br.root.rules))
            chain, pos, cands = stack.pop()
            rules = chain.rules
            n = len(rules)
            memo = chain._steps
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
            info = memo.get(pos)
            if info is None:
                info = _info(chain, pos)
            code, entry, step, target = info
            trace_append(entry)
            if rule.recent_set:
                for name, fld, mask in rule.recent_set:
                    ip = br.src if fld == "src" else br.dst
                    br.recent.append((name, IPv4Address(ip & mask)))
            if code == 0:
                steps_append(step)
                pos += 1
                continue
            if code == 1 or code == 2:
                steps_append(step)
                if code == 1:
                    stack.append((chain, pos + 1, cands))
                nxt = found.get(target, _MISS)
                if nxt is _MISS or nxt is None:
                    nxt = _target_chain(ruleset, found, target)
                chain = br.chain = nxt
                pos = 0
                cands = None if chain.index is None else candidates(chain, br)
                rules = chain.rules
                n = len(rules)
                memo = chain._steps
                continue
            if code == 3:
                steps_append(_mark(br, chain, pos, memo, n))
                pos += 1
                continue
            if code == 4:
                br.untracked, br.ctstate = True, "UNTRACKED"
                steps_append(step)
                pos += 1
                continue
            if code == 5:
                steps_append(step)
                if stack:
                    chain, pos, cands = stack.pop()
                    rules = chain.rules
                    n = len(rules)
                    memo = chain._steps
                    continue
                return policy(br, br.root, len(br.root.rules))
            if code == 6:
                return _nat(br, ctx, chain, pos)
            steps_append(step)
            if target == "REJECT":
                br.reject_with = rule.target.reject_with
            return target  # ACCEPT | DROP | REJECT
        pos += 1


def _info(chain: CompiledChain, pos: int) -> tuple:
    """What the matched rule at ``pos`` does whatever the packet, memoised per chain:
    ``(code, TRACE entry, step or None, target)`` (see ``_CODES``); the step is None where
    its text depends on the packet (MARK, NAT); target is the ``(table, chain)`` of a jump or
    goto, else the target's kind."""
    rule = chain.rules[pos]
    t = rule.target
    kind = t.kind if t is not None else None
    code = _CODES.get(kind, 7)
    entry = (chain.table, chain.name, chain.labels[pos], pos + 1)
    if code == 3 or code == 6:
        step = None
    else:
        if t is None:
            action = "(no target: continue)"
        elif kind == "JUMP":
            action = f"-> {t.chain}"
        elif kind == "GOTO":
            action = f"goto {t.chain}"
        else:
            action = t.text
        step = _step(chain, pos, action)
    target = (chain.table, t.chain) if code == 1 or code == 2 else kind
    info = chain._steps[pos] = (code, entry, step, target)
    return info


def _mark(br: Branch, chain: CompiledChain, pos: int, memo: dict, n: int) -> Step:
    """Apply the MARK rule at ``pos``; its step, memoised per mark it found (the new mark is
    a function of the old one)."""
    t = chain.rules[pos].target
    old = br.mark
    new = br.mark = t.apply_mark(old)
    key = (pos, old)
    step = memo.get(key)
    if step is None:
        step = _step(chain, pos, f"{t.text} (mark {old:#x} -> {new:#x})", mark=f"{new:#x}")
        if len(memo) < 2 * n + 1024:  # bounded: a chain sees few distinct marks
            memo[key] = step
    return step


class _Peek:
    """The fields an index looks at, without noting a read of the destination port."""

    __slots__ = ("src", "dst", "proto", "dport")

    def __init__(self, br: Branch):
        self.src, self.dst, self.proto, self.dport = br.src, br.dst, br.proto, br._dport


# Keys of CompiledChain._steps besides rule positions (see _info) and (position, mark) (_mark)
_PORT_KEYS = "port keys"
_POLICY = "policy step"


def candidates(chain: CompiledChain, br: Branch) -> tuple[int, ...] | None:
    """``chain.candidates(br)`` of an indexed chain (callers check ``chain.index``), noting a
    read of the destination port only when the index could give another answer for another
    port: some key of it has the packet's destination and protocol, or its protocol alone
    (the replies' ports are the clients' source ports)."""
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


def _target_chain(ruleset: Ruleset, found: dict, key: tuple[str, str]) -> CompiledChain:
    target = chain_of(ruleset, found, *key)
    if target is None:  # Ruleset.from_tables refuses this; a hand-built Ruleset might not
        raise RuleError(f"jump to chain {key[1]!r} that does not exist in table {key[0]}")
    return target


def policy(br: Branch, chain: CompiledChain, n: int, record: bool = True) -> str:
    """Apply a built-in chain's policy. Its step is shown when rules were walked or it is not
    ACCEPT: an empty chain accepting everything explains nothing."""
    policy = chain.policy or "ACCEPT"
    if record:
        br.trace.append((chain.table, chain.name, "policy", n + 1))
    if n or policy != "ACCEPT":
        memo = chain._steps
        step = memo.get(_POLICY)
        if step is None:
            step = memo[_POLICY] = Step(
                "netfilter",
                f"{chain.table} {chain.name} policy {policy}",
                chain.table,
                chain.name,
                None,
                None,
                FrozenDict(target=policy),
            )
        br.steps.append(step)
    if policy not in ("ACCEPT", "DROP"):  # iptables allows only these two as policies
        policy = "DROP"
    return policy


def _step(chain: CompiledChain, pos: int, action: str, **detail: str) -> Step:
    rule = chain.rules[pos]
    t = rule.target
    prob = rule.probability
    extra = {"target": t.text if t else ""}
    if rule.comment is not None:
        extra["comment"] = rule.comment
    if prob is not None:
        extra["probability"] = str(prob)
    if detail:
        extra.update(detail)
    text = f"{chain.table} {chain.name} rule {pos + 1} {action}"
    if prob is not None:
        text += f" (p={prob})"
    kind = "nat" if t and t.kind in ("DNAT", "SNAT", "MASQUERADE") else "netfilter"
    return new_step(
        kind,
        text,
        chain.table,
        chain.name,
        chain.rule_text(pos),
        pos + 1,
        FrozenDict(extra),
    )


def _nat(br: Branch, ctx: HookContext, chain: CompiledChain, pos: int) -> str:
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

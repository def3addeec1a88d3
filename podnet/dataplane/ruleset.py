"""A namespace's iptables tables compiled for walking: chains by ``(table, name)``, jump targets
checked, jump loops refused, and big chains indexed by destination, protocol and port.

The index never changes what a walk finds: a rule is listed under a key only when every packet it
can match has that key (``-d IP/32 -p P --dport N``, or ``-p P --dport N``), all other rules are
candidates for every packet, and candidates are visited in rule order with their real positions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.dataplane.matches import AddrMatch
from podnet.dataplane.rules import Rule, RuleError, compile_rule
from podnet.dataplane.rulevalues import MASK32
from podnet.errors import Problem, did_you_mean
from podnet.model.base import EMPTY
from podnet.model.dataplane import BUILTIN_CHAINS, Chain, Table
from podnet.model.trace import Step

# Chains shorter than this are walked rule by rule: an index costs more than it saves.
DEFAULT_INDEX_THRESHOLD = 32

# Targets a table accepts (net/netfilter/xt_nat.c, xt_CT.c, xt_TRACE.c declare .table).
_TARGET_TABLES = {
    "DNAT": ("nat",),
    "SNAT": ("nat",),
    "MASQUERADE": ("nat",),
    "NOTRACK": ("raw",),
    "TRACE": ("raw",),
}


@dataclass(frozen=True, slots=True, eq=False)
class CompiledChain:
    """One chain: its compiled rules, its policy (built-in chains) and its index, if any.

    The index lists a rule under every key its matching packets must have: ``(dst, proto,
    dport)``, else ``(proto, dport)``, else the exact destination (``-d IP/32``), else the exact
    source (``-s IP/32``); ``always`` holds the rest. ``rules`` and ``labels`` are sequences:
    tuples, or for a node's own big chains (podnet.dataplane.lazy_ruleset) rules compiled when
    a walk first reaches them.
    """

    table: str
    name: str
    rules: Sequence[Rule]
    policy: str | None
    builtin: bool
    index: Mapping[tuple[int, str, int], tuple[int, ...]] | None = None
    port_index: Mapping[tuple[str, int], tuple[int, ...]] = EMPTY
    always: tuple[int, ...] = ()
    labels: Sequence[str] = ()  # TRACE type per rule: rule, or return/policy (see _labels)
    dst_index: Mapping[int, tuple[int, ...]] = EMPTY
    src_index: Mapping[int, tuple[int, ...]] = EMPTY
    _steps: dict[int, Step] = field(default_factory=dict, repr=False)
    _merged: dict[tuple, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def candidates(self, st: Any) -> tuple[int, ...] | None:
        """Rule positions (0-based, ascending) that may match the packet, or None: all of them."""
        if self.index is None:
            return None
        a = self.index.get((st.dst, st.proto, st.dport))
        b = self.port_index.get((st.proto, st.dport))
        c = self.dst_index.get(st.dst) if self.dst_index else None
        d = self.src_index.get(st.src) if self.src_index else None
        if a is None and b is None and c is None and d is None:
            return self.always
        # the same few combinations of index entries recur for every packet: merge each once
        key = (id(a), id(b), id(c), id(d))  # the entries live as long as the chain
        memo = self._merged
        hit = memo.get(key)
        if hit is None:
            if len(memo) >= 4096:
                memo.clear()
            hit = memo[key] = tuple(
                sorted((a or ()) + (b or ()) + (c or ()) + (d or ()) + self.always)
            )
        return hit

    def rule_text(self, pos: int) -> str:
        """The rule at 0-based ``pos`` as iptables-save prints it, with ``-A CHAIN``."""
        return f"-A {self.name} {self.rules[pos].text}"


def exact_addr(rule: Rule, fld: str) -> int | None:
    """The address a rule's ``-s``/``-d`` (per ``fld``) pins to one host, or None."""
    for m in rule.matches:
        if isinstance(m, AddrMatch) and m.field == fld:
            return m.net if m.mask == MASK32 and not m.neg else None
    return None


@functools.lru_cache(maxsize=1 << 18)
def _compile_chain(table: str, chain: Chain, threshold: int | None) -> CompiledChain:
    builtin = chain.name in BUILTIN_CHAINS.get(table, ())
    rules = tuple(compile_rule(t) for t in chain.rules)
    policy = (chain.policy or "ACCEPT") if builtin else None
    labels = _labels(rules, builtin)
    if threshold is None or len(rules) < threshold:
        return CompiledChain(table, chain.name, rules, policy, builtin, labels=labels)
    index: dict[tuple[int, str, int], list[int]] = {}
    port_index: dict[tuple[str, int], list[int]] = {}
    dst_index: dict[int, list[int]] = {}
    src_index: dict[int, list[int]] = {}
    always: list[int] = []
    for pos, r in enumerate(rules):
        if r.key is not None:
            index.setdefault(r.key, []).append(pos)
        elif r.port_key is not None:
            port_index.setdefault(r.port_key, []).append(pos)
        elif (ip := exact_addr(r, "dst")) is not None:
            dst_index.setdefault(ip, []).append(pos)
        elif (ip := exact_addr(r, "src")) is not None:
            src_index.setdefault(ip, []).append(pos)
        else:
            always.append(pos)
    return CompiledChain(
        table,
        chain.name,
        rules,
        policy,
        builtin,
        {k: tuple(v) for k, v in index.items()},
        {k: tuple(v) for k, v in port_index.items()},
        tuple(always),
        labels,
        {k: tuple(v) for k, v in dst_index.items()},
        {k: tuple(v) for k, v in src_index.items()},
    )


def _labels(rules: tuple[Rule, ...], builtin: bool) -> tuple[str, ...]:
    # ip_tables.c get_chainname_rulenum: an unconditional rule whose target is a standard
    # verdict (ACCEPT, DROP, RETURN, or none) is reported like a chain tail.
    tail = "policy" if builtin else "return"
    return tuple(
        tail
        if r.unconditional and (r.target is None or r.target.kind in ("ACCEPT", "DROP", "RETURN"))
        else "rule"
        for r in rules
    )


@dataclass(frozen=True, slots=True, eq=False)
class Ruleset:
    """All chains of one namespace, by ``(table, chain)``; ``tables`` lists the table names."""

    chains: Mapping[tuple[str, str], CompiledChain]
    tables: tuple[str, ...]

    def chain(self, table: str, name: str) -> CompiledChain | None:
        return self.chains.get((table, name))

    @staticmethod
    def from_tables(
        tables: Sequence[Table], *, index_threshold: int | None = DEFAULT_INDEX_THRESHOLD
    ) -> Ruleset:
        """Compile and check ``tables``; raise RuleError listing every problem found.

        ``index_threshold``: chains with at least this many rules are indexed (0: all; None:
        none). Results are cached per tables (the same objects).

        >>> from podnet.model.dataplane import Chain, Table
        >>> t = Table("filter", (Chain("INPUT", ("-j A",), "ACCEPT"), Chain("A", ("-j B",)),
        ...                      Chain("B", ("-j A",))))
        >>> Ruleset.from_tables([t])
        Traceback (most recent call last):
        ...
        podnet.dataplane.rulevalues.RuleError: error: filter: jump loop A -> B -> A (the kernel refuses it as a loop)
        """
        tables = tuple(tables)
        # Cached by the identity of the tables, not their value: hashing a node's tables walks
        # its 100,000 rule texts, which costs more than building the node over a reference.
        key = (tuple(id(t) for t in tables), index_threshold)
        hit = _BUILT.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], tables, strict=True)):
            return hit[1]
        ruleset = _from_tables(tables, index_threshold)
        if len(_BUILT) >= _BUILT_MAX:
            del _BUILT[next(iter(_BUILT))]  # the oldest
        _BUILT[key] = (tables, ruleset)  # the tables kept alive, so their ids stay theirs
        return ruleset


_BUILT: dict[tuple, tuple[tuple[Table, ...], Ruleset]] = {}
"""(ids of the tables, threshold) -> (the tables, their Ruleset): a cache of compiled values
only."""
_BUILT_MAX = 256


def _from_tables(tables: tuple[Table, ...], threshold: int | None) -> Ruleset:
    return _full_build(tables, threshold)


def _full_build(tables: tuple[Table, ...], threshold: int | None) -> Ruleset:
    problems: list[Problem] = []
    chains: dict[tuple[str, str], CompiledChain] = {}
    for table in tables:
        names = [c.name for c in table.chains]
        seen: set[str] = set()
        for chain in table.chains:
            if chain.name in seen:
                problems.append(Problem(f"chain {chain.name!r} declared twice", path=table.name))
                continue
            seen.add(chain.name)
            try:
                chains[(table.name, chain.name)] = _compile_chain(table.name, chain, threshold)
            except RuleError:
                problems.extend(_rule_problems(table.name, chain))
        for builtin in BUILTIN_CHAINS.get(table.name, ()):
            if (table.name, builtin) not in chains:
                chains[(table.name, builtin)] = CompiledChain(
                    table.name, builtin, (), "ACCEPT", True
                )
        problems.extend(_check_targets(table.name, names, chains))
        problems.extend(_check_loops(table.name, chains))
    if problems:
        raise RuleError(problems)
    return Ruleset(chains, tuple(t.name for t in tables))


def _rule_problems(table: str, chain: Chain) -> list[Problem]:
    out = []
    for num, text in enumerate(chain.rules, 1):
        try:
            compile_rule(text)
        except RuleError as exc:
            for p in exc.problems:
                out.append(Problem(p.message, path=f"{table} {chain.name} rule {num}", hint=p.hint))
    return out


def _check_targets(
    table: str, names: list[str], chains: Mapping[tuple[str, str], CompiledChain]
) -> list[Problem]:
    out = []
    builtins = BUILTIN_CHAINS.get(table, ())

    def hint(missing: str) -> str | None:
        return did_you_mean(missing, [n for n in names if n not in builtins])

    for name in names:
        cc = chains.get((table, name))
        if cc is None:
            continue
        for num, r in enumerate(cc.rules, 1):
            out += target_problems(table, name, num, r, lambda c: (table, c) in chains, hint)
    return out


def target_problems(
    table: str,
    chain: str,
    num: int,
    rule: Rule,
    exists: Callable[[str], bool],
    hint: Callable[[str], str | None] | None = None,
) -> list[Problem]:
    """What iptables-restore refuses in rule ``num`` of ``chain`` for its target: a target of
    another table, a jump to a built-in chain, a jump to a chain for which ``exists`` is false
    (``hint`` names the closest ones)."""
    t = rule.target
    if t is None:
        return []
    out = []
    allowed = _TARGET_TABLES.get(t.kind)
    if allowed is not None and table not in allowed:
        out.append(
            Problem(
                f"target {t.kind} is only valid in the {' or '.join(allowed)} table",
                path=_rule_at(table, chain, num),
            )
        )
    if t.chain is None:
        return out
    if t.chain in BUILTIN_CHAINS.get(table, ()):
        out.append(
            Problem(f"cannot jump to built-in chain {t.chain!r}", path=_rule_at(table, chain, num))
        )
    elif not exists(t.chain):
        out.append(
            Problem(
                f"jump to chain {t.chain!r} that does not exist in table {table}",
                path=_rule_at(table, chain, num),
                hint=hint(t.chain) if hint is not None else None,
            )
        )
    return out


def _rule_at(table: str, chain: str, num: int) -> str:
    """Where a problem is: ``filter INPUT rule 3`` (written only for a problem found: a chain's
    rules are checked whenever it is compiled)."""
    return f"{table} {chain} rule {num}"


def _check_loops(table: str, chains: Mapping[tuple[str, str], CompiledChain]) -> list[Problem]:
    """Find jump cycles by depth-first search (iterative: chains can be 10,000s)."""
    edges: dict[str, list[str]] = {}
    for (tname, name), cc in chains.items():
        if tname != table:
            continue
        succ: dict[str, None] = {}  # ordered and without repeats
        for r in cc.rules:
            t = r.target
            if t is not None and t.chain is not None and (table, t.chain) in chains:
                succ[t.chain] = None
        edges[name] = list(succ)
    color: dict[str, int] = {}  # 1: on the current path, 2: done
    out: list[Problem] = []
    for start in edges:
        if start in color:
            continue
        path = [start]
        color[start] = 1
        stack = [iter(edges[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = 2
                stack.pop()
                continue
            state = color.get(nxt)
            if state == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                out.append(
                    Problem(
                        f"jump loop {' -> '.join(cycle)} (the kernel refuses it as a loop)",
                        path=table,
                    )
                )
            elif state is None:
                color[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges[nxt]))
    return out

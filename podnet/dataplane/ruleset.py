"""A namespace's iptables tables compiled for walking: chains by ``(table, name)``, jump targets
checked, jump loops refused, and big chains indexed by destination, protocol and port.

The index never changes what a walk finds: a rule is listed under a key only when every packet it
can match has that key (``-d IP/32 -p P --dport N``, or ``-p P --dport N``), all other rules are
candidates for every packet, and candidates are visited in rule order with their real positions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from podnet.dataplane.rules import Rule, RuleError, compile_rule
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
    """One chain: its compiled rules, its policy (built-in chains) and its index, if any."""

    table: str
    name: str
    rules: tuple[Rule, ...]
    policy: str | None
    builtin: bool
    index: Mapping[tuple[int, str, int], tuple[int, ...]] | None = None
    port_index: Mapping[tuple[str, int], tuple[int, ...]] = EMPTY
    always: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()  # TRACE type per rule: rule, or return/policy (see _labels)
    _steps: dict[int, Step] = field(default_factory=dict, repr=False)

    def candidates(self, st: Any) -> tuple[int, ...] | None:
        """Rule positions (0-based, ascending) that may match the packet, or None: all of them."""
        if self.index is None:
            return None
        a = self.index.get((st.dst, st.proto, st.dport))
        b = self.port_index.get((st.proto, st.dport))
        if a is None and b is None:
            return self.always
        return tuple(sorted((a or ()) + (b or ()) + self.always))

    def rule_text(self, pos: int) -> str:
        """The rule at 0-based ``pos`` as iptables-save prints it, with ``-A CHAIN``."""
        return f"-A {self.name} {self.rules[pos].text}"


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
    always: list[int] = []
    for pos, r in enumerate(rules):
        if r.key is not None:
            index.setdefault(r.key, []).append(pos)
        elif r.port_key is not None:
            port_index.setdefault(r.port_key, []).append(pos)
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
    shared = _shared_build(tables, threshold)
    if shared is not None:
        return shared
    ruleset = _full_build(tables, threshold)
    for table in tables:
        _remember(table, ruleset, threshold)
    return ruleset


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


# ---------------------------------------------------------------------------------- sharing
#
# The nodes of a cluster have nearly the same tables: kube-proxy's chains are the very same
# Chain objects on every node but for the few that hold local endpoints (podnet.control.kubeproxy
# caches them). Compiling and checking each node's 10,000s of chains again would cost seconds and
# megabytes per node, so a table is compiled against a reference: the last table of that name
# compiled in full. Chains that are the same object as the reference's reuse its compiled chain
# through a two-level mapping; only the node's own chains are compiled and checked. Checking stays
# exact: the reference passed every check, its chains keep their rules, so a problem can only come
# from an own chain (a jump to a missing chain, a target in the wrong table) or from a cycle
# through one; any problem, or a reference that does not fit, falls back to the full build, whose
# messages are the ones reported.

_REFS: dict[
    tuple[str, int | None],
    tuple[dict[str, Chain], Ruleset, dict[str, list[str]], dict[int, str]],
] = {}
"""(table name, threshold) -> (its chains by name, their compiled Ruleset, jumps into each
chain by name, chain names by the ids of its chains): the reference of :func:`_shared_build`,
a cache of compiled values only (the first item keeps the chains alive: their ids stay theirs)."""


class _Layered(Mapping):
    """A namespace's chains: its own, then those of each layered table's reference."""

    __slots__ = ("own", "bases")

    def __init__(self, own: dict, bases: dict[str, tuple[Mapping, frozenset[str]]]):
        self.own, self.bases = own, bases

    def get(self, key, default=None):
        hit = self.own.get(key)
        if hit is not None:
            return hit
        layer = self.bases.get(key[0])
        if layer is None or key[1] in layer[1]:
            return default
        return layer[0].get(key, default)

    def __getitem__(self, key):
        hit = self.get(key)
        if hit is None:
            raise KeyError(key)
        return hit

    def __iter__(self):
        yield from self.own
        for t, (base, gone) in self.bases.items():
            for k in base:
                if k[0] == t and k not in self.own and k[1] not in gone:
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _remember(table: Table, ruleset: Ruleset, threshold: int | None) -> None:
    if len(table.chains) < _LAYER_MIN:  # small tables are cheap to build in full
        return
    jumps_in: dict[str, list[str]] = {}
    for chain in table.chains:
        cc = ruleset.chains.get((table.name, chain.name))
        for r in cc.rules if cc is not None else ():
            t = r.target
            if t is not None and t.chain is not None:
                jumps_in.setdefault(t.chain, []).append(chain.name)
    by_name = {c.name: c for c in table.chains}
    name_by_id = {id(c): n for n, c in by_name.items()}
    _REFS[(table.name, threshold)] = (by_name, ruleset, jumps_in, name_by_id)


_LAYER_MIN = 256  # chains in a table before it is compiled over a reference


def _shared_build(tables: tuple[Table, ...], threshold: int | None) -> Ruleset | None:
    """The Ruleset of ``tables`` built over references, or None when one does not fit (or a
    check fails: the full build then reports every problem)."""
    own: dict[tuple[str, str], CompiledChain] = {}
    bases: dict[str, tuple[Mapping, frozenset[str]]] = {}
    for table in tables:
        ref = _REFS.get((table.name, threshold))
        if ref is None:
            if len(table.chains) >= _LAYER_MIN:
                return None
            try:  # a small table: in full, checks included (they are per table)
                own.update(_full_build((table,), threshold).chains)
            except RuleError:
                return None
            continue
        by_name, ref_rs, jumps_in, name_by_id = ref
        # Shared chains are the reference's own objects, told apart by id with set operations
        # over ints, so that the 10,000s of shared chains stay out of Python loops (and their
        # names unread). A reference chain object is the one under its name there.
        chains = table.chains
        present = set(map(id, chains))
        if len(present) != len(chains):
            return None  # a chain object twice, so a chain declared twice: the full build says so
        own_ids = present.difference(name_by_id)
        if len(own_ids) * 8 > len(chains):
            return None
        mine = list(compress(chains, map(own_ids.__contains__, map(id, chains))))
        mine_names = {c.name for c in mine}
        names = _Names(mine_names, by_name, present)
        if len(mine_names) != len(mine) or any(
            (c := by_name.get(n)) is not None and id(c) in present for n in mine_names
        ):
            return None  # a chain declared twice: the full build says so
        # chains of the reference this table lacks: hidden, and no shared chain may jump there
        # (none when the reference chains not held are all replaced by own ones: no set pass)
        replaced = sum(1 for n in mine_names if n in by_name)
        if len(present) - len(own_ids) + replaced == len(name_by_id):
            gone: frozenset[str] = frozenset()
        else:
            gone = frozenset(name_by_id[i] for i in name_by_id.keys() - present).difference(
                mine_names
            )
        builtins = BUILTIN_CHAINS.get(table.name, ())
        for name in gone:
            if name in builtins or any(
                p in names and p not in mine_names for p in jumps_in.get(name, ())
            ):
                return None
        compiled: dict[str, CompiledChain] = {}
        for chain in mine:
            try:
                compiled[chain.name] = _compile_chain(table.name, chain, threshold)
            except RuleError:
                return None
        if not _own_targets_ok(table.name, compiled, names):
            return None
        if _own_cycle(table.name, compiled, ref_rs, jumps_in, names):
            return None
        own.update(((table.name, n), cc) for n, cc in compiled.items())
        bases[table.name] = (ref_rs.chains, gone)
    names = tuple(t.name for t in tables)
    return Ruleset(_Layered(own, bases) if bases else own, names)


class _Names:
    """The chain names of a table built over a reference: its own chains' names, and those of
    the reference's chains it holds (present: their ids)."""

    __slots__ = ("own", "by_name", "present")

    def __init__(self, own: set[str], by_name: dict[str, Chain], present: set[int]):
        self.own, self.by_name, self.present = own, by_name, present

    def __contains__(self, name: object) -> bool:
        if name in self.own:
            return True
        c = self.by_name.get(name)  # type: ignore[call-overload]
        return c is not None and id(c) in self.present


def _own_targets_ok(table: str, mine: dict[str, CompiledChain], names: _Names) -> bool:
    """What :func:`_check_targets` checks, for the own chains only."""
    builtins = BUILTIN_CHAINS.get(table, ())
    for cc in mine.values():
        for r in cc.rules:
            t = r.target
            if t is None:
                continue
            if t.kind in _TARGET_TABLES and table not in _TARGET_TABLES[t.kind]:
                return False
            if t.chain is not None and (t.chain in builtins or t.chain not in names):
                return False
    return True


def _own_cycle(
    table: str,
    mine: dict[str, CompiledChain],
    ref: Ruleset,
    jumps_in: dict[str, list[str]],
    names: _Names,
) -> bool:
    """Whether a jump cycle passes through an own chain. Every chain of such a cycle reaches an
    own chain; those that are the reference's jump as they did there, so the chains that reach an
    own chain are found backwards over the reference's jumps, and the search stays among them."""
    reach = set(mine)
    todo = list(mine)
    while todo:
        name = todo.pop()
        for pred in jumps_in.get(name, ()):
            if pred not in reach:
                reach.add(pred)
                todo.append(pred)
    sub: dict[tuple[str, str], CompiledChain] = {}
    for name in sorted(n for n in reach if n in names):
        cc = mine.get(name) or ref.chains.get((table, name))
        if cc is not None:
            sub[(table, name)] = cc
    return bool(_check_loops(table, sub))


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
    for name in names:
        cc = chains.get((table, name))
        if cc is None:
            continue
        for num, r in enumerate(cc.rules, 1):
            t = r.target
            where = f"{table} {name} rule {num}"
            if t is None:
                continue
            if t.kind in _TARGET_TABLES and table not in _TARGET_TABLES[t.kind]:
                allowed = " or ".join(_TARGET_TABLES[t.kind])
                out.append(
                    Problem(f"target {t.kind} is only valid in the {allowed} table", path=where)
                )
            if t.chain is None:
                continue
            if t.chain in builtins:
                out.append(Problem(f"cannot jump to built-in chain {t.chain!r}", path=where))
            elif (table, t.chain) not in chains:
                hint = did_you_mean(t.chain, [n for n in names if n not in builtins])
                out.append(
                    Problem(
                        f"jump to chain {t.chain!r} that does not exist in table {table}",
                        path=where,
                        hint=hint,
                    )
                )
    return out


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

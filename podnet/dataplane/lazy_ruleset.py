"""A node's Ruleset compiled chain by chain, when a walk first enters each chain.

A node of a large cluster holds 10,000s of chains (kube-proxy writes a KUBE-SVC-* chain per
Service port and a KUBE-SEP-* chain per endpoint); a trace enters a few dozen of them. Compiling
every chain of every node a question touches would cost seconds per node, so a node's Ruleset
compiles a chain on first use, and a chain object shared by many nodes (kube-proxy's, which are
the same on every node but for local endpoints, podnet.control.iptables) is compiled once for
all of them.

What the kernel checks when the rules are loaded (iptables-restore) is checked per chain, when it
is compiled: every rule is one the kernel accepts, every target is valid in its table, every jump
goes to a user chain of the same table that exists. A jump cycle, which the kernel also refuses,
can only come from rules that podnet itself writes (node rules are not read from the input):
``tests/test_lazy_ruleset.py`` builds every node of the bundled and generated clusters in full
(``Ruleset.from_tables``, which searches for cycles) and checks both agree chain by chain.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from podnet.dataplane.rules import Rule, compile_rule
from podnet.dataplane.ruleset import (
    DEFAULT_INDEX_THRESHOLD,
    CompiledChain,
    Ruleset,
    _compile_chain,
    _labels,
    _rule_problems,
    target_problems,
)
from podnet.dataplane.rulevalues import RuleError, _dotted_net
from podnet.errors import Problem
from podnet.model.base import EMPTY
from podnet.model.dataplane import BUILTIN_CHAINS, Chain

COMPILED_LIMIT = 1 << 18
"""Compiled chains kept for reuse by the identity of their Chain object (then started afresh)."""


class ChainSource(Protocol):
    """Where a lazy Ruleset finds its chains (podnet.control.iptables.NodeRules is one)."""

    def chain(self, table: str, name: str) -> Chain | None: ...

    def has_chain(self, table: str, name: str) -> bool:
        """Whether ``chain(table, name)`` would give a chain, without writing its rules."""
        ...

    def shared(self, table: str, name: str) -> Mapping[tuple[str, str], Chain] | None: ...

    def host_index(self, table: str, name: str, head_of) -> tuple | None:
        """A big chain's rules by host address as :func:`_by_rule` would read them from
        their texts, where the source knows it (or None): ``(dst_index, src_index, always)``.
        ``head_of(text)`` reads one rule's head as _by_rule does."""
        ...

    def tables(self) -> tuple: ...


_COMPILED: dict[tuple[int, str, int | None], tuple[Chain, CompiledChain]] = {}
"""(id of a Chain, table, threshold) -> (the chain, kept alive so that its id stays its own; its
compiled form). Looked up by identity: hashing kube-proxy's KUBE-SERVICES (10,000s of rules) by
value for every node would cost what sharing saves."""
_CHECKED: dict[tuple[int, int], tuple[Chain, Mapping]] = {}
"""(id of a shared chain, id of the mapping it is shared in) -> both: its jumps all land in that
mapping, so every node holding the mapping holds their targets too."""


def compiled(table: str, chain: Chain, threshold: int | None) -> CompiledChain:
    """``chain`` compiled (cached by identity); raises RuleError naming each bad rule."""
    key = (id(chain), table, threshold)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is chain:
        return hit[1]
    try:
        cc = _compile_chain(table, chain, threshold)
    except RuleError:
        raise RuleError(_rule_problems(table, chain)) from None
    if len(_COMPILED) >= COMPILED_LIMIT:
        _COMPILED.clear()
    _COMPILED[key] = (chain, cc)
    return cc


class LazyChains(Mapping):
    """``(table, name) -> CompiledChain`` of one namespace, compiled and checked on first use.

    Iterating lists every chain (and so compiles them all): for tests and tools, not for walks.
    """

    __slots__ = ("source", "threshold", "names", "_memo")

    def __init__(self, source: ChainSource, names: tuple[str, ...], threshold: int | None):
        self.source, self.names, self.threshold = source, names, threshold
        self._memo: dict[tuple[str, str], CompiledChain | None] = {}

    def get(self, key, default=None):
        memo = self._memo
        if key in memo:
            hit = memo[key]
            return default if hit is None else hit
        table, name = key
        chain = self.source.chain(table, name) if table in self.names else None
        if chain is None:
            memo[key] = None
            return default
        if (
            self.threshold is not None
            and len(chain.rules) >= max(self.threshold, LAZY_RULES_MIN)
            and self.source.shared(table, name) is None
        ):
            hint = self.source.host_index(table, name, head_of)
            cc = _by_rule(table, chain, self._rule_checker(table, chain), hint)
        else:
            cc = compiled(table, chain, self.threshold)
            self._check(table, chain, cc)
        memo[key] = cc
        return cc

    def _rule_checker(self, table: str, chain: Chain):
        exists = self._exists(table, None)
        name = chain.name

        def check(num: int, rule: Rule) -> None:
            problems = target_problems(table, name, num, rule, exists)
            if problems:
                raise RuleError(problems)

        return check

    def __getitem__(self, key) -> CompiledChain:
        hit = self.get(key)
        if hit is None:
            raise KeyError(key)
        return hit

    def _keys(self) -> Iterator[tuple[str, str]]:
        for t in self.source.tables():
            if t.name in self.names:
                for c in t.chains:
                    yield (t.name, c.name)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self._keys()

    def __len__(self) -> int:
        return sum(1 for _ in self._keys())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self.get(key) is not None

    def _check(self, table: str, chain: Chain, cc: CompiledChain) -> None:
        """What iptables-restore checks of one chain's rules (ruleset._check_targets)."""
        shared = self.source.shared(table, chain.name)
        if shared is not None:
            hit = _CHECKED.get((id(chain), id(shared)))
            if hit is not None and hit[0] is chain and hit[1] is shared:
                return
        problems = []
        exists = self._exists(table, shared)
        name = chain.name
        for num, r in enumerate(cc.rules, 1):
            if r.target is not None:  # (target_problems finds nothing in a rule without one)
                problems += target_problems(table, name, num, r, exists)
        if problems:
            raise RuleError(problems)
        if shared is not None and all(
            (table, r.target.chain) in shared
            for r in cc.rules
            if r.target is not None and r.target.chain is not None
        ):
            if len(_CHECKED) >= COMPILED_LIMIT:
                _CHECKED.clear()
            _CHECKED[(id(chain), id(shared))] = (chain, shared)

    def _exists(self, table: str, shared: Mapping | None):
        """Whether a jump target of ``table`` exists: in ``shared`` (the mapping a shared
        chain's jumps land in) or on the node. Asked without writing the target's rules: a
        chain's rules are checked when it is compiled, its targets' when they are entered."""
        has = self.source.has_chain

        def exists(name: str) -> bool:
            if shared is not None and (table, name) in shared:
                return True
            return has(table, name)

        return exists


# ------------------------------------------------------------------------ a node's own big chains
#
# A node's own chains that grow with its Pods (the policy agent's KUBE-ROUTER-FORWARD holds four
# rules per local Pod) are unique to the node, so sharing cannot spare compiling them. Their rules
# are compiled when a walk reaches them; the index a walk needs comes from the rule texts: a rule
# that starts "-s IP/32" or "-d IP/32" (iptables-save writes the source, then the destination,
# before any other option; "!" would come first if negated) matches only that host address.

LAZY_RULES_MIN = 32
"""Rules in a node's own chain before it is compiled rule by rule."""

_HEAD = re.compile(r"(?:-s (\d+\.\d+\.\d+\.\d+)/32 )?(?:-d (\d+\.\d+\.\d+\.\d+)/32 )?")


class _LazyRules(Sequence):
    """A chain's rules, each compiled (and checked) when first read."""

    __slots__ = ("texts", "done", "where", "check")

    def __init__(self, texts: tuple[str, ...], where: tuple[str, str], check):
        self.texts, self.where, self.check = texts, where, check
        self.done: list[Rule | None] = [None] * len(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, pos):  # type: ignore[override]
        if isinstance(pos, slice):
            return [self[i] for i in range(*pos.indices(len(self)))]
        r = self.done[pos]
        if r is None:
            try:
                r = compile_rule(self.texts[pos])
            except RuleError as exc:
                num = pos % len(self.texts) + 1
                raise RuleError(
                    [
                        Problem(
                            p.message,
                            path=f"{self.where[0]} {self.where[1]} rule {num}",
                            hint=p.hint,
                        )
                        for p in exc.problems
                    ]
                ) from None
            self.check(pos % len(self.texts) + 1, r)
            self.done[pos] = r
        return r


class _LazyLabels(Sequence):
    """TRACE's label per rule (ruleset._labels), from the rule once compiled."""

    __slots__ = ("rules", "tail")

    def __init__(self, rules: _LazyRules, builtin: bool):
        self.rules, self.tail = rules, "policy" if builtin else "return"

    def __len__(self) -> int:
        return len(self.rules)

    def __getitem__(self, pos):  # type: ignore[override]
        if isinstance(pos, slice):
            return [self[i] for i in range(*pos.indices(len(self)))]
        return _labels((self.rules[pos],), self.tail == "policy")[0]


def head_of(text: str) -> tuple[str, int] | None:
    """The host address a rule's text begins with, as a big chain's index keys the rule:
    ``("dst", IP)`` for ``-d IP/32`` (after any ``-s``), else ``("src", IP)`` for ``-s IP/32``,
    else None. The address is parsed as the rule compiler parses it; one it would not take
    leaves the rule to its own compilation, which says what is wrong.

    >>> head_of("-s 10.244.1.2/32 -j KUBE-POD-FW-X"), head_of("-p tcp -j ACCEPT")
    (('src', 183763202), None)
    """
    src, dst = _HEAD.match(text).groups()
    if dst is not None and (hit := _dotted_net(dst)) is not None:
        return "dst", hit[0]
    if src is not None and (hit := _dotted_net(src)) is not None:
        return "src", hit[0]
    return None


def _by_rule(table: str, chain: Chain, check, hint: tuple | None = None) -> CompiledChain:
    """``chain`` with its rules compiled on demand and indexed by their texts' host addresses
    (``hint``: that index, from the source that wrote the rules; ChainSource.host_index)."""
    if hint is not None:
        dst_index, src_index, always = hint
    else:
        dst: dict[int, list[int]] = {}
        src: dict[int, list[int]] = {}
        rest: list[int] = []
        match = _HEAD.match
        dotted = _dotted_net  # (head_of written out: a chain of a few hundred rules)
        for pos, text in enumerate(chain.rules):
            s, d = match(text).groups()
            if d is not None and (hit := dotted(d)) is not None:
                dst.setdefault(hit[0], []).append(pos)
            elif s is not None and (hit := dotted(s)) is not None:
                src.setdefault(hit[0], []).append(pos)
            else:
                rest.append(pos)
        dst_index = {k: tuple(v) for k, v in dst.items()}
        src_index = {k: tuple(v) for k, v in src.items()}
        always = tuple(rest)
    builtin = chain.name in BUILTIN_CHAINS.get(table, ())
    rules = _LazyRules(chain.rules, (table, chain.name), check)
    return CompiledChain(
        table,
        chain.name,
        rules,
        (chain.policy or "ACCEPT") if builtin else None,
        builtin,
        {},
        EMPTY,
        always,
        _LazyLabels(rules, builtin),
        dst_index,
        src_index,
    )


def lazy_ruleset(
    source: ChainSource,
    names: tuple[str, ...],
    *,
    index_threshold: int | None = DEFAULT_INDEX_THRESHOLD,
) -> Ruleset:
    """A Ruleset over ``source`` whose chains are compiled when first looked up.

    >>> from podnet.api import load
    >>> from podnet.control.iptables import node_rules
    >>> rules = node_rules(load("topologies/demo.yaml").cluster, "node-1")
    >>> rs = lazy_ruleset(rules, ("mangle", "raw", "filter", "nat"))
    >>> rs.chain("nat", "KUBE-SERVICES").rules[0].target.chain.startswith("KUBE-SVC-")
    True
    >>> rs.chain("nat", "NO-SUCH-CHAIN") is None
    True
    """
    return Ruleset(LazyChains(source, names, index_threshold), names)

"""A node's whole iptables state, as kubelet, kube-proxy and flanneld leave it.

Assumed start order (a kubeadm-style node): kubelet first (it runs kube-proxy and flannel as
DaemonSet Pods), then kube-proxy and flanneld in either order. kubelet prepends ``-j KUBE-FIREWALL``
to filter INPUT/OUTPUT (pkg/kubelet/kubelet_network_linux.go); kube-proxy then prepends its jumps
(proxier.go ``iptablesJumpChains``, EnsureRule Prepend, the kubelet ones already present); flanneld
appends its own (pkg/trafficmngr/iptables/iptables.go, ``-A``). Prepending and appending commute,
so kube-proxy's and flannel's relative order does not depend on which of them started first:

    filter INPUT:   KUBE-PROXY-FIREWALL, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, KUBE-FIREWALL
    filter FORWARD: KUBE-PROXY-FIREWALL, KUBE-FORWARD, KUBE-SERVICES, KUBE-EXTERNAL-SERVICES,
                    FLANNEL-FWD
    filter OUTPUT:  KUBE-PROXY-FIREWALL, KUBE-SERVICES, KUBE-FIREWALL
    nat PREROUTING: KUBE-SERVICES;  nat OUTPUT: KUBE-SERVICES
    nat POSTROUTING: KUBE-POSTROUTING, FLANNEL-POSTRTG

Tables come in the order iptables-save prints them (mangle, raw, filter, nat: iptables/nft.h
``enum nft_table_type``; iptables-legacy-save printed the same order when checked). Within a
table, built-in chains come first in kernel order with policy ACCEPT, then user chains sorted by
name, as iptables-save lists them (libiptc keeps chains sorted; iptables-nft sorts them too).
"""

from __future__ import annotations

from bisect import insort_left, insort_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import chain as ichain
from operator import attrgetter

from podnet.control import kubeproxy_chains as kc
from podnet.control.flannel import flannel_rules
from podnet.control.kubeproxy import (
    DEFAULT_OPTIONS,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FIREWALL,
    KUBE_FORWARD,
    KUBE_MARK_MASQ,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_PROXY_CANARY,
    KUBE_PROXY_FIREWALL,
    KUBE_SERVICES,
    KubeProxyOptions,
)
from podnet.control.kubeproxy_sync import ProxyState, proxy_state
from podnet.control.policy import AgentNode, agent_node
from podnet.model.cluster import Cluster
from podnet.model.dataplane import BUILTIN_CHAINS, Chain, Table

TABLE_ORDER = ("mangle", "raw", "filter", "nat")

# Chains that collect rules from every service port, per table.
_NAME = attrgetter("name")
_SHARED = {
    "filter": (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL),
    "nat": (KUBE_SERVICES, KUBE_NODEPORTS),
}
# kubelet's KUBE-FIREWALL rule (kubelet_network_linux.go; kube-proxy writes the same rule).
_KUBELET_FIREWALL_RULE = (
    '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
    "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
)


def _kube_proxy_chains(
    state: ProxyState, variants: tuple
) -> tuple[dict[str, tuple[Chain, ...]], dict[tuple[str, str], Chain]]:
    """kube-proxy's user chains for a node whose node-dependent ports have ``variants``: per
    table (filter, nat) sorted by name, and by (table, name). Cached in ``state`` so that nodes
    with equal variants share the result; a chain equal to the node-independent variant's is
    that variant's very object (compiled once for all nodes)."""
    key = ("chains", variants)
    hit = state.chain_cache.get(key)
    if hit is not None:
        return hit  # type: ignore[return-value]
    plain = (None,) * len(variants)
    common = None if variants == plain else _kube_proxy_chains(state, plain)[1]
    base = state.chain_cache.get("segments")
    if base is None:
        base = _base_segments(state)
        state.chain_cache["segments"] = base
    segs, own = base  # type: ignore[misc]
    dep_blocks = {i: state.block(i, v) for i, v in zip(state.dependent, variants, strict=True)}
    opts = state.ctx.options
    f_fixed, n_fixed = kc.fixed_rules(opts)
    f_tail, n_tail = kc.tail_rules(opts)
    rules: dict[tuple[str, str], list[str]] = {}
    for table, chains in _SHARED.items():
        for name in chains:
            lst = list(segs[(table, name)])
            for i, b in dep_blocks.items():
                lst[i] = b.segment(table, name)
            rules[(table, name)] = list(ichain.from_iterable(lst))
    for table, fixed in (("filter", f_fixed + f_tail), ("nat", n_fixed + n_tail)):
        for c, r in fixed:
            rules.setdefault((table, c), []).append(r)
    rules.setdefault(("filter", KUBE_FORWARD), [])
    rules.setdefault(("filter", KUBE_FIREWALL), [_KUBELET_FIREWALL_RULE])
    rules.setdefault(("nat", KUBE_MARK_MASQ), [])
    rules.setdefault(("nat", KUBE_POSTROUTING), [])
    nat_own = list(own)
    for i, b in dep_blocks.items():
        nat_own[i] = b.chains
    out: dict[str, tuple[Chain, ...]] = {}
    for table in ("filter", "nat"):
        chains = [_same(common, table, name, r) for (t, name), r in rules.items() if t == table]
        if table == "nat":
            chains += ichain.from_iterable(nat_own)
        chains.sort(key=_NAME)
        out[table] = tuple(chains)
    index = {(t, c.name): c for t, cs in out.items() for c in cs}
    state.chain_cache[key] = (out, index)
    return out, index


def _same(common: dict | None, table: str, name: str, rules: list[str]) -> Chain:
    """``Chain(name, rules)``, or the node-independent variant's equal chain object."""
    c = common.get((table, name)) if common is not None else None
    if c is not None and len(c.rules) == len(rules) and c.rules == tuple(rules):
        return c
    return Chain(name, tuple(rules))


def _base_segments(state: ProxyState):
    """Per-port segments of the shared chains and own chains, for the node-independent variant."""
    n = len(state.ports)
    segs = {(t, c): [()] * n for t, cs in _SHARED.items() for c in cs}
    own: list[tuple[Chain, ...]] = [()] * n
    dependent = set(state.dependent)
    for i in range(n):
        if i in dependent:
            continue  # replaced per node
        b = state.block(i, None)
        for (t, c), lst in segs.items():
            lst[i] = b.segment(t, c)
        own[i] = b.chains
    return segs, own


@dataclass(frozen=True, slots=True, eq=False)
class NodeRules:
    """A node's iptables state chain by chain, without writing out its tables in full.

    A node holds 10,000s of chains, nearly all of them kube-proxy's and the same on every node;
    a trace reads a few dozen. ``chain`` answers from the node's own chains (built-in ones,
    kubelet's, flannel's, the policy agent's) and from kube-proxy's chains, which nodes with the
    same node-dependent endpoints share as one mapping; ``tables`` writes every table out, in
    iptables-save's order, for those that print or load them.
    """

    cluster: Cluster = field(repr=False)
    node: str
    builtin: dict[tuple[str, str], Chain]
    own: dict[tuple[str, str], Chain]
    kube: dict[tuple[str, str], Chain]  # shared between nodes: never modified
    kube_sorted: dict[str, tuple[Chain, ...]]
    agent: AgentNode | None
    own_order: dict[str, tuple[Chain, ...]]  # own user chains per table, in creation order

    def chain(self, table: str, name: str) -> Chain | None:
        """The chain ``name`` of ``table``, or None when the node has no such chain.

        >>> from podnet.api import load
        >>> rules = node_rules(load("topologies/demo.yaml").cluster, "node-1")
        >>> rules.chain("nat", "KUBE-SERVICES").rules[0][:40]
        '-m comment --comment "default/backend:ht'
        """
        key = (table, name)
        hit = self.builtin.get(key) or self.own.get(key) or self.kube.get(key)
        if hit is None and table == "filter" and self.agent is not None:
            hit = self.agent.chain(name)
        return hit

    @property
    def table_names(self) -> tuple[str, ...]:
        return TABLE_ORDER

    def shared(self, table: str, name: str) -> dict[tuple[str, str], Chain] | None:
        """The mapping shared between nodes that holds ``name``, if it is one of kube-proxy's
        chains: chains jumped to from it are looked up there first."""
        return self.kube if (table, name) in self.kube else None

    def tables(self) -> tuple[Table, ...]:
        """Every table in full: built-in chains first, in kernel order, then user chains sorted
        by name (iptables-save's order)."""
        out = []
        for t in TABLE_ORDER:
            builtins = tuple(self.builtin[(t, c)] for c in BUILTIN_CHAINS[t])
            kube = self.kube_sorted.get(t, ())
            head = list(self.own_order.get(t, ()))
            tail = list(self.agent.user_chains()) if t == "filter" and self.agent else []
            # kube-proxy's chains come after kubelet's (kubelet starts first)
            lo = _KUBELET_CHAINS.get(t, 0)
            user = head[:lo] + list(kube) + head[lo:] + tail
            span = (lo, lo + len(kube)) if kube else None
            out.append(Table(t, builtins + _by_name(user, span)))
        return tuple(out)


_KUBELET_CHAINS = {"mangle": 2, "nat": 1, "filter": 1}
"""How many of a table's own chains kubelet creates before kube-proxy runs."""


def proxy_options(cluster: Cluster) -> KubeProxyOptions:
    """kube-proxy's options on the cluster's nodes (the Cluster document's ``kubeProxy.nfacct``)."""
    return replace(DEFAULT_OPTIONS, nfacct=cluster.config.nfacct)


def node_rules(
    cluster: Cluster, node: str, *, options: KubeProxyOptions | None = None
) -> NodeRules:
    """The iptables state of ``node``'s host namespace (see :class:`NodeRules`)."""
    if options is None:
        options = proxy_options(cluster)
    n = cluster.node(node)
    with_proxy = cluster.config.proxy_mode == "iptables"
    own: dict[str, list[Chain]] = {t: [] for t in TABLE_ORDER}
    existing: dict[tuple[str, str], list[str]] = {k: list(v) for k, v in kc.KUBELET_JUMPS.items()}
    own["mangle"] += [Chain(kc.KUBELET_HINT_CHAIN), Chain(kc.KUBELET_CANARY_CHAIN)]
    own["nat"].append(Chain(kc.KUBELET_CANARY_CHAIN))
    own["filter"].append(Chain(kc.KUBELET_CANARY_CHAIN))
    kube: dict[tuple[str, str], Chain] = {}
    kube_sorted: dict[str, tuple[Chain, ...]] = {}
    if with_proxy:
        state = proxy_state(cluster, options)
        kube_sorted, kube = _kube_proxy_chains(state, state.variants(node, n.ip if n else None))
        for t in ("mangle", "nat", "filter"):
            own[t].append(Chain(KUBE_PROXY_CANARY))
        existing = kc.builtin_jumps(existing)
    else:
        own["filter"].append(Chain(KUBE_FIREWALL, (_KUBELET_FIREWALL_RULE,)))
    builtin_rules = existing
    for (table, name), rules in flannel_rules(
        cluster, node, random_fully=options.random_fully
    ).items():
        if name in BUILTIN_CHAINS[table]:
            builtin_rules.setdefault((table, name), []).extend(rules)
        else:
            own[table].append(Chain(name, rules))
    # kube-router's policy agent keeps its jumps at rule 1 (podnet.control.policy).
    agent = agent_node(cluster, node)
    if agent is not None:
        for builtin, rule in agent.jumps.items():
            key = ("filter", builtin)
            builtin_rules[key] = [rule, *builtin_rules.get(key, ())]
    builtin = {
        (t, c): Chain(c, tuple(builtin_rules.get((t, c), ())), policy="ACCEPT")
        for t in TABLE_ORDER
        for c in BUILTIN_CHAINS[t]
    }
    own_by_key = {(t, c.name): c for t, cs in own.items() for c in cs}
    if agent is not None:
        own_by_key.update((("filter", c.name), c) for c in agent.tops)
    own_order = {t: tuple(cs) for t, cs in own.items()}
    return NodeRules(cluster, node, builtin, own_by_key, kube, kube_sorted, agent, own_order)


def node_tables(
    cluster: Cluster, node: str, *, options: KubeProxyOptions | None = None
) -> tuple[Table, ...]:
    """The iptables tables of ``node``'s host namespace: mangle, raw, filter, nat.

    Rule texts are the ones the programs hand to iptables (see podnet.control.kubeproxy);
    ``podnet.render.iptables_save.kernel_form`` gives what iptables-save prints back.
    kube-proxy's rules are present when ``cluster.config.proxy_mode`` is ``iptables``; flannel's
    when the network plugin is flannel.
    """
    return node_rules(cluster, node, options=options).tables()


class NodeTables(Sequence):
    """A node's tables (``Netns.tables``), written out only when something reads them in full
    (iptables-save, realize); ``rules`` answers chain by chain (the trace). Not kept once
    written: 5,000 nodes' tables in full would hold 100,000s of chain references each."""

    __slots__ = ("rules",)

    def __init__(self, rules: NodeRules):
        self.rules = rules

    def __len__(self) -> int:
        return len(TABLE_ORDER)

    def __getitem__(self, i):
        return self.rules.tables()[i]

    def __iter__(self):
        return iter(self.rules.tables())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NodeTables) and other.rules is self.rules:
            return True
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"NodeTables({self.rules.node!r})"


def _by_name(chains: list[Chain], span: tuple[int, int] | None) -> tuple[Chain, ...]:
    """``chains`` sorted by name (a stable sort), knowing that ``chains[lo:hi]`` (kube-proxy's
    chains, sorted by :func:`_kube_proxy_chains`) are in order already: the few others are
    inserted among them, instead of sorting 10,000s of chains again for every node."""
    if span is None:
        return tuple(sorted(chains, key=_NAME))
    lo, hi = span
    out = list(chains[lo:hi])
    # those before the sorted run go before equal names (in their own order), those after it
    # after them: what the stable sort of the whole list gives
    for c in reversed(sorted(chains[:lo], key=_NAME)):
        insort_left(out, c, key=_NAME)
    for c in sorted(chains[hi:], key=_NAME):
        insort_right(out, c, key=_NAME)
    return tuple(out)

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from podnet.control import kubeproxy_chains as kc
from podnet.control.flannel import flannel_rules
from podnet.control.kubeproxy import (
    DEFAULT_OPTIONS,
    KUBE_FIREWALL,
    KUBE_PROXY_CANARY,
    KubeProxyOptions,
)
from podnet.control.kubeproxy_node import KUBELET_FIREWALL_RULE, kube_chains
from podnet.control.kubeproxy_sync import proxy_state
from podnet.control.policy import AgentNode, agent_node
from podnet.model.cluster import Cluster
from podnet.model.dataplane import BUILTIN_CHAINS, Chain, Table

TABLE_ORDER = ("mangle", "raw", "filter", "nat")

_NAME = attrgetter("name")


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
    kube: Mapping[tuple[str, str], Chain]  # shared between nodes (a KubeChains, or empty)
    kube_sorted: Callable[[str], tuple[Chain, ...]]  # a table's kube-proxy chains by name
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

    def has_chain(self, table: str, name: str) -> bool:
        """Whether the node has the chain ``name`` of ``table``: what ``chain`` finds, without
        writing the rules of a chain written on demand (a Pod's firewall chain, a Service
        port's own chains)."""
        key = (table, name)
        if key in self.builtin or key in self.own or key in self.kube:
            return True
        return table == "filter" and self.agent is not None and self.agent.has(name)

    def host_index(self, table: str, name: str, head_of) -> tuple | None:
        """The policy agent's index of one of its top chains by host address, or None (see
        AgentNode.host_index): it writes those rules one local Pod at a time."""
        if table != "filter" or self.agent is None:
            return None
        return self.agent.host_index(name, head_of)

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
            kube = self.kube_sorted(t)
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
    kube: Mapping[tuple[str, str], Chain] = {}
    kube_sorted = _no_chains
    if with_proxy:
        state = proxy_state(cluster, options)
        kube = kube_chains(state, state.variants(node, n.ip if n else None))
        kube_sorted = kube.sorted_chains
        for t in ("mangle", "nat", "filter"):
            own[t].append(Chain(KUBE_PROXY_CANARY))
        existing = kc.builtin_jumps(existing)
    else:
        own["filter"].append(Chain(KUBE_FIREWALL, (KUBELET_FIREWALL_RULE,)))
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


def _no_chains(table: str) -> tuple[Chain, ...]:
    return ()


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
    chains, sorted by KubeChains.sorted_chains) are in order already: the few others are
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

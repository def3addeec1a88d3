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
from dataclasses import replace
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
from podnet.control.policy import agent_chains
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


def _kube_proxy_chains(state: ProxyState, variants: tuple) -> dict[str, tuple[Chain, ...]]:
    """kube-proxy's user chains per table (filter, nat) for a node whose node-dependent ports
    have ``variants``; cached in ``state`` so nodes with equal variants share the result."""
    key = ("chains", variants)
    hit = state.chain_cache.get(key)
    if hit is not None:
        return hit  # type: ignore[return-value]
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
        chains = [Chain(name, tuple(r)) for (t, name), r in rules.items() if t == table]
        if table == "nat":
            chains += ichain.from_iterable(nat_own)
        chains.sort(key=lambda c: c.name)
        out[table] = tuple(chains)
    state.chain_cache[key] = out
    return out


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


def node_tables(
    cluster: Cluster, node: str, *, options: KubeProxyOptions | None = None
) -> tuple[Table, ...]:
    """The iptables tables of ``node``'s host namespace: mangle, raw, filter, nat.

    Rule texts are the ones the programs hand to iptables (see podnet.control.kubeproxy);
    ``podnet.render.iptables_save.kernel_form`` gives what iptables-save prints back.
    kube-proxy's rules are present when ``cluster.config.proxy_mode`` is ``iptables``; flannel's
    when the network plugin is flannel.
    """
    if options is None:
        options = replace(DEFAULT_OPTIONS, nfacct=cluster.config.nfacct)
    n = cluster.node(node)
    with_proxy = cluster.config.proxy_mode == "iptables"
    user: dict[str, list[Chain]] = {t: [] for t in TABLE_ORDER}
    sorted_span: dict[str, tuple[int, int]] = {}  # where user[t] holds chains sorted by name
    existing: dict[tuple[str, str], list[str]] = {k: list(v) for k, v in kc.KUBELET_JUMPS.items()}
    user["mangle"] += [Chain(kc.KUBELET_HINT_CHAIN), Chain(kc.KUBELET_CANARY_CHAIN)]
    user["nat"].append(Chain(kc.KUBELET_CANARY_CHAIN))
    user["filter"].append(Chain(kc.KUBELET_CANARY_CHAIN))
    if with_proxy:
        state = proxy_state(cluster, options)
        kube = _kube_proxy_chains(state, state.variants(node, n.ip if n else None))
        for t in ("filter", "nat"):
            sorted_span[t] = (len(user[t]), len(user[t]) + len(kube[t]))
            user[t] += kube[t]
        for t in ("mangle", "nat", "filter"):
            user[t].append(Chain(KUBE_PROXY_CANARY))
        existing = kc.builtin_jumps(existing)
    else:
        user["filter"].append(Chain(KUBE_FIREWALL, (_KUBELET_FIREWALL_RULE,)))
    builtin_rules = existing
    for (table, name), rules in flannel_rules(
        cluster, node, random_fully=options.random_fully
    ).items():
        if name in BUILTIN_CHAINS[table]:
            builtin_rules.setdefault((table, name), []).extend(rules)
        else:
            user[table].append(Chain(name, rules))
    # kube-router's policy agent keeps its jumps at rule 1 (podnet.control.policy).
    agent = agent_chains(cluster, node)
    if agent is not None:
        jumps, agent_user = agent
        for builtin, rule in jumps.items():
            key = ("filter", builtin)
            builtin_rules[key] = [rule, *builtin_rules.get(key, ())]
        user["filter"] += agent_user
    tables = []
    for t in TABLE_ORDER:
        builtins = [
            Chain(c, tuple(builtin_rules.get((t, c), ())), policy="ACCEPT")
            for c in BUILTIN_CHAINS[t]
        ]
        tables.append(Table(t, tuple(builtins) + _by_name(user[t], sorted_span.get(t))))
    return tuple(tables)


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

"""kube-proxy's state for a whole cluster, shared by every node, and its restore input.

See podnet.control.kubeproxy for how sharing works: blocks of rules are cached per (service port,
node variant) in ProxyState, and ProxyState itself is memoized on the Cluster object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from podnet.control.kubeproxy import (
    DEFAULT_OPTIONS,
    FILTER_TOP_CHAINS,
    KUBE_FIREWALL,
    LARGE_CLUSTER_ENDPOINTS,
    NAT_TOP_CHAINS,
    KubeProxyOptions,
    PortInfo,
    service_ports,
)
from podnet.control.kubeproxy_chains import (
    PortBlock,
    SyncContext,
    fixed_rules,
    port_block,
    tail_rules,
)
from podnet.model.cluster import Cluster


def node_variant(p: PortInfo, node: str, node_ip: IPv4Address | None) -> tuple | None:
    """What of ``p``'s rules depends on the node: None when nothing does."""
    local = tuple(e.text for e in p.local_endpoints(node)) if p.uses_local_endpoints else None
    allow = None
    if p.uses_fw and node_ip is not None:
        allow = any(node_ip in r for r in p.source_ranges)
    if local is None and not allow:
        return None
    return (local, allow)


@dataclass(slots=True)
class ProxyState:
    """Cluster-wide kube-proxy data shared by every node: ports, context, block cache.

    ``dependent`` lists the indexes of ports whose rules may differ between nodes.
    """

    ports: tuple[PortInfo, ...]
    ctx: SyncContext
    dependent: tuple[int, ...]
    blocks: dict[tuple[int, tuple | None], PortBlock] = field(default_factory=dict)
    heads: dict[tuple[int, tuple | None], PortBlock] = field(default_factory=dict)
    chain_cache: dict[tuple, object] = field(default_factory=dict)

    def block(self, i: int, variant: tuple | None) -> PortBlock:
        """Port ``i``'s block for a node variant (cached)."""
        key = (i, variant)
        b = self.blocks.get(key)
        if b is None:
            b = self.blocks[key] = self._port_block(i, variant, own=True)
        return b

    def head(self, i: int, variant: tuple | None) -> PortBlock:
        """Port ``i``'s lines in the chains every port adds to, and the per-Service chains it
        declares, without writing its own chains (``port_block(own=False)``, cached): a node's
        KUBE-SERVICES needs every port's lines, a trace a few ports' own chains."""
        key = (i, variant)
        b = self.blocks.get(key)  # (a full block has the same lines)
        if b is None:
            b = self.heads.get(key)
            if b is None:
                b = self.heads[key] = self._port_block(i, variant, own=False)
        return b

    def _port_block(self, i: int, variant: tuple | None, *, own: bool) -> PortBlock:
        p = self.ports[i]
        if variant is None:
            local_names: tuple[str, ...] = ()
            allow = False
        else:
            local_names = variant[0] or ()
            allow = bool(variant[1])
        names = set(local_names)
        local = tuple(e for e in p.endpoints if e.text in names)
        return port_block(p, local, allow, self.ctx, own=own)

    def port_of(self, name: str) -> int | None:
        """The port whose KUBE-SVC-, KUBE-SVL-, KUBE-EXT- or KUBE-FW- chain ``name`` may be,
        or None (whether the port declares that chain on a node is its block's to say; an
        endpoint's KUBE-SEP- chain is not named until its port's chains are written)."""
        index = self.chain_cache.get("port_of")
        if index is None:
            index = {}
            for i, p in enumerate(self.ports):
                for n in (p.svc_chain, p.svl_chain, p.ext_chain, p.fw_chain):
                    index.setdefault(n, i)
            self.chain_cache["port_of"] = index
        return index.get(name)  # type: ignore[union-attr]

    def variants(self, node: str, node_ip: IPv4Address | None) -> tuple[tuple | None, ...]:
        """The variant of every node-dependent port on ``node`` (in ``dependent`` order)."""
        return tuple(node_variant(self.ports[i], node, node_ip) for i in self.dependent)


def build_state(cluster: Cluster, options: KubeProxyOptions = DEFAULT_OPTIONS) -> ProxyState:
    """Compute the cluster-wide kube-proxy data (service ports, endpoints, large-cluster mode)."""
    ports = service_ports(cluster)
    total = sum(len(p.endpoints) for p in ports)
    ctx = SyncContext(
        cluster_cidr=str(cluster.config.cluster_cidr),
        masquerade_all=cluster.config.masquerade_all,
        large_cluster=total > LARGE_CLUSTER_ENDPOINTS,
        options=options,
    )
    dependent = tuple(i for i, p in enumerate(ports) if p.uses_local_endpoints or p.uses_fw)
    return ProxyState(ports=ports, ctx=ctx, dependent=dependent)


# A one-entry memo: node_tables is called once per node with the same Cluster object, and hashing
# a Cluster (150,000 Pods) per call would cost more than it saves. Identity check, not equality.
_MEMO: list = [None, None, None]


def proxy_state(cluster: Cluster, options: KubeProxyOptions = DEFAULT_OPTIONS) -> ProxyState:
    """``build_state`` memoized on the identity of ``cluster`` (and the options)."""
    if _MEMO[0] is cluster and _MEMO[1] == options:
        return _MEMO[2]
    state = build_state(cluster, options)
    _MEMO[0], _MEMO[1], _MEMO[2] = cluster, options, state
    return state


def restore_text(cluster: Cluster, node: str, options: KubeProxyOptions = DEFAULT_OPTIONS) -> str:
    """The ``iptables-restore`` input one full kube-proxy sync writes on ``node`` (filter, then
    nat), as in proxier.go; ``kube_proxy_sorted`` of it compares with proxier_test.go's goldens."""
    state = proxy_state(cluster, options)
    n = cluster.node(node)
    node_ip = n.ip if n is not None else None
    dep = dict(zip(state.dependent, state.variants(node, node_ip), strict=True))
    f_fixed, n_fixed = fixed_rules(options)
    f_tail, n_tail = tail_rules(options)
    f_chains = list(FILTER_TOP_CHAINS)
    if options.localhost_nodeports:
        f_chains.append(KUBE_FIREWALL)
    n_chains = list(NAT_TOP_CHAINS)
    f_lines, n_lines = list(f_fixed), list(n_fixed)
    for i in range(len(state.ports)):
        b = state.block(i, dep.get(i))
        f_lines += b.filter
        n_lines += b.nat
        n_chains += b.nat_chains
    f_lines += f_tail
    n_lines += n_tail
    out = ["*filter"]
    out += [f":{c} - [0:0]" for c in f_chains]
    out += [f"-A {c} {r}" for c, r in f_lines]
    out += ["COMMIT", "*nat"]
    out += [f":{c} - [0:0]" for c in n_chains]
    out += [f"-A {c} {r}" for c, r in n_lines]
    out.append("COMMIT")
    return "\n".join(out) + "\n"

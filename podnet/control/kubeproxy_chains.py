"""kube-proxy's rule texts: per service-port blocks, the fixed per-sync rules and the jumps from
the built-in chains (kubernetes pkg/proxy/iptables/proxier.go ``syncProxyRules``,
``writeServiceToEndpointRules``, ``iptablesJumpChains``, ``iptablesKubeletJumpChains``; kubelet
pkg/kubelet/kubelet_network_linux.go). Texts are what kube-proxy hands to iptables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podnet.control.kubeproxy import (
    KUBE_EXTERNAL_SERVICES,
    KUBE_FIREWALL,
    KUBE_FORWARD,
    KUBE_MARK_MASQ,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_PROXY_FIREWALL,
    KUBE_SERVICES,
    MASQ_MARK,
    NFACCT_INVALID,
    NFACCT_LOCALHOST_NP,
    Ep,
    KubeProxyOptions,
    PortInfo,
    probability,
)
from podnet.model.dataplane import Chain


def _q(text: str) -> str:
    """A comment as kube-proxy writes it: proxier.go wraps phrases in ``"..."`` itself."""
    return f'"{text}"'


@dataclass(frozen=True, slots=True)
class SyncContext:
    """What every service port's rules depend on besides the port itself (cluster-wide)."""

    cluster_cidr: str  # detect-local-mode ClusterCIDR
    masquerade_all: bool
    large_cluster: bool
    options: KubeProxyOptions


@dataclass(frozen=True, slots=True)
class PortBlock:
    """The rules one service port contributes, in the order kube-proxy writes them.

    ``filter``/``nat`` are ``(chain, rule)`` lines; ``nat_chains`` the per-service nat chains it
    declares (restore chain lines, in order); ``chains`` those chains as Chain objects.
    """

    filter: tuple[tuple[str, str], ...]
    nat: tuple[tuple[str, str], ...]
    nat_chains: tuple[str, ...]
    chains: tuple[Chain, ...] = field(default=())

    def segment(self, table: str, chain: str) -> tuple[str, ...]:
        """The rules this block adds to a shared chain (KUBE-SERVICES, KUBE-NODEPORTS...)."""
        lines = self.filter if table == "filter" else self.nat
        return tuple(r for c, r in lines if c == chain)


def _dispatch(
    nat: list[tuple[str, str]], p: PortInfo, chain: str, eps: tuple[Ep, ...], ctx: SyncContext
) -> None:
    """writeServiceToEndpointRules: affinity checks, then the probability ladder."""
    if p.affinity_timeout is not None:
        for ep in eps:
            args = (
                [] if ctx.large_cluster else ["-m comment --comment", _q(f"{p.spn} -> {ep.text}")]
            )
            args += [
                f"-m recent --name {ep.chain} --rcheck --seconds {p.affinity_timeout} --reap",
                f"-j {ep.chain}",
            ]
            nat.append((chain, " ".join(args)))
    n = len(eps)
    for i, ep in enumerate(eps):
        args = [] if ctx.large_cluster else ["-m comment --comment", _q(f"{p.spn} -> {ep.text}")]
        if i < n - 1:
            args.append(f"-m statistic --mode random --probability {probability(n - i)}")
        args.append(f"-j {ep.chain}")
        nat.append((chain, " ".join(args)))


def port_block(
    p: PortInfo,
    local_eps: tuple[Ep, ...],
    allow_from_node: bool,
    ctx: SyncContext,
    *,
    own: bool = True,
) -> PortBlock:
    """The filter and nat rules of one service port on a node with ``local_eps`` (proxier.go
    syncProxyRules loop body, in its order).

    ``own=False``: only the lines it adds to the chains every port adds to (KUBE-SERVICES,
    KUBE-NODEPORTS...) and, of its own chains, the per-Service ones it declares (not the
    KUBE-SEP-* ones, nor any rule of them): what a node's shared chains and the check of
    their jumps need before a walk enters one of this port's own chains."""
    cluster_eps = p.cluster_endpoints()
    has_endpoints = p.has_any_endpoints() if p.uses_local_endpoints else bool(cluster_eps)
    uses_cluster_chain = bool(cluster_eps) and p.uses_cluster_endpoints
    uses_local_chain = bool(local_eps) and p.uses_local_endpoints

    internal_chain, has_internal = p.svc_chain, has_endpoints
    if p.itp_local:
        internal_chain = p.svl_chain
        has_internal = has_internal and bool(local_eps)
    external_policy_chain, has_external = p.svc_chain, has_endpoints
    if p.etp_local:
        external_policy_chain = p.svl_chain
        has_external = has_external and bool(local_eps)
    uses_ext_chain = has_endpoints and p.externally_accessible
    uses_fw = has_endpoints and p.uses_fw
    lb_chain = p.fw_chain if uses_fw else p.ext_chain

    int_target = int_comment = ext_target = ext_comment = ""
    if not has_endpoints:
        int_target = ext_target = "REJECT"
        int_comment = ext_comment = _q(f"{p.spn} has no endpoints")
    else:
        if not has_internal:
            int_target, int_comment = "DROP", _q(f"{p.spn} has no local endpoints")
        if not has_external:
            ext_target, ext_comment = "DROP", _q(f"{p.spn} has no local endpoints")

    pr = p.proto
    mp = f"-m {pr} -p {pr}"
    filt: list[tuple[str, str]] = []
    nat: list[tuple[str, str]] = []

    # Capture the clusterIP.
    if has_internal:
        nat.append(
            (
                KUBE_SERVICES,
                f"-m comment --comment {_q(p.spn + ' cluster IP')} {mp} -d {p.cluster_ip} "
                f"--dport {p.port} -j {internal_chain}",
            )
        )
    else:
        filt.append(
            (
                KUBE_SERVICES,
                f"-m comment --comment {int_comment} {mp} -d {p.cluster_ip} --dport {p.port} "
                f"-j {int_target}",
            )
        )
    # Capture externalIPs.
    for ip in p.external_ips:
        if has_endpoints:
            nat.append(
                (
                    KUBE_SERVICES,
                    f"-m comment --comment {_q(p.spn + ' external IP')} {mp} -d {ip} "
                    f"--dport {p.port} -j {p.ext_chain}",
                )
            )
        if not has_external:
            filt.append(
                (
                    KUBE_EXTERNAL_SERVICES,
                    f"-m comment --comment {ext_comment} {mp} -d {ip} --dport {p.port} "
                    f"-j {ext_target}",
                )
            )
    # Capture load-balancer ingress.
    for ip in p.lb_ips:
        if has_endpoints:
            nat.append(
                (
                    KUBE_SERVICES,
                    f"-m comment --comment {_q(p.spn + ' loadbalancer IP')} {mp} -d {ip} "
                    f"--dport {p.port} -j {lb_chain}",
                )
            )
        if uses_fw:
            filt.append(
                (
                    KUBE_PROXY_FIREWALL,
                    f"-m comment --comment {_q(f'{p.spn} traffic not accepted by {p.fw_chain}')} "
                    f"{mp} -d {ip} --dport {p.port} -j DROP",
                )
            )
    if not has_external:
        for ip in p.lb_ips:
            filt.append(
                (
                    KUBE_EXTERNAL_SERVICES,
                    f"-m comment --comment {ext_comment} {mp} -d {ip} --dport {p.port} "
                    f"-j {ext_target}",
                )
            )
    # Capture nodeports.
    if p.node_port:
        if has_endpoints:
            opts = ctx.options
            if opts.localhost_nodeports and opts.nfacct:
                nat.append(
                    (
                        KUBE_NODEPORTS,
                        f"-m comment --comment {p.spn} {mp} -d 127.0.0.0/8 --dport {p.node_port} "
                        f"-m nfacct --nfacct-name {NFACCT_LOCALHOST_NP} -j {p.ext_chain}",
                    )
                )
            nat.append(
                (
                    KUBE_NODEPORTS,
                    f"-m comment --comment {p.spn} {mp} --dport {p.node_port} -j {p.ext_chain}",
                )
            )
        if not has_external:
            filt.append(
                (
                    KUBE_EXTERNAL_SERVICES,
                    f"-m comment --comment {ext_comment} -m addrtype --dst-type LOCAL {mp} "
                    f"--dport {p.node_port} -j {ext_target}",
                )
            )
    # Capture healthCheckNodePorts (whether or not the node has local endpoints).
    if p.hc_node_port:
        filt.append(
            (
                KUBE_NODEPORTS,
                f"-m comment --comment {_q(p.spn + ' health check node port')} -m tcp -p tcp "
                f"--dport {p.hc_node_port} -j ACCEPT",
            )
        )

    # The port's own chains, in the order they are declared (the per-endpoint ones last).
    chains = [
        name
        for name, used in (
            (p.ext_chain, uses_ext_chain),
            (p.fw_chain, uses_fw),
            (p.svc_chain, uses_cluster_chain),
            (p.svl_chain, uses_local_chain),
        )
        if used
    ]
    if not own:
        return PortBlock(filter=tuple(filt), nat=tuple(nat), nat_chains=tuple(chains))

    # Internal traffic handling: masquerade off-cluster sources (or everything, masqueradeAll).
    if has_internal:
        args = f"-m comment --comment {_q(p.spn + ' cluster IP')} {mp} -d {p.cluster_ip} --dport {p.port}"
        if ctx.masquerade_all:
            nat.append((internal_chain, f"{args} -j {KUBE_MARK_MASQ}"))
        else:
            nat.append((internal_chain, f"{args} ! -s {ctx.cluster_cidr} -j {KUBE_MARK_MASQ}"))

    # External traffic handling.
    if uses_ext_chain:
        ext = p.ext_chain
        if not p.etp_local:
            nat.append(
                (
                    ext,
                    f"-m comment --comment {_q(f'masquerade traffic for {p.spn} external destinations')} "
                    f"-j {KUBE_MARK_MASQ}",
                )
            )
        else:
            nat.append(
                (
                    ext,
                    f"-m comment --comment {_q(f'pod traffic for {p.spn} external destinations')} "
                    f"-s {ctx.cluster_cidr} -j {p.svc_chain}",
                )
            )
            nat.append(
                (
                    ext,
                    "-m comment --comment "
                    f"{_q(f'masquerade LOCAL traffic for {p.spn} external destinations')} "
                    f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}",
                )
            )
            nat.append(
                (
                    ext,
                    f"-m comment --comment {_q(f'route LOCAL traffic for {p.spn} external destinations')} "
                    f"-m addrtype --src-type LOCAL -j {p.svc_chain}",
                )
            )
        if has_external:
            nat.append((ext, f"-j {external_policy_chain}"))

    # Firewall chain (loadBalancerSourceRanges).
    if uses_fw:
        head = f"-m comment --comment {_q(p.spn + ' loadbalancer IP')}"
        for cidr in p.source_ranges:
            nat.append((p.fw_chain, f"{head} -s {cidr} -j {p.ext_chain}"))
        if allow_from_node:
            for ip in p.lb_ips:
                nat.append((p.fw_chain, f"{head} -s {ip} -j {p.ext_chain}"))
        nat.append(
            (
                p.fw_chain,
                f"-m comment --comment {_q(f'other traffic to {p.spn} will be dropped by KUBE-PROXY-FIREWALL')}",
            )
        )

    if uses_cluster_chain:
        _dispatch(nat, p, p.svc_chain, cluster_eps, ctx)
    if uses_local_chain:
        _dispatch(nat, p, p.svl_chain, local_eps, ctx)

    # Per-endpoint chains: allLocallyReachableEndpoints (cluster + local, merged by "ip:port").
    if not p.uses_local_endpoints:
        reachable = cluster_eps
    elif not p.uses_cluster_endpoints:
        reachable = local_eps
    else:
        merged = {e.text: e for e in cluster_eps}
        merged.update((e.text, e) for e in local_eps)
        reachable = tuple(merged[k] for k in sorted(merged))
    comment = [] if ctx.large_cluster else [f"-m comment --comment {p.spn}"]
    for ep in reachable:
        chains.append(ep.chain)
        nat.append((ep.chain, " ".join([*comment, f"-s {ep.ip} -j {KUBE_MARK_MASQ}"])))
        args = [*comment]
        if p.affinity_timeout is not None:
            args.append(f"-m recent --name {ep.chain} --set")
        args.append(f"{mp} -j DNAT --to-destination {ep.text}")
        nat.append((ep.chain, " ".join(args)))

    by_chain: dict[str, list[str]] = {c: [] for c in chains}
    for c, r in nat:
        if c in by_chain:
            by_chain[c].append(r)
    return PortBlock(
        filter=tuple(filt),
        nat=tuple(nat),
        nat_chains=tuple(chains),
        chains=tuple(Chain(c, tuple(by_chain[c])) for c in chains),
    )


# ------------------------------------------------------------------------- fixed per-sync rules


def fixed_rules(options: KubeProxyOptions) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The per-sync rules that do not depend on services: (filter lines, nat lines) in write
    order, split as proxier.go writes them before and after the service loop."""
    m = MASQ_MARK
    masq = f"-m comment --comment {_q('kubernetes service traffic requiring SNAT')} -j MASQUERADE"
    if options.random_fully:
        masq += " --random-fully"
    nat = [
        (KUBE_POSTROUTING, f"-m mark ! --mark {m}/{m} -j RETURN"),
        (KUBE_POSTROUTING, f"-j MARK --xor-mark {m}"),
        (KUBE_POSTROUTING, masq),
        (KUBE_MARK_MASQ, f"-j MARK --or-mark {m}"),
    ]
    filt: list[tuple[str, str]] = []
    if options.localhost_nodeports:
        filt.append(
            (
                KUBE_FIREWALL,
                f"-m comment --comment {_q('block incoming localnet connections')} "
                "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
                "-j DROP",
            )
        )
    return filt, nat


def tail_rules(options: KubeProxyOptions) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The rules written after the service loop: the KUBE-NODEPORTS tail call and KUBE-FORWARD."""
    dest = "-m addrtype --dst-type LOCAL"
    if not options.localhost_nodeports:
        dest += " ! -d 127.0.0.0/8"
    nat = [
        (
            KUBE_SERVICES,
            "-m comment --comment "
            + _q("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
            + f" {dest} -j {KUBE_NODEPORTS}",
        )
    ]
    filt: list[tuple[str, str]] = []
    if not options.conntrack_tcp_be_liberal:
        acct = f" -m nfacct --nfacct-name {NFACCT_INVALID}" if options.nfacct else ""
        filt.append((KUBE_FORWARD, f"-m conntrack --ctstate INVALID{acct} -j DROP"))
    m = MASQ_MARK
    filt.append(
        (
            KUBE_FORWARD,
            f"-m comment --comment {_q('kubernetes forwarding rules')} -m mark --mark {m}/{m} -j ACCEPT",
        )
    )
    filt.append(
        (
            KUBE_FORWARD,
            f"-m comment --comment {_q('kubernetes forwarding conntrack rule')} "
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        )
    )
    return filt, nat


# iptablesJumpChains then iptablesKubeletJumpChains (proxier.go): (table, built-in chain, target,
# comment, extra args). Each is installed with EnsureRule(Prepend) on a full sync.
JUMP_CHAINS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "filter",
        "INPUT",
        KUBE_EXTERNAL_SERVICES,
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        KUBE_EXTERNAL_SERVICES,
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW",
    ),
    ("filter", "INPUT", KUBE_NODEPORTS, "kubernetes health check service ports", ""),
    (
        "filter",
        "FORWARD",
        KUBE_SERVICES,
        "kubernetes service portals",
        "-m conntrack --ctstate NEW",
    ),
    ("filter", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", "-m conntrack --ctstate NEW"),
    ("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules", ""),
    (
        "filter",
        "INPUT",
        KUBE_PROXY_FIREWALL,
        "kubernetes load balancer firewall",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "OUTPUT",
        KUBE_PROXY_FIREWALL,
        "kubernetes load balancer firewall",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        KUBE_PROXY_FIREWALL,
        "kubernetes load balancer firewall",
        "-m conntrack --ctstate NEW",
    ),
    ("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", ""),
    ("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals", ""),
    ("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules", ""),
    ("filter", "INPUT", KUBE_FIREWALL, "", ""),
    ("filter", "OUTPUT", KUBE_FIREWALL, "", ""),
)


def jump_rule(comment: str, extra: str, target: str) -> str:
    """A jump rule's text: extra args, then ``-m comment --comment "..."`` (if any), then ``-j``."""
    parts = [extra] if extra else []
    if comment:
        parts.append(f"-m comment --comment {_q(comment)}")
    parts.append(f"-j {target}")
    return " ".join(parts)


def builtin_jumps(existing: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    """The built-in chains after kube-proxy's full sync, given what they held before.

    ``existing`` maps (table, chain) to its rules (e.g. kubelet's ``-j KUBE-FIREWALL``). Every
    jump is prepended unless an identical rule exists (EnsureRule), so the final order within a
    chain is the reverse of JUMP_CHAINS' order, above whatever was there.
    """
    out = {k: list(v) for k, v in existing.items()}
    for table, chain, target, comment, extra in JUMP_CHAINS:
        rule = jump_rule(comment, extra, target)
        rules = out.setdefault((table, chain), [])
        if rule not in rules:
            rules.insert(0, rule)
    return out


# kubelet's own chains (kubelet_network_linux.go): the hint chain and KUBE-FIREWALL with its jumps,
# made before kube-proxy (a DaemonSet Pod) runs; KUBE-KUBELET-CANARY from its iptables Monitor.
KUBELET_HINT_CHAIN = "KUBE-IPTABLES-HINT"
KUBELET_CANARY_CHAIN = "KUBE-KUBELET-CANARY"
KUBELET_JUMPS: dict[tuple[str, str], list[str]] = {
    ("filter", "INPUT"): ["-j KUBE-FIREWALL"],
    ("filter", "OUTPUT"): ["-j KUBE-FIREWALL"],
}

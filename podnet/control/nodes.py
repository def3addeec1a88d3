"""Phase 1: the nodes (SPEC 1.2), with InternalIPs and podCIDRs assigned and checked.

Without given nodes the cluster has ``node-1``..``node-3`` plus every node a Pod (or a workload's
template) names in ``spec.nodeName``, in order of first mention. Node *i* gets InternalIP
``192.168.0.(10+i)`` and podCIDR ``10.244.i.0/24`` unless given; generalized:

- podCIDR: the next /24 of clusterCIDR, counting from the second one (the ``i`` of 10.244.i.0/24
  starts at 1), skipping every /24 a node was given explicitly. kube-controller-manager's range
  allocator (pkg/controller/nodeipam/ipam/range_allocator.go, ``--node-cidr-mask-size`` 24) hands
  out the free /24s in order in the same way.
- InternalIP: the next free address from 192.168.0.11 up, skipping given ones. Past .254 the
  sequence goes on in 192.168.1.0/24 and so forth (one /16 underlay), never using an address whose
  last byte is 0 or 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from podnet.control.report import Report
from podnet.errors import did_you_mean
from podnet.model.base import FrozenDict
from podnet.model.cluster import Node
from podnet.model.spec import ClusterConfig, Inputs, NodeSpec, Source

DEFAULT_NODES = ("node-1", "node-2", "node-3")
FIRST_NODE_IP = IPv4Address("192.168.0.11")
UNDERLAY = IPv4Network("192.168.0.0/16")
NODE_MASK = 24  # kube-controller-manager --node-cidr-mask-size (IPv4 default)
HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"


def node_specs(inputs: Inputs, mentioned: Sequence[str]) -> list[NodeSpec]:
    """The nodes of the cluster, before addresses: given ones, or the defaults + ``mentioned``."""
    if inputs.nodes_given:
        return list(inputs.nodes)
    specs = [NodeSpec(n) for n in DEFAULT_NODES]
    seen = set(DEFAULT_NODES)
    for name in mentioned:
        if name not in seen:
            seen.add(name)
            specs.append(NodeSpec(name))
    return specs


def plan_nodes(inputs: Inputs, mentioned: Sequence[str], report: Report) -> tuple[Node, ...]:
    """Phase 1. ``mentioned``: nodeNames in order of first mention (used only without given nodes).

    >>> from podnet.model.spec import Inputs
    >>> [(n.name, str(n.ip), str(n.pod_cidr)) for n in plan_nodes(Inputs(), ["w"], Report())][-1]
    ('w', '192.168.0.14', '10.244.4.0/24')
    """
    config = inputs.config
    specs = node_specs(inputs, mentioned)
    _check_config(config, report)
    _check_names(specs, report)
    ips = _assign_ips(specs, report)
    cidrs = _assign_cidrs(specs, config, report)
    nodes: list[Node] = []
    for i, (spec, ip, cidr) in enumerate(zip(specs, ips, cidrs, strict=True), start=1):
        if ip is None or cidr is None:
            continue
        labels = dict(spec.labels)
        labels.setdefault(HOSTNAME_LABEL, spec.name)
        labels.setdefault(OS_LABEL, "linux")
        nodes.append(
            Node(
                name=spec.name,
                index=i,
                ip=ip,
                pod_cidr=cidr,
                labels=FrozenDict(labels),
                taints=spec.taints,
                allocatable=spec.allocatable,
                src=spec.src,
            )
        )
        report.event("kubelet", "register", f"Node/{spec.name}", f"InternalIP {ip}")
        how = "allocate" if spec.pod_cidr is None else "accept"
        report.event("node-ipam-controller", how, f"Node/{spec.name}", f"podCIDR {cidr}")
    return tuple(nodes)


def _check_config(config: ClusterConfig, report: Report) -> None:
    if config.cluster_cidr.overlaps(config.service_cidr):
        report.error(
            f"serviceCIDR {config.service_cidr} overlaps clusterCIDR {config.cluster_cidr}"
            " (found overlapping ranges, expected disjoint ones)",
            config.src,
            "spec.serviceCIDR",
            hint="Pod and Service addresses must come from separate ranges",
        )
    if config.cluster_cidr.prefixlen > NODE_MASK:
        report.error(
            f"clusterCIDR {config.cluster_cidr} is smaller than one /{NODE_MASK} per node"
            f" (found /{config.cluster_cidr.prefixlen}, expected /{NODE_MASK} or larger)",
            config.src,
            "spec.clusterCIDR",
        )


def _check_names(specs: Sequence[NodeSpec], report: Report) -> None:
    seen: dict[str, NodeSpec] = {}
    for spec in specs:
        if spec.name in seen:
            report.error(f"duplicate node name {spec.name!r}", spec.src, "metadata.name")
        else:
            seen[spec.name] = spec


def _assign_ips(specs: Sequence[NodeSpec], report: Report) -> list[IPv4Address | None]:
    owner: dict[IPv4Address, str] = {}
    for spec in specs:
        if spec.ip is None:
            continue
        if spec.ip in owner:
            report.error(
                f"node {spec.name}: InternalIP {spec.ip} is already the address of node"
                f" {owner[spec.ip]} (found a duplicate, expected one address per node)",
                spec.src,
                "ip",
            )
        else:
            owner[spec.ip] = spec.name
    out: list[IPv4Address | None] = []
    cursor = int(FIRST_NODE_IP)
    last = int(UNDERLAY.broadcast_address) - 1
    for spec in specs:
        if spec.ip is not None:
            out.append(spec.ip)
            continue
        while cursor <= last and (cursor & 0xFF in (0, 255) or IPv4Address(cursor) in owner):
            cursor += 1
        if cursor > last:
            report.error(f"node {spec.name}: no InternalIP left in {UNDERLAY}", spec.src, "ip")
            out.append(None)
            continue
        out.append(IPv4Address(cursor))
        cursor += 1
    return out


def _cidr_where(spec: NodeSpec) -> tuple[Source, str]:
    return spec.src, "spec.podCIDR"


def _assign_cidrs(
    specs: Sequence[NodeSpec], config: ClusterConfig, report: Report
) -> list[IPv4Network | None]:
    cluster, services = config.cluster_cidr, config.service_cidr
    given = [s for s in specs if s.pod_cidr is not None]
    for spec in given:
        cidr = spec.pod_cidr
        assert cidr is not None
        src, path = _cidr_where(spec)
        if not cidr.subnet_of(cluster):
            report.error(
                f"node {spec.name}: podCIDR {cidr} is not inside clusterCIDR {cluster}"
                f" (found {cidr}, expected a subnet of {cluster})",
                src,
                path,
                hint="flannel routes only the clusterCIDR between nodes",
            )
        if cidr.overlaps(services):
            report.error(
                f"node {spec.name}: podCIDR {cidr} overlaps serviceCIDR {services}"
                " (found overlapping ranges, expected disjoint ones)",
                src,
                path,
            )
    _check_overlaps(given, report)

    # /24 indexes inside clusterCIDR that given podCIDRs cover: never handed out again.
    blocked: set[int] = set()
    base = int(cluster.network_address)
    step = 1 << (32 - NODE_MASK)
    count = 1 << (NODE_MASK - cluster.prefixlen) if cluster.prefixlen <= NODE_MASK else 0
    for spec in given:
        cidr = spec.pod_cidr
        assert cidr is not None
        if not cidr.overlaps(cluster):
            continue
        lo = max(int(cidr.network_address), base)
        hi = min(int(cidr.broadcast_address), int(cluster.broadcast_address))
        blocked.update(range((lo - base) // step, (hi - base) // step + 1))

    out: list[IPv4Network | None] = []
    index = 1  # SPEC 1.2: node i gets 10.244.i.0/24, so the first /24 is never handed out
    for spec in specs:
        if spec.pod_cidr is not None:
            out.append(spec.pod_cidr)
            continue
        while index < count and index in blocked:
            index += 1
        if index >= count:
            if count:
                report.error(
                    f"node {spec.name}: no /{NODE_MASK} left in clusterCIDR {cluster} for its"
                    f" podCIDR ({len(specs)} nodes, {count - 1} podCIDRs available)",
                    config.src,
                    "spec.clusterCIDR",
                    hint="give a larger clusterCIDR",
                )
            out.append(None)
            continue
        out.append(IPv4Network((base + index * step, NODE_MASK)))
        index += 1
    return out


def _check_overlaps(given: Sequence[NodeSpec], report: Report) -> None:
    """Report each given podCIDR that overlaps one before it (sorted by address: O(n log n))."""
    ordered = sorted(
        given,
        key=lambda s: (int(s.pod_cidr.network_address), s.pod_cidr.prefixlen),  # type: ignore[union-attr]
    )
    widest: NodeSpec | None = None  # the range reaching furthest so far
    for spec in ordered:
        cidr = spec.pod_cidr
        assert cidr is not None
        if widest is not None:
            other = widest.pod_cidr
            assert other is not None
            if int(cidr.network_address) <= int(other.broadcast_address):
                src, path = _cidr_where(spec)
                report.error(
                    f"node {spec.name}: podCIDR {cidr} overlaps podCIDR {other} of node"
                    f" {widest.name} (found overlapping ranges, expected one range per node)",
                    src,
                    path,
                )
                if int(cidr.broadcast_address) <= int(other.broadcast_address):
                    continue
        widest = spec


def unknown_node_hint(name: str, names: Sequence[str]) -> str:
    """The hint for a nodeName that names no node."""
    return did_you_mean(name, names) or "nodes: " + ", ".join(names[:10]) + (
        ", ..." if len(names) > 10 else ""
    )

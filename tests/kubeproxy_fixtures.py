"""Small builders of model Cluster objects for the kube-proxy / iptables tests.

They mirror kubernetes pkg/proxy/iptables/proxier_test.go conventions: node "test-node" with IP
192.168.0.2, pod network 10.0.0.0/8 (NewFakeProxier's detect-local CIDR).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from podnet.control.kubeproxy import KubeProxyOptions
from podnet.model.cluster import Cluster, Endpoint, EndpointPort, EndpointSlice, Node, Service
from podnet.model.spec import ClusterConfig, Meta, ServicePort, ServiceSpec

TEST_NODE = "test-node"
# NewFakeProxier: fake iptables without --random-fully; nfacct counters present.
FAKE_PROXIER = KubeProxyOptions(random_fully=False, nfacct=True)


def service(ns: str, name: str, cluster_ip: str | None, ports, **kw) -> Service:
    """A Service; ``ports`` are ServicePort objects or (name, port, protocol[, node_port])."""
    sps = tuple(
        p
        if isinstance(p, ServicePort)
        else ServicePort(p[1], p[2], p[0], node_port=(p[3] if len(p) > 3 else None))
        for p in ports
    )
    for key in ("external_ips", "load_balancer_ips"):
        if key in kw:
            kw[key] = tuple(IPv4Address(a) for a in kw[key])
    if "load_balancer_source_ranges" in kw:
        kw["load_balancer_source_ranges"] = tuple(
            IPv4Network(r) for r in kw["load_balancer_source_ranges"]
        )
    spec = ServiceSpec(Meta(name, ns), ports=sps, cluster_ip=cluster_ip, **kw)
    return Service(spec, IPv4Address(cluster_ip) if cluster_ip not in (None, "None") else None)


def ep(
    ip: str, node: str | None = None, *, ready=True, serving=True, terminating=False
) -> Endpoint:
    return Endpoint(
        IPv4Address(ip), ready=ready, serving=serving, terminating=terminating, node_name=node
    )


def eslice(ns: str, svc: str, endpoints, ports=(("p80", 80, "TCP"),), suffix="1") -> EndpointSlice:
    return EndpointSlice(
        name=f"{svc}-{suffix}",
        namespace=ns,
        service=svc,
        ports=tuple(EndpointPort(n, p, proto) for n, p, proto in ports),
        endpoints=tuple(endpoints),
    )


def cluster(
    services,
    slices,
    *,
    cluster_cidr: str = "10.0.0.0/8",
    masquerade_all: bool = False,
    nodes=((TEST_NODE, "192.168.0.2", "10.0.1.0/24"),),
) -> Cluster:
    cfg = ClusterConfig(cluster_cidr=IPv4Network(cluster_cidr), masquerade_all=masquerade_all)
    ns = tuple(
        Node(name, i + 1, IPv4Address(ip), IPv4Network(cidr))
        for i, (name, ip, cidr) in enumerate(nodes)
    )
    return Cluster(cfg, ns, (), (), tuple(services), tuple(slices))

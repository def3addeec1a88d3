"""Phase 2b: what ``kubeadm init`` creates before any user object: the ``kubernetes`` Service of
the API server and the cluster DNS addon (CoreDNS behind the ``kube-dns`` Service).

Facts (kubernetes cmd/kubeadm/app/phases/addons/dns/manifests.go, cmd/kubeadm/app/constants,
pkg/controlplane/controller/kubernetesservice; shared/reference/dataplane.md section 3):

- ``default/kubernetes``: ClusterIP = the first address of serviceCIDR (10.96.0.1), port
  ``https`` 443/TCP -> 6443, no selector; the API server keeps its EndpointSlice ``kubernetes``
  itself, with its advertise address. podnet has no control-plane node of its own: the API server
  is taken to listen on the first node's InternalIP (node-1, 192.168.0.11), port 6443.
- ``kube-system/kube-dns``: ClusterIP = the 10th address of serviceCIDR (kubeadm
  ``GetDNSIP``: 10.96.0.10), selector ``k8s-app=kube-dns``, ports ``dns`` 53/UDP, ``dns-tcp``
  53/TCP, ``metrics`` 9153/TCP.
- Deployment ``kube-system/coredns``: 2 replicas, labels ``k8s-app=kube-dns``, container
  ``coredns`` with containerPorts 53/UDP ``dns``, 53/TCP ``dns-tcp``, 9153/TCP ``metrics``,
  requests 100m cpu / 70Mi memory, tolerations ``CriticalAddonsOnly`` and the control-plane
  taint, ``dnsPolicy: Default``.

A real cluster creates them at ``kubeadm init``, before any user workload: the CoreDNS Pods are
scheduled first and take the first host-local addresses (.2) of the nodes they land on, so the
users' Pods start after them. podnet follows that order (their source sorts before every input
file, see ``ADDON_FILE``). Each object is added only when the input has no object of that kind
and name: a cluster that brings its own ``kube-dns`` (or ``kubernetes``) Service keeps it, and
then gets no CoreDNS Deployment either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from podnet.control.report import Report
from podnet.model.base import FrozenDict, Pos
from podnet.model.cluster import Node
from podnet.model.spec import (
    Container,
    ContainerPort,
    EndpointPortSpec,
    EndpointSliceSpec,
    EndpointSpec,
    Inputs,
    LabelSelector,
    Meta,
    PodTemplate,
    Resources,
    ServicePort,
    ServiceSpec,
    Source,
    Toleration,
    Workload,
)

ADDON_FILE = "<kubeadm init>"
"""The source file name of the objects kubeadm creates; it sorts before every input file."""

DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_DEPLOYMENT = "coredns"
DNS_LABELS = FrozenDict({"k8s-app": "kube-dns"})
DNS_REPLICAS = 2
DNS_IP_INDEX = 10  # kubeadm GetDNSIP: the 10th address of the service subnet
API_SERVICE = "kubernetes"
API_PORT = 6443  # kube-apiserver --secure-port default
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"


def _src(line: int) -> Source:
    return Source(Pos(ADDON_FILE, line, 1))


def nth_address(cidr: IPv4Network, n: int) -> IPv4Address | None:
    """The ``n``-th address after the network address, if the range holds it (and it is not the
    broadcast address).

    >>> nth_address(IPv4Network("10.96.0.0/12"), 10), nth_address(IPv4Network("10.0.0.0/29"), 10)
    (IPv4Address('10.96.0.10'), None)
    """
    if n >= cidr.num_addresses - 1:
        return None
    return cidr.network_address + n


def _fixed_ip(cidr: IPv4Network, n: int, taken: set[str]) -> str | None:
    ip = nth_address(cidr, n)
    if ip is None or str(ip) in taken:
        return None  # allocated like any other Service instead
    return str(ip)


def api_service(cidr: IPv4Network, taken: set[str]) -> ServiceSpec:
    """The ``default/kubernetes`` Service (pkg/controlplane/controller/kubernetesservice)."""
    return ServiceSpec(
        Meta(
            API_SERVICE,
            "default",
            FrozenDict({"component": "apiserver", "provider": "kubernetes"}),
            src=_src(1),
        ),
        ports=(ServicePort(443, "TCP", "https", API_PORT),),
        cluster_ip=_fixed_ip(cidr, 1, taken),
    )


def api_slice(node: Node) -> EndpointSliceSpec:
    """The API server's own EndpointSlice: its advertise address (here node-1's InternalIP)."""
    return EndpointSliceSpec(
        Meta(API_SERVICE, "default", src=_src(2)),
        API_SERVICE,
        ports=(EndpointPortSpec(API_PORT, "https", "TCP"),),
        endpoints=(EndpointSpec((node.ip,)),),
    )


def dns_service(cidr: IPv4Network, taken: set[str]) -> ServiceSpec:
    """``kube-system/kube-dns`` as kubeadm's manifest declares it."""
    labels = FrozenDict(
        {
            "k8s-app": "kube-dns",
            "kubernetes.io/cluster-service": "true",
            "kubernetes.io/name": "CoreDNS",
        }
    )
    return ServiceSpec(
        Meta(DNS_SERVICE, DNS_NAMESPACE, labels, src=_src(3)),
        selector=DNS_LABELS,
        ports=(
            ServicePort(53, "UDP", "dns", 53),
            ServicePort(53, "TCP", "dns-tcp", 53),
            ServicePort(9153, "TCP", "metrics", 9153),
        ),
        cluster_ip=_fixed_ip(cidr, DNS_IP_INDEX, taken),
    )


def dns_deployment() -> Workload:
    """The ``coredns`` Deployment of kubeadm's manifest (the fields podnet models)."""
    container = Container(
        "coredns",
        COREDNS_IMAGE,
        ports=(
            ContainerPort(53, "dns", "UDP"),
            ContainerPort(53, "dns-tcp", "TCP"),
            ContainerPort(9153, "metrics", "TCP"),
        ),
        requests=Resources(cpu_m=100, memory=70 * 1024 * 1024),
    )
    template = PodTemplate(
        labels=DNS_LABELS,
        containers=(container,),
        tolerations=(
            Toleration("CriticalAddonsOnly", "Exists"),
            Toleration("node-role.kubernetes.io/control-plane", "Equal", "", "NoSchedule"),
        ),
        dns_policy="Default",
    )
    return Workload(
        "Deployment",
        Meta(DNS_DEPLOYMENT, DNS_NAMESPACE, DNS_LABELS, src=_src(4)),
        template,
        replicas=DNS_REPLICAS,
        selector=LabelSelector(DNS_LABELS),
    )


def add_cluster_addons(inputs: Inputs, nodes: Sequence[Node], report: Report) -> Inputs:
    """The inputs with what kubeadm creates first, for each object the input does not define."""
    svc_names = {(s.meta.namespace or "default", s.meta.name) for s in inputs.services}
    taken = {s.cluster_ip for s in inputs.services if s.cluster_ip}
    cidr = inputs.config.service_cidr
    services: list[ServiceSpec] = []
    workloads: list[Workload] = []
    slices: list[EndpointSliceSpec] = []
    if ("default", API_SERVICE) not in svc_names:
        services.append(api_service(cidr, taken))
        given = any(
            (e.meta.namespace or "default") == "default" and e.service_name == API_SERVICE
            for e in inputs.endpoint_slices
        )
        if nodes and not given:
            slices.append(api_slice(nodes[0]))
        report.event(
            "kubeadm", "create", f"Service/default/{API_SERVICE}", "the API server's Service"
        )
    if (DNS_NAMESPACE, DNS_SERVICE) not in svc_names:
        services.append(dns_service(cidr, taken))
        report.event("kubeadm", "create", f"Service/{DNS_NAMESPACE}/{DNS_SERVICE}", "addon CoreDNS")
        has_deploy = any(
            w.kind == "Deployment"
            and (w.meta.namespace or "default") == DNS_NAMESPACE
            and w.meta.name == DNS_DEPLOYMENT
            for w in inputs.workloads
        )
        if not has_deploy:
            workloads.append(dns_deployment())
            report.event(
                "kubeadm",
                "create",
                f"Deployment/{DNS_NAMESPACE}/{DNS_DEPLOYMENT}",
                f"addon CoreDNS, {DNS_REPLICAS} replicas",
            )
    if not services:
        return inputs
    return dataclasses.replace(
        inputs,
        services=tuple(services) + inputs.services,
        workloads=tuple(workloads) + inputs.workloads,
        endpoint_slices=tuple(slices) + inputs.endpoint_slices,
    )


def is_addon(meta: Meta) -> bool:
    """Whether an object is one podnet added for kubeadm (not written in the input)."""
    pos = meta.src.pos
    return pos is not None and pos.file == ADDON_FILE

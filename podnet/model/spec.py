"""The loaded input: podnet's Cluster document and Kubernetes objects, normalized and immutable.

These are what the user wrote (with defaults of the API server applied, e.g. a Service port's
protocol TCP), each carrying the position of its document so later phases can point at it. The
control plane (podnet.control) turns them into the cluster that runs (podnet.model.cluster).

``pos`` fields give where an object (or a value) was written; ``paths`` maps a dotted value path
(``spec.ports[0].targetPort``) to the position of that value, for messages from later phases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from podnet.model.base import EMPTY, FrozenDict, Pos

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a Kubernetes object was written: its document's position and every value's position."""

    pos: Pos | None = None
    paths: FrozenDict = EMPTY  # dotted value path -> Pos

    def at(self, path: str) -> Pos | None:
        """Position of the value at ``path``, else of the nearest written parent, else the object."""
        while path:
            p = self.paths.get(path)
            if p is not None:
                return p
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.pos


NO_SOURCE = Source()


@dataclass(frozen=True, slots=True)
class Meta:
    """ObjectMeta: what identifies an object. ``namespace`` is None for cluster-scoped kinds."""

    name: str
    namespace: str | None = None
    labels: FrozenDict = EMPTY
    annotations: FrozenDict = EMPTY
    deletion_timestamp: str | None = None
    uid: str | None = None
    src: Source = NO_SOURCE

    @property
    def key(self) -> str:
        """``ns/name`` for namespaced objects, ``name`` otherwise."""
        return f"{self.namespace}/{self.name}" if self.namespace is not None else self.name


# ---------------------------------------------------------------------------------- the cluster


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute


@dataclass(frozen=True, slots=True)
class Resources:
    """cpu in millicores, memory in bytes, pods as a count (None: not stated)."""

    cpu_m: int | None = None
    memory: int | None = None
    pods: int | None = None


DEFAULT_ALLOCATABLE = Resources(cpu_m=4000, memory=8 * 1024**3, pods=110)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as the input gives it (Cluster ``spec.nodes[]`` or a ``Node`` object).

    ``ip`` and ``pod_cidr`` are None when not given; the control plane assigns them (SPEC 1.2).
    """

    name: str
    ip: IPv4Address | None = None
    pod_cidr: IPv4Network | None = None
    labels: FrozenDict = EMPTY
    taints: tuple[Taint, ...] = ()
    allocatable: Resources = DEFAULT_ALLOCATABLE
    src: Source = NO_SOURCE


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """podnet's Cluster document (SPEC 1.1) with every default of SPEC 1.2 filled in."""

    name: str = "podnet"
    cluster_cidr: IPv4Network = IPv4Network("10.244.0.0/16")
    service_cidr: IPv4Network = IPv4Network("10.96.0.0/12")
    node_port_range: tuple[int, int] = (30000, 32767)
    cluster_domain: str = "cluster.local"
    network_plugin: str = "flannel"
    backend: str = "vxlan"  # vxlan | host-gw
    proxy_mode: str = "iptables"
    masquerade_all: bool = False
    # kube-proxy adds `-m nfacct` counters only where the kernel has nfnetlink_acct
    # (pkg/proxy/iptables/proxier.go); off by default so the rules load on every kernel.
    nfacct: bool = False
    src: Source = NO_SOURCE


# ---------------------------------------------------------------------------------- workloads


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"
    host_port: int | None = None


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str = ""
    ports: tuple[ContainerPort, ...] = ()
    requests: Resources = Resources()
    init: bool = False  # an init container (restartable sidecars count for named ports)


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str | None = None
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str | None = None  # None: every effect

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ToleratesTaint (k8s.io/api core/v1 toleration.go)."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key is not None and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """metav1.LabelSelector. An empty selector selects everything.

    >>> LabelSelector(FrozenDict(app="web")).matches({"app": "web", "tier": "1"})
    True
    """

    match_labels: FrozenDict = EMPTY
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: FrozenDict | dict) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for req in self.match_expressions:
            has = req.key in labels
            if req.operator == "In":
                if not has or labels[req.key] not in req.values:
                    return False
            elif req.operator == "NotIn":
                if has and labels[req.key] in req.values:
                    return False
            elif req.operator == "Exists":
                if not has:
                    return False
            elif req.operator == "DoesNotExist" and has:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """A Pod's spec and labels as a Pod or a workload's template gives them."""

    labels: FrozenDict = EMPTY
    annotations: FrozenDict = EMPTY
    containers: tuple[Container, ...] = ()
    node_name: str | None = None
    node_selector: FrozenDict = EMPTY
    tolerations: tuple[Toleration, ...] = ()
    host_network: bool = False
    hostname: str | None = None
    subdomain: str | None = None
    dns_policy: str = "ClusterFirst"


@dataclass(frozen=True, slots=True)
class PodSpec:
    """A Pod object from the input (or made by a workload controller).

    ``pod_ip`` is a fixed ``status.podIP``; ``ready`` comes from ``status.conditions`` (Ready unless
    said otherwise); ``owner`` is ``(kind, name)`` of the controller that made it.
    """

    meta: Meta
    template: PodTemplate
    pod_ip: IPv4Address | None = None
    ready: bool = True
    phase: str = "Running"
    owner: tuple[str, str] | None = None

    @property
    def terminating(self) -> bool:
        return self.meta.deletion_timestamp is not None


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment, ReplicaSet, StatefulSet or DaemonSet: a template and how many Pods to make."""

    kind: str
    meta: Meta
    template: PodTemplate
    replicas: int = 1  # ignored for DaemonSet
    selector: LabelSelector = LabelSelector()
    service_name: str | None = None  # StatefulSet


# ---------------------------------------------------------------------------------- services


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str | None = None  # None: same as port
    node_port: int | None = None

    @property
    def target(self) -> int | str:
        return self.port if self.target_port is None else self.target_port


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A Service as written. ``cluster_ip`` is None (allocate), ``"None"`` (headless) or an address."""

    meta: Meta
    type: str = "ClusterIP"  # ClusterIP | NodePort | LoadBalancer | ExternalName
    selector: FrozenDict | None = None
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str | None = None
    external_ips: tuple[IPv4Address, ...] = ()
    load_balancer_ips: tuple[IPv4Address, ...] = ()  # status.loadBalancer.ingress[].ip (VIP mode)
    load_balancer_source_ranges: tuple[IPv4Network, ...] = ()
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    session_affinity: str = "None"  # None | ClientIP
    session_affinity_timeout: int = 10800
    health_check_node_port: int | None = None
    external_name: str | None = None
    publish_not_ready_addresses: bool = False
    allocate_load_balancer_node_ports: bool = True


@dataclass(frozen=True, slots=True)
class EndpointPortSpec:
    port: int | None
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One endpoint of an EndpointSlice; conditions as the API defines them (nil ready = true)."""

    addresses: tuple[IPv4Address, ...]
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    target_ref: str | None = None  # "ns/name" of the Pod
    hostname: str | None = None
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSliceSpec:
    meta: Meta
    service_name: str  # label kubernetes.io/service-name
    address_type: str = "IPv4"
    ports: tuple[EndpointPortSpec, ...] = ()
    endpoints: tuple[EndpointSpec, ...] = ()


# ---------------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPv4Network  # as the API server accepts it: host bits allowed, kept masked here
    cidr_text: str  # as written, e.g. "10.244.1.10/4"
    excepts: tuple[IPv4Network, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyPeer:
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: every port
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyRule:
    peers: tuple[PolicyPeer, ...] = ()  # empty: every peer
    ports: tuple[PolicyPort, ...] = ()  # empty: every port


@dataclass(frozen=True, slots=True)
class NetworkPolicySpec:
    meta: Meta
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]  # defaulted: ("Ingress",) [+ "Egress" if egress given]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()


# ---------------------------------------------------------------------------------- all inputs


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: FrozenDict = EMPTY
    src: Source = NO_SOURCE


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything the files said, in input order. ``nodes_given`` tells whether any node was given
    (Cluster ``spec.nodes`` or Node objects), which decides the default nodes of SPEC 1.2."""

    config: ClusterConfig = ClusterConfig()
    nodes: tuple[NodeSpec, ...] = ()
    nodes_given: bool = False
    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[PodSpec, ...] = ()
    workloads: tuple[Workload, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    endpoint_slices: tuple[EndpointSliceSpec, ...] = ()
    policies: tuple[NetworkPolicySpec, ...] = ()
    files: tuple[str, ...] = field(default=())

"""The cluster as the control plane leaves it: placed Pods with addresses, allocated Services,
EndpointSlices, and the facts kube-proxy and the CNI plugin work from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from podnet.model.base import EMPTY, FrozenDict
from podnet.model.spec import (
    ClusterConfig,
    Container,
    Namespace,
    NetworkPolicySpec,
    PodSpec,
    Resources,
    ServiceSpec,
    Source,
    Taint,
)


@dataclass(frozen=True, slots=True)
class Node:
    """A node with everything assigned: index (1-based, input order), InternalIP and podCIDR."""

    name: str
    index: int
    ip: IPv4Address
    pod_cidr: IPv4Network
    labels: FrozenDict = EMPTY
    taints: tuple[Taint, ...] = ()
    allocatable: Resources = Resources()
    src: Source | None = None

    @property
    def gateway(self) -> IPv4Address:
        """cni0's address: the first address of the podCIDR (bridge CNI's calcGatewayIP)."""
        return self.pod_cidr.network_address + 1


@dataclass(frozen=True, slots=True)
class Pod:
    """A placed Pod. ``ip`` is the node's IP for hostNetwork Pods."""

    name: str
    namespace: str
    node: str
    ip: IPv4Address
    labels: FrozenDict
    containers: tuple[Container, ...]
    host_network: bool = False
    ready: bool = True
    terminating: bool = False
    owner: tuple[str, str] | None = None
    hostname: str | None = None
    subdomain: str | None = None
    spec: PodSpec | None = None  # what it was made from (input Pod or controller's Pod)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        """The container port named ``name`` with ``protocol`` (Kubernetes' FindPort), else None.

        Regular containers first, then init (sidecar) containers, as the EndpointSlice controller
        looks them up.
        """
        for init in (False, True):
            for c in self.containers:
                if c.init != init:
                    continue
                for p in c.ports:
                    if p.name == name and p.protocol == protocol:
                        return p.container_port
        return None


@dataclass(frozen=True, slots=True)
class Service:
    """A Service with its ClusterIP (None: headless or ExternalName) and node ports allocated."""

    spec: ServiceSpec
    cluster_ip: IPv4Address | None

    @property
    def name(self) -> str:
        return self.spec.meta.name

    @property
    def namespace(self) -> str:
        return self.spec.meta.namespace or "default"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address of an EndpointSlice, with the conditions kube-proxy reads."""

    ip: IPv4Address
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    pod: str | None = None  # "ns/name" of the Pod behind it, when known
    hostname: str | None = None
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """discovery.k8s.io/v1 EndpointSlice: derived by the controller, or given in the input."""

    name: str
    namespace: str
    service: str
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]
    given: bool = False  # True when it came from the input, used as it is


@dataclass(frozen=True, slots=True)
class Event:
    """One step of the control plane's story: who did what to which object (issue: events)."""

    actor: str
    action: str
    object: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    """How the scheduler judged one node for one Pod (kube-scheduler's filter, then score).

    ``reasons`` are the filter failures in the scheduler's own wording (empty: the node fits);
    the scores are set for nodes that fit: ``least_allocated`` (NodeResourcesFit, 0-100),
    ``spread`` (spreading of the owner's Pods, 0-100) and their sum ``score``.
    """

    node: str
    reasons: tuple[str, ...] = ()
    least_allocated: int | None = None
    spread: int | None = None
    score: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """Where one Pod went and why. ``via`` is ``nodeName`` (bound by its spec), ``podIP`` (the node
    whose podCIDR holds its fixed IP), ``daemonset`` (the DaemonSet controller's node) or
    ``scheduler``. ``verdicts`` holds every node's verdict when the cluster is small enough to keep
    them (see podnet.control.scheduler.EXPLAIN_NODES); ``feasible`` counts the nodes that fit when
    known."""

    pod: str  # "ns/name"
    node: str
    via: str
    score: int | None = None
    feasible: int | None = None
    verdicts: tuple[NodeVerdict, ...] = ()


@dataclass(frozen=True, slots=True)
class Cluster:
    """The control plane's result, ready for the CNI plugin and kube-proxy to build the dataplane."""

    config: ClusterConfig
    nodes: tuple[Node, ...]
    namespaces: tuple[Namespace, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    endpoint_slices: tuple[EndpointSlice, ...]
    policies: tuple[NetworkPolicySpec, ...] = ()
    events: tuple[Event, ...] = ()
    warnings: tuple = field(default=())  # podnet.errors.Problem with severity "warning"
    schedule: tuple[ScheduleDecision, ...] = ()  # one per Pod, in the order Pods were placed

    def node(self, name: str) -> Node | None:
        """The node named ``name``, or None (through an index of the nodes by name: this is
        asked per node built and per Pod traced, among up to 5,000 nodes)."""
        index = _NODE_INDEX
        if index[0] is not self.nodes:
            index[0], index[1] = self.nodes, {n.name: n for n in reversed(self.nodes)}
        return index[1].get(name)


_NODE_INDEX: list = [None, None]
"""(a Cluster's nodes tuple, its nodes by name; the first of a name wins, as a scan would): a
one-entry memo, checked by identity."""

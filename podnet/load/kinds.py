"""Documents to objects: kind and apiVersion checks, Lists, duplicates, and the Inputs.

Each document (or List item) is read by the reader of its kind into a podnet.model.spec object;
the ``Collector`` keeps them in input order and reports objects given twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podnet.errors import did_you_mean
from podnet.load.cluster_doc import read_cluster, read_node
from podnet.load.fields import Ctx, Cursor, Obj, describe
from podnet.load.meta import DNS1123_LABEL, NAMESPACE_LABEL, finish, read_meta
from podnet.load.policies import read_network_policy
from podnet.load.services import read_endpoint_slice, read_service
from podnet.load.workloads import read_pod, read_workload
from podnet.load.yamlpos import Document, YMap, YNode, YScalar
from podnet.model.base import FrozenDict, Pos
from podnet.model.spec import (
    ClusterConfig,
    EndpointSliceSpec,
    Inputs,
    Namespace,
    NetworkPolicySpec,
    NodeSpec,
    PodSpec,
    ServiceSpec,
    Workload,
)

_Object = PodSpec | Workload | ServiceSpec | EndpointSliceSpec | NetworkPolicySpec | Namespace

CLUSTER_API = "podnet/v1"
API_VERSIONS = {
    "Namespace": "v1",
    "Node": "v1",
    "Pod": "v1",
    "Service": "v1",
    "List": "v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")
# Real kinds podnet does not read: skipped without a "did you mean" (Endpoints is not a typo).
OTHER_KINDS = frozenset(
    [
        "ConfigMap",
        "Secret",
        "Endpoints",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Ingress",
        "IngressClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "StorageClass",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CustomResourceDefinition",
        "LimitRange",
        "ResourceQuota",
        "PriorityClass",
        "Event",
        "ControllerRevision",
        "Lease",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "PodTemplate",
    ]
)
_MAX_LIST_DEPTH = 10


@dataclass
class Collector:
    """Objects in input order, with the first position of every (kind, key) seen."""

    ctx: Ctx
    config: ClusterConfig | None = None
    config_pos: Pos | None = None
    cluster_nodes: list[NodeSpec] = field(default_factory=list)
    node_objects: list[NodeSpec] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    pods: list[PodSpec] = field(default_factory=list)
    workloads: list[Workload] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)
    slices: list[EndpointSliceSpec] = field(default_factory=list)
    policies: list[NetworkPolicySpec] = field(default_factory=list)
    seen: dict[tuple[str, str], Pos | None] = field(default_factory=dict)

    def document(self, doc: Document) -> None:
        """Read one document: an object, a List, or nothing (empty)."""
        if doc.root is None or not doc.ok:
            return
        self.item(doc.root, doc.pos, "", None, 0)

    def item(
        self, node: YNode, doc_pos: Pos, prefix: str, defaults: tuple[str, str] | None, depth: int
    ) -> None:
        if not isinstance(node, YMap):
            if isinstance(node, YScalar) and node.value is None and prefix:
                return  # a null List item: nothing
            what = "a List item" if prefix else "a document"
            self.ctx.error(
                f"{what} must be a mapping with apiVersion and kind (found {describe(node)})",
                node.pos,
                prefix,
            )
            return
        obj = Obj(self.ctx, node.pos if prefix else doc_pos, prefix)
        top = Cursor(node, "", obj)
        kind = top.str("kind", required=defaults is None)
        api = top.str("apiVersion", required=defaults is None)
        if defaults is not None:  # items of a typed list (PodList) may omit both
            kind = kind or defaults[0]
            api = api or defaults[1]
        if kind is None or api is None:
            return
        if kind == "List" or (kind.endswith("List") and kind[:-4] in API_VERSIONS):
            self.list(top, kind, api, depth)
            return
        if kind == "Cluster":
            if api == CLUSTER_API:
                self.cluster(top)
            elif api.startswith("podnet"):
                top.error(
                    f"unsupported apiVersion {api!r} for kind Cluster",
                    "apiVersion",
                    f"use apiVersion: {CLUSTER_API}",
                )
            else:
                top.warn(f"kind Cluster of apiVersion {api!r} is not podnet's: skipped", "kind")
            return
        want = API_VERSIONS.get(kind)
        if want is None:
            hint = (
                None
                if kind in OTHER_KINDS
                else did_you_mean(kind, list(API_VERSIONS) + ["Cluster"])
            )
            top.warn(f"kind {kind} is not used by podnet: skipped", "kind", hint)
            return
        if api != want:
            top.error(
                f"unsupported apiVersion {api!r} for kind {kind}",
                "apiVersion",
                f"use apiVersion: {want}",
            )
            return
        self.object(kind, top)

    def list(self, top: Cursor, kind: str, api: str, depth: int) -> None:
        if kind == "List" and api != "v1":
            top.error(
                f"unsupported apiVersion {api!r} for kind List", "apiVersion", "use apiVersion: v1"
            )
            return
        top.known(("apiVersion", "kind", "metadata", "items"))
        if depth >= _MAX_LIST_DEPTH:
            top.error(f"Lists nested more than {_MAX_LIST_DEPTH} deep", "items")
            return
        found = top.seq("items")
        if found is None:
            return
        defaults = None if kind == "List" else (kind[:-4], api)
        path, seq = found
        base = top.obj.full(path)
        for i, item in enumerate(seq.items):
            self.item(item, item.pos, f"{base}[{i}]", defaults, depth + 1)

    def cluster(self, top: Cursor) -> None:
        config, nodes = read_cluster(top)
        if self.config is not None:
            top.error(
                f"a second Cluster document (the first is at {self.config_pos})",
                "kind",
                "give at most one Cluster document",
            )
            return
        self.config, self.config_pos = config, top.obj.pos
        self.cluster_nodes.extend(nodes)

    def object(self, kind: str, top: Cursor) -> None:
        if kind == "Pod":
            self.add(kind, read_pod(top), self.pods, top)
        elif kind in WORKLOAD_KINDS:
            self.add(kind, read_workload(kind, top), self.workloads, top)
        elif kind == "Service":
            self.add(kind, read_service(top), self.services, top)
        elif kind == "EndpointSlice":
            self.add(kind, read_endpoint_slice(top), self.slices, top)
        elif kind == "NetworkPolicy":
            self.add(kind, read_network_policy(top), self.policies, top)
        elif kind == "Namespace":
            self.add(kind, read_namespace(top), self.namespaces, top)
        elif kind == "Node":
            node = read_node(top)
            if node is not None:
                self.node_objects.append(node)

    def add(self, kind: str, value: _Object | None, into: list, top: Cursor) -> None:
        if value is None:
            return
        key = value.name if isinstance(value, Namespace) else value.meta.key
        pos = top.obj.paths.get("metadata.name", top.obj.pos)
        first = self.seen.get((kind, key))
        if (kind, key) in self.seen:
            top.obj.error(
                f"duplicate {kind} {key} (first at {first})",
                pos,
                "metadata.name",
                "each object may be given once; remove or rename one",
            )
            return
        self.seen[kind, key] = pos
        into.append(value)

    def inputs(self, files: list[str]) -> Inputs:
        """The collected objects as Inputs, after the checks that need all of them."""
        nodes: list[NodeSpec] = []
        first: dict[str, NodeSpec] = {}
        for node in self.cluster_nodes + self.node_objects:
            other = first.get(node.name)
            if other is not None:
                self.ctx.error(
                    f"duplicate node '{node.name}' (first at {_name_pos(other)})",
                    _name_pos(node),
                    hint="each node may be given once (Cluster spec.nodes or a Node object)",
                )
                continue
            first[node.name] = node
            nodes.append(node)
        return Inputs(
            config=self.config or ClusterConfig(),
            nodes=tuple(nodes),
            nodes_given=bool(nodes),
            namespaces=tuple(self.namespaces),
            pods=tuple(self.pods),
            workloads=tuple(self.workloads),
            services=tuple(self.services),
            endpoint_slices=tuple(self.slices),
            policies=tuple(self.policies),
            files=tuple(files),
        )


def read_namespace(top: Cursor) -> Namespace | None:
    """A ``Namespace``: its name and labels, plus the automatic kubernetes.io/metadata.name."""
    top.known(("apiVersion", "kind", "metadata", "spec", "status"))
    meta = read_meta(top, DNS1123_LABEL, namespaced=False)
    if meta is None:
        return None
    # The API server sets this label on every Namespace (NamespaceDefaultLabelName, 1.21+).
    labels = FrozenDict({**meta.labels, NAMESPACE_LABEL: meta.name})
    return Namespace(meta.name, labels, finish(meta, top).src)


def _name_pos(node: NodeSpec) -> Pos | None:
    paths = node.src.paths
    return paths.get("name") or paths.get("metadata.name") or node.src.pos

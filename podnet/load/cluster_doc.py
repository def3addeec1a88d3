"""podnet's own ``Cluster`` document (SPEC 1.1) and the nodes it or ``Node`` objects give.

Every key of the Cluster document is optional; unknown keys are errors (later releases may add
keys, so a typo must not pass silently).
"""

from __future__ import annotations

from podnet.load.fields import Cursor, parse_network
from podnet.load.meta import (
    DNS1123_SUBDOMAIN,
    checked_name,
    label_key_error,
    labels,
    read_meta,
    resources,
)
from podnet.load.meta import source as object_source
from podnet.model.base import FrozenDict
from podnet.model.spec import DEFAULT_ALLOCATABLE, ClusterConfig, NodeSpec, Source, Taint

DEFAULTS = ClusterConfig()
BACKENDS = ("vxlan", "host-gw")  # flannel backend "Type" names (flannel pkg/backend)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def read_cluster(top: Cursor) -> tuple[ClusterConfig, list[NodeSpec]]:
    """The ClusterConfig of a ``kind: Cluster`` document (defaults filled in) and its nodes."""
    top.known(("apiVersion", "kind", "metadata", "spec"))
    name = DEFAULTS.name
    md = top.map("metadata")
    if md is not None:
        md.known(("name",), ("labels", "annotations"))
        name = md.str("name", default=name) or name
    spec = top.map("spec")
    if spec is None:
        return ClusterConfig(name=name, src=object_source(top)), []
    spec.known(
        (
            "clusterCIDR",
            "serviceCIDR",
            "serviceNodePortRange",
            "clusterDomain",
            "network",
            "kubeProxy",
            "nodes",
        )
    )
    cluster_cidr = spec.network("clusterCIDR") or DEFAULTS.cluster_cidr
    service_cidr = spec.network("serviceCIDR") or DEFAULTS.service_cidr
    if spec.has("clusterCIDR") and spec.has("serviceCIDR") and cluster_cidr.overlaps(service_cidr):
        spec.error(
            f"serviceCIDR {service_cidr} overlaps clusterCIDR {cluster_cidr}",
            "serviceCIDR",
            "Pod and Service addresses must come from separate ranges",
        )
    port_range = _port_range(spec) or DEFAULTS.node_port_range
    domain = checked_name(spec, "clusterDomain", DNS1123_SUBDOMAIN, required=False)
    plugin, backend = DEFAULTS.network_plugin, DEFAULTS.backend
    net = spec.map("network")
    if net is not None:
        net.known(("plugin", "backend"))
        plugin = net.str("plugin", default=plugin, choices=("flannel",)) or plugin
        backend = net.str("backend", default=backend, choices=BACKENDS) or backend
    mode, masq_all, nfacct = DEFAULTS.proxy_mode, DEFAULTS.masquerade_all, DEFAULTS.nfacct
    proxy = spec.map("kubeProxy")
    if proxy is not None:
        proxy.known(("mode", "masqueradeAll", "nfacct"))
        mode = proxy.str("mode", default=mode, choices=("iptables",)) or mode
        masq_all = proxy.bool("masqueradeAll", default=masq_all)
        nfacct = proxy.bool("nfacct", default=nfacct)
    nodes = read_cluster_nodes(spec)
    config = ClusterConfig(
        name=name,
        cluster_cidr=cluster_cidr,
        service_cidr=service_cidr,
        node_port_range=port_range,
        cluster_domain=domain or DEFAULTS.cluster_domain,
        network_plugin=plugin,
        backend=backend,
        proxy_mode=mode,
        masquerade_all=masq_all,
        nfacct=nfacct,
        src=object_source(top),
    )
    return config, nodes


def read_cluster_nodes(spec: Cursor) -> list[NodeSpec]:
    """The nodes of a Cluster document's ``spec.nodes``."""
    nodes = []
    for item in spec.maps("nodes"):
        # Each entry's value positions are recorded into a dict of their own and merged back:
        # filtering all positions of the document per entry would be quadratic in the nodes.
        shared, item.obj.paths = item.obj.paths, {}
        try:
            node = _read_node(item)
        finally:
            own, item.obj.paths = item.obj.paths, shared
            shared.update(own)
        if node is not None:
            name, ip, pod_cidr, lab, taints, allocatable = node
            src = Source(item.pos, _paths_under(item, own))
            nodes.append(NodeSpec(name, ip, pod_cidr, lab, taints, allocatable, src))
    return nodes


def _read_node(item: Cursor) -> tuple | None:
    """The fields of one ``spec.nodes[i]`` entry (None without a valid name)."""
    item.known(("name", "ip", "podCIDR", "labels", "taints", "allocatable"))
    name = checked_name(item, "name", DNS1123_SUBDOMAIN)
    ip = item.ipv4("ip")
    pod_cidr = item.network("podCIDR")
    lab = labels(item, "labels")
    taints = read_taints(item, "taints")
    alloc = item.map("allocatable")
    if alloc is not None:
        alloc.known(("cpu", "memory", "pods"))
    allocatable = resources(alloc, DEFAULT_ALLOCATABLE) if alloc else DEFAULT_ALLOCATABLE
    return None if name is None else (name, ip, pod_cidr, lab, taints, allocatable)


def _paths_under(item: Cursor, paths: dict) -> FrozenDict:
    """Positions of one ``spec.nodes[i]`` entry, relative to that entry."""
    cut = len(item.path) + 1
    return FrozenDict((p[cut:], pos) for p, pos in paths.items() if p.startswith(item.path + "."))


def _port_range(spec: Cursor) -> tuple[int, int] | None:
    # The forms of kube-apiserver --service-node-port-range (k8s.io/apimachinery
    # pkg/util/net/port_range.go): "low-high", "base+offset" or one port.
    text = spec.str("serviceNodePortRange")
    if text is None:
        return None
    body = text.strip()
    try:
        if "-" in body:
            lo_s, hi_s = body.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
        elif "+" in body:
            lo_s, off_s = body.split("+", 1)
            lo = int(lo_s)
            hi = lo + int(off_s)
        else:
            lo = hi = int(body)
    except ValueError:
        spec.error(
            f"invalid port range {text!r} (expected LOW-HIGH, e.g. 30000-32767)",
            "serviceNodePortRange",
        )
        return None
    if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
        spec.error(
            f"invalid port range {text!r}: ports must be within 1..65535", "serviceNodePortRange"
        )
        return None
    if hi < lo:
        spec.error(
            f"invalid port range {text!r}: the high port is below the low port",
            "serviceNodePortRange",
            f"did you mean '{hi}-{lo}'?",
        )
        return None
    return lo, hi


def read_taints(cur: Cursor, key: str) -> tuple[Taint, ...]:
    """``taints`` as in Node.spec.taints."""
    out = []
    for t in cur.maps(key):
        t.known(("key", "value", "effect"), ("timeAdded",))
        k = t.str("key", required=True)
        if k is not None and label_key_error(k):
            t.error(label_key_error(k) or "", "key")
        value = t.str("value", default="") or ""
        effect = t.str("effect", required=True, choices=TAINT_EFFECTS)
        if k is not None and effect is not None:
            out.append(Taint(k, value, effect))
    return tuple(out)


_NODE_SPEC_IGNORED = (
    "podCIDRs",
    "unschedulable",
    "providerID",
    "externalID",
    "configSource",
    "doNotUseExternalID",
)


def read_node(top: Cursor) -> NodeSpec | None:
    """A ``Node`` object: name, labels, podCIDR, taints, InternalIP, allocatable."""
    top.known(("apiVersion", "kind", "metadata", "spec", "status"))
    meta = read_meta(top, DNS1123_SUBDOMAIN, namespaced=False)
    pod_cidr = None
    taints: tuple[Taint, ...] = ()
    spec = top.map("spec")
    if spec is not None:
        spec.known(("podCIDR", "taints"), _NODE_SPEC_IGNORED)
        pod_cidr = spec.network("podCIDR")
        if pod_cidr is None and not spec.has("podCIDR"):
            first = next(iter(spec.strs("podCIDRs")), None)
            if first is not None and ":" not in first[0]:
                pod_cidr = parse_network(first[0], top.obj, first[1], first[2], strict=True)
        taints = read_taints(spec, "taints")
    ip = None
    allocatable = DEFAULT_ALLOCATABLE
    status = top.map("status")
    if status is not None:  # status is what kubectl prints; only two parts of it matter here
        for addr in status.maps("addresses"):
            if addr.str("type") == "InternalIP" and ip is None:
                ip = addr.ipv4("address", required=True)
        alloc = status.map("allocatable")
        if alloc is not None:
            allocatable = resources(alloc, DEFAULT_ALLOCATABLE)
    if meta is None:
        return None
    return NodeSpec(meta.name, ip, pod_cidr, meta.labels, taints, allocatable, object_source(top))

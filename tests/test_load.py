"""podnet.load: reading files into Inputs (the success paths)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from podnet.load import load_inputs
from podnet.load.quantity import parse_quantity
from podnet.load.yamlpos import parse_yaml, plain
from podnet.model.base import Pos
from podnet.model.spec import DEFAULT_ALLOCATABLE, LabelSelector, Resources

DATA = Path(__file__).parent / "data" / "load"


def write(tmp_path: Path, text: str, name: str = "in.yaml") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def load_text(tmp_path: Path, text: str):
    return load_inputs([write(tmp_path, text)])


# ---------------------------------------------------------------------------------- yaml


def test_positions_of_nested_values(tmp_path):
    f = write(
        tmp_path,
        """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: c
    ports:
    - containerPort: 80
    - {containerPort: 8080, name: alt}
""",
    )
    inputs, _ = load_inputs([f])
    src = inputs.pods[0].meta.src
    assert src.pos == Pos(f, 1, 1)
    assert src.paths["metadata.name"] == Pos(f, 4, 9)
    assert src.paths["spec.containers[0].ports[1].containerPort"] == Pos(f, 10, 23)
    assert src.paths["spec.containers[0].ports[1].name"] == Pos(f, 10, 35)
    # Source.at falls back to the nearest written parent
    assert src.at("spec.containers[0].ports[1].protocol") == Pos(f, 10, 7)


def test_parse_keeps_timestamps_as_text_and_resolves_yaml11_scalars():
    docs, problems = parse_yaml("t: 2024-01-01T00:00:00Z\nb: yes\nn: ~\ni: 0x10\nf: 1.5\n", "x")
    assert problems == []
    assert plain(docs[0].root) == {
        "t": "2024-01-01T00:00:00Z",
        "b": True,
        "n": None,
        "i": 16,
        "f": 1.5,
    }


def test_merge_keys_and_aliases_share_values():
    docs, problems = parse_yaml("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\nc: *a\n", "x")
    assert problems == []
    assert plain(docs[0].root) == {
        "a": {"x": 1, "y": 2},
        "b": {"x": 1, "y": 3},
        "c": {"x": 1, "y": 2},
    }


def test_multi_document_file_and_empty_documents(tmp_path):
    inputs, warnings = load_text(
        tmp_path,
        """\
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
---
# only a comment
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop}
spec: {containers: [{name: c}]}
""",
    )
    assert [n.name for n in inputs.namespaces] == ["shop"]
    assert inputs.namespaces[0].labels["kubernetes.io/metadata.name"] == "shop"
    assert [p.meta.key for p in inputs.pods] == ["shop/a"]
    assert warnings == ()


def test_list_and_nested_list(tmp_path):
    inputs, _ = load_text(
        tmp_path,
        """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: c}]}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: b}
    spec: {containers: [{name: c}]}
""",
    )
    assert [p.meta.name for p in inputs.pods] == ["a", "b"]
    # the Source of a List item is the item itself, paths relative to it
    assert inputs.pods[1].meta.src.paths["metadata.name"].line == 13


def test_typed_list_items_may_omit_kind(tmp_path):
    inputs, _ = load_text(
        tmp_path,
        """\
apiVersion: v1
kind: PodList
items:
- metadata: {name: a}
  spec: {containers: [{name: c}]}
""",
    )
    assert [p.meta.name for p in inputs.pods] == ["a"]


def test_directory_order_and_recursion(tmp_path):
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}}}\nspec: {{containers: [{{name: c}}]}}\n"
    write(tmp_path, pod.format("b"), "d/b.yaml")
    write(tmp_path, pod.format("a"), "d/a.yml")
    write(tmp_path, pod.format("z"), "d/sub/c.yaml")
    write(tmp_path, "not yaml at all: [", "d/notes.txt")
    flat, _ = load_inputs([str(tmp_path / "d")])
    assert [p.meta.name for p in flat.pods] == ["a", "b"]
    deep, _ = load_inputs([str(tmp_path / "d")], recursive=True)
    assert [p.meta.name for p in deep.pods] == ["a", "b", "z"]
    assert [Path(f).name for f in deep.files] == ["a.yml", "b.yaml", "c.yaml"]


def test_file_named_twice_is_read_once(tmp_path):
    f = write(tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    inputs, _ = load_inputs([f, str(tmp_path)])
    assert len(inputs.namespaces) == 1 and inputs.files == (f,)


def test_unknown_kind_is_one_warning(tmp_path):
    f = write(
        tmp_path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: y}\n",
    )
    inputs, warnings = load_inputs([f])
    assert [w.render() for w in warnings] == [
        f"{f}:2:7: warning: kind: kind ConfigMap is not used by podnet: skipped",
        f"{f}:7:7: warning: kind: kind Secret is not used by podnet: skipped",
    ]
    assert inputs.pods == ()


# ---------------------------------------------------------------------------------- cluster


def test_defaults_without_cluster_document(tmp_path):
    inputs, _ = load_text(tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    assert inputs.config.cluster_cidr == IPv4Network("10.244.0.0/16")
    assert inputs.config.service_cidr == IPv4Network("10.96.0.0/12")
    assert inputs.config.node_port_range == (30000, 32767)
    assert inputs.nodes == () and inputs.nodes_given is False


def test_cluster_document_and_node_objects(tmp_path):
    inputs, _ = load_text(
        tmp_path,
        """\
apiVersion: v1
kind: Node
metadata: {name: worker-9, labels: {zone: b}}
spec:
  podCIDR: 10.10.9.0/24
  taints: [{key: dedicated, value: db, effect: NoSchedule}]
status:
  addresses: [{type: Hostname, address: worker-9}, {type: InternalIP, address: 192.168.5.9}]
  allocatable: {cpu: 1500m, memory: 2Gi, pods: "20"}
  capacity: {cpu: "2"}
---
apiVersion: podnet/v1
kind: Cluster
metadata: {name: lab}
spec:
  clusterCIDR: 10.10.0.0/16
  serviceCIDR: 10.20.0.0/16
  serviceNodePortRange: 31000-31999
  clusterDomain: lab.local
  network: {plugin: flannel, backend: host-gw}
  kubeProxy: {mode: iptables, masqueradeAll: true}
  nodes:
  - name: node-a
    ip: 192.168.5.1
    podCIDR: 10.10.1.0/24
    allocatable: {cpu: "8", memory: 16G}
""",
    )
    c = inputs.config
    assert (c.name, c.backend, c.masquerade_all, c.cluster_domain) == (
        "lab",
        "host-gw",
        True,
        "lab.local",
    )
    assert c.node_port_range == (31000, 31999)
    assert [n.name for n in inputs.nodes] == ["node-a", "worker-9"]  # Cluster nodes first
    assert inputs.nodes_given
    a, w = inputs.nodes
    assert a.allocatable == Resources(cpu_m=8000, memory=16 * 10**9, pods=110)
    assert w.ip == IPv4Address("192.168.5.9") and w.pod_cidr == IPv4Network("10.10.9.0/24")
    assert w.allocatable == Resources(cpu_m=1500, memory=2 * 2**30, pods=20)
    assert w.taints[0].effect == "NoSchedule" and w.labels["zone"] == "b"
    assert a.src.paths["podCIDR"].line == 25


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("4", 4),
        ("8Gi", 8 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("1.5k", 1500),
        ("2e3", 2000),
        (3, 3),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


# ---------------------------------------------------------------------------------- pods & workloads


def test_kubectl_output_loads_cleanly():
    inputs, warnings = load_inputs([str(DATA / "kubectl" / "pod-and-service.yaml")])
    assert warnings == ()
    pod = inputs.pods[0]
    assert pod.meta.key == "shop/web-7d9f8b6c5-x2k4q"
    assert pod.ready is False  # condition Ready "False"
    assert pod.pod_ip == IPv4Address("10.244.2.7")
    assert pod.template.node_name == "node-2"
    c = pod.template.containers[0]
    assert (c.ports[0].name, c.ports[0].container_port, c.requests) == (
        "http",
        8080,
        Resources(cpu_m=250, memory=64 * 2**20),
    )
    assert pod.template.tolerations[0].operator == "Exists"
    svc = inputs.services[0]
    assert svc.cluster_ip == "10.96.120.15" and svc.type == "NodePort"
    assert [(p.name, p.target, p.node_port) for p in svc.ports] == [
        ("http", "http", 30080),
        ("metrics", 9090, 30090),
    ]


def test_pod_defaults_and_readiness(tmp_path):
    inputs, _ = load_text(
        tmp_path,
        """\
apiVersion: v1
kind: Pod
metadata: {name: p, deletionTimestamp: 2024-01-01T00:00:00Z}
spec:
  hostNetwork: true
  initContainers: [{name: init, resources: {limits: {cpu: "1"}}}]
  containers: [{name: c, ports: [{containerPort: 53, protocol: UDP}]}]
""",
    )
    pod = inputs.pods[0]
    assert pod.meta.namespace == "default" and pod.ready is True and pod.phase == "Running"
    assert pod.terminating and pod.meta.deletion_timestamp == "2024-01-01T00:00:00Z"
    assert pod.template.host_network
    names = [(c.name, c.init) for c in pod.template.containers]
    assert names == [("c", False), ("init", True)]
    assert pod.template.containers[1].requests.cpu_m == 1000  # request defaults to the limit


def test_workloads(tmp_path):
    inputs, _ = load_text(
        tmp_path,
        """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 0
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c}]}
""",
    )
    web, db, agent = inputs.workloads
    assert (web.kind, web.replicas, web.template.labels["app"]) == ("Deployment", 1, "web")
    assert web.selector.match_expressions[0].operator == "NotIn"
    assert (db.kind, db.replicas, db.service_name) == ("StatefulSet", 0, "db")
    assert agent.kind == "DaemonSet"


# ---------------------------------------------------------------------------------- services


def test_service_fields_and_defaults(tmp_path):
    inputs, warnings = load_text(
        tmp_path,
        """\
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Global
  selector: {app: web}
  ports: [{port: 80}]
  externalIPs: [203.0.113.9]
  loadBalancerSourceRanges: [" 10.1.2.3/8 "]
  sessionAffinity: ClientIP
status:
  loadBalancer:
    ingress: [{ip: 198.51.100.1}, {ip: 198.51.100.2, ipMode: Proxy}]
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: v1
kind: Service
metadata: {name: ips}
spec: {clusterIPs: [10.96.0.20], ports: [{port: 53, protocol: UDP, targetPort: 5353}]}
""",
    )
    lb, headless, ips = inputs.services
    assert lb.external_traffic_policy == "Cluster"  # legacy "Global"
    assert lb.ports[0].protocol == "TCP" and lb.ports[0].target == 80
    assert lb.load_balancer_ips == (IPv4Address("198.51.100.1"),)
    assert lb.load_balancer_source_ranges == (IPv4Network("10.0.0.0/8"),)
    assert lb.session_affinity == "ClientIP" and lb.session_affinity_timeout == 10800
    assert lb.external_ips == (IPv4Address("203.0.113.9"),)
    assert headless.cluster_ip == "None" and headless.ports == ()
    assert headless.selector == {"app": "db"}
    assert ips.cluster_ip == "10.96.0.20" and ips.selector is None
    assert warnings == ()


def test_endpoint_slice_conditions(tmp_path):
    inputs, warnings = load_text(
        tmp_path,
        """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.244.1.5]
  nodeName: node-1
  targetRef: {kind: Pod, name: web-1}
- addresses: [10.244.2.5]
  conditions: {ready: false}
- addresses: [10.244.3.5]
  conditions: {ready: false, serving: true, terminating: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-v6, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
endpoints: [{addresses: ["fd00::1"]}]
""",
    )
    (eps,) = inputs.endpoint_slices
    assert eps.service_name == "web" and eps.ports[0].protocol == "TCP"
    a, b, c = eps.endpoints
    assert (a.ready, a.serving, a.terminating, a.target_ref) == (True, True, False, "shop/web-1")
    assert (b.ready, b.serving, b.terminating) == (False, False, False)
    assert (c.ready, c.serving, c.terminating) == (False, True, True)
    assert len(warnings) == 1 and "addressType IPv6" in warnings[0].message


# ---------------------------------------------------------------------------------- policies


def test_policy_types_defaulting(tmp_path):
    base = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {}}}\nspec: {}\n"
    )
    inputs, _ = load_text(
        tmp_path,
        "---\n".join(
            [
                base.format("a", "{podSelector: {}}"),
                base.format("b", "{podSelector: {}, egress: [{}]}"),
                base.format("c", "{podSelector: {}, egress: []}"),
                base.format("d", "{podSelector: {}, policyTypes: [Egress]}"),
            ]
        ),
    )
    types = [p.policy_types for p in inputs.policies]
    # kubernetes pkg/apis/networking/v1/defaults.go: Egress only when len(egress) != 0
    assert types == [("Ingress",), ("Ingress", "Egress"), ("Ingress",), ("Egress",)]


def test_policy_peers_ports_and_ipblock_host_bits(tmp_path):
    inputs, warnings = load_text(
        tmp_path,
        """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: null}
  ingress:
  - from:
    - ipBlock: {cidr: 10.244.1.10/4, except: [10.244.1.11/32]}
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchLabels: {app: b}}
    ports:
    - port: http
    - {protocol: UDP, port: 1000, endPort: 2000}
  - from: [{ipBlock: {cidr: "::/0"}}]
""",
    )
    pol = inputs.policies[0]
    assert pol.pod_selector == LabelSelector() and pol.pod_selector.empty
    assert len(pol.ingress) == 1  # the IPv6-only rule matches no IPv4 packet: dropped
    rule = pol.ingress[0]
    block = rule.peers[0].ip_block
    assert block.cidr == IPv4Network("0.0.0.0/4") and block.cidr_text == "10.244.1.10/4"
    assert block.excepts == (IPv4Network("10.244.1.11/32"),)
    assert rule.peers[1].namespace_selector.match_labels == {"team": "a"}
    assert [(p.protocol, p.port, p.end_port) for p in rule.ports] == [
        ("TCP", "http", None),
        ("UDP", 1000, 2000),
    ]
    assert len(warnings) == 1 and warnings[0].path == "spec.ingress[1].from[0].ipBlock.cidr"


# ---------------------------------------------------------------------------------- conformance


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (DATA / "conformance").glob("*.yaml")), ids=str
)
def test_conformance_manifests_load(name):
    inputs, warnings = load_inputs([str(DATA / "conformance" / name)])
    assert warnings == ()
    assert inputs.pods and inputs.namespaces


def test_conformance_details():
    inputs, _ = load_inputs(
        [str(DATA / "conformance" / "kube-proxy-terminating-etp-local-remote-terminating.yaml")]
    )
    assert inputs.config.cluster_cidr == IPv4Network("10.0.0.0/8")
    assert [n.name for n in inputs.nodes] == ["node-1", "node-2"]
    svc = inputs.services[0]
    assert (svc.external_traffic_policy, svc.health_check_node_port) == ("Local", 30000)
    assert any(p.terminating for p in inputs.pods)
    inputs, _ = load_inputs(
        [str(DATA / "conformance" / "k8s-netpol-ip-in-cidr-and-except-phase1.yaml")]
    )
    assert any(
        peer.ip_block is not None and peer.ip_block.cidr_text.endswith("/4")
        for pol in inputs.policies
        for rule in pol.egress + pol.ingress
        for peer in rule.peers
    )


def test_default_allocatable_when_not_given(tmp_path):
    inputs, _ = load_text(tmp_path, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n")
    assert inputs.nodes[0].allocatable == DEFAULT_ALLOCATABLE and inputs.nodes[0].ip is None

"""podnet.control.plan: nodes, namespaces, workloads, IPAM (inputs built from model dataclasses)."""

from __future__ import annotations

import re
from functools import partial
from ipaddress import IPv4Address, IPv4Network

import pytest

from podnet.control import plan as _plan
from podnet.errors import InputError
from podnet.model.base import FrozenDict, Pos
from podnet.model.spec import (
    ClusterConfig,
    Container,
    Inputs,
    LabelSelector,
    Meta,
    Namespace,
    NodeSpec,
    PodSpec,
    PodTemplate,
    Source,
    Taint,
    Toleration,
    Workload,
)

# These tests look at the user's objects alone: no kubeadm addons (podnet.control.addons).
plan = partial(_plan, cluster_dns=False)

APP = FrozenDict(app="web")


def pod(name, ns="default", node=None, ip=None, labels=APP, host_network=False, **kw):
    t = PodTemplate(labels=labels, containers=(Container("c"),), node_name=node,
                    host_network=host_network)  # fmt: skip
    return PodSpec(Meta(name, ns, labels), t, pod_ip=IPv4Address(ip) if ip else None, **kw)


def workload(kind, name, replicas=3, labels=APP, ns="default", **kw):
    t = PodTemplate(labels=labels, containers=(Container("c"),), **kw)
    return Workload(kind, Meta(name, ns), t, replicas, LabelSelector(labels),
                    service_name="db" if kind == "StatefulSet" else None)  # fmt: skip


def errors_of(inputs):
    with pytest.raises(InputError) as info:
        plan(inputs)
    return [p.render() for p in info.value.problems]


# ------------------------------------------------------------------------------------ nodes


def test_default_nodes():
    c = plan(Inputs())
    assert [(n.name, n.index, str(n.ip), str(n.pod_cidr)) for n in c.nodes] == [
        ("node-1", 1, "192.168.0.11", "10.244.1.0/24"),
        ("node-2", 2, "192.168.0.12", "10.244.2.0/24"),
        ("node-3", 3, "192.168.0.13", "10.244.3.0/24"),
    ]
    assert c.nodes[0].labels["kubernetes.io/hostname"] == "node-1"
    assert c.nodes[0].labels["kubernetes.io/os"] == "linux"


def test_node_name_adds_nodes_in_order_of_first_mention():
    inputs = Inputs(
        pods=(pod("a", node="edge-b"), pod("b", node="edge-a"), pod("c", node="edge-b"))
    )
    c = plan(inputs)
    assert [n.name for n in c.nodes] == ["node-1", "node-2", "node-3", "edge-b", "edge-a"]
    assert str(c.nodes[3].ip) == "192.168.0.14" and str(c.nodes[4].pod_cidr) == "10.244.5.0/24"
    assert {p.name: p.node for p in c.pods} == {"a": "edge-b", "b": "edge-a", "c": "edge-b"}


def test_given_nodes_fill_missing_addresses_around_given_ones():
    nodes = (
        NodeSpec("a", pod_cidr=IPv4Network("10.244.1.0/24"), ip=IPv4Address("192.168.0.12")),
        NodeSpec("b"),
        NodeSpec("c"),
    )
    c = plan(Inputs(nodes=nodes, nodes_given=True))
    assert [(str(n.ip), str(n.pod_cidr)) for n in c.nodes] == [
        ("192.168.0.12", "10.244.1.0/24"),
        ("192.168.0.11", "10.244.2.0/24"),
        ("192.168.0.13", "10.244.3.0/24"),
    ]


def test_pod_bound_to_unknown_node_with_given_nodes():
    inputs = Inputs(
        nodes=(NodeSpec("worker-1"),), nodes_given=True, pods=(pod("a", node="worker1"),)
    )
    (msg,) = errors_of(inputs)
    assert "Pod default/a bound to unknown node 'worker1'" in msg
    assert "hint: did you mean 'worker-1'?" in msg


SRC = Source(Pos("c.yaml", 7, 14), FrozenDict({"spec.nodes[1].podCIDR": Pos("c.yaml", 12, 14)}))


def test_pod_cidr_outside_cluster_cidr():
    nodes = (NodeSpec("a"), NodeSpec("b", pod_cidr=IPv4Network("10.245.1.0/24"), src=SRC))
    msgs = errors_of(Inputs(nodes=nodes, nodes_given=True))
    assert msgs == [
        "c.yaml:12:14: error: spec.nodes[1].podCIDR: node b: podCIDR 10.245.1.0/24 is not inside"
        " clusterCIDR 10.244.0.0/16 (found 10.245.1.0/24, expected a subnet of 10.244.0.0/16)\n"
        "  hint: flannel routes only the clusterCIDR between nodes"
    ]


def test_overlapping_pod_cidrs_name_both_nodes():
    nodes = (
        NodeSpec("a", pod_cidr=IPv4Network("10.244.0.0/23")),
        NodeSpec("b", pod_cidr=IPv4Network("10.244.1.0/24")),
    )
    (msg,) = errors_of(Inputs(nodes=nodes, nodes_given=True))
    assert msg == (
        "error: spec.podCIDR: node b: podCIDR 10.244.1.0/24 overlaps podCIDR 10.244.0.0/23 of"
        " node a (found overlapping ranges, expected one range per node)"
    )


def test_duplicate_node_ip_and_service_overlaps():
    ip = IPv4Address("192.168.0.20")
    nodes = (NodeSpec("a", ip=ip), NodeSpec("b", ip=ip, pod_cidr=IPv4Network("10.96.1.0/24")))
    cfg = ClusterConfig(cluster_cidr=IPv4Network("10.0.0.0/8"))
    msgs = errors_of(Inputs(config=cfg, nodes=nodes, nodes_given=True))
    assert any("serviceCIDR 10.96.0.0/12 overlaps clusterCIDR 10.0.0.0/8" in m for m in msgs)
    assert any("InternalIP 192.168.0.20 is already the address of node a" in m for m in msgs)
    assert any("podCIDR 10.96.1.0/24 overlaps serviceCIDR 10.96.0.0/12" in m for m in msgs)


# ------------------------------------------------------------------------------- namespaces


def test_namespaces_named_and_labelled():
    inputs = Inputs(
        namespaces=(Namespace("x", FrozenDict(team="a")),),
        pods=(pod("a", ns="y"), pod("b", ns="x")),
    )
    c = plan(inputs)
    assert [(n.name, dict(n.labels)) for n in c.namespaces] == [
        ("x", {"team": "a", "kubernetes.io/metadata.name": "x"}),
        ("y", {"kubernetes.io/metadata.name": "y"}),
    ]


# -------------------------------------------------------------------------------- workloads

DEPLOY_POD = re.compile(
    r"^web-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$"
)


def test_deployment_names_labels_owner_and_stability():
    inputs = Inputs(workloads=(workload("Deployment", "web"),))
    c1, c2 = plan(inputs), plan(inputs)
    names = [p.name for p in c1.pods]
    assert names == [p.name for p in c2.pods]
    assert len(set(names)) == 3 and all(DEPLOY_POD.match(n) for n in names)
    h = names[0].split("-")[1]
    assert set(h) <= set("456789bcdf")  # SafeEncodeString of decimal digits
    assert all(p.name.startswith(f"web-{h}-") for p in c1.pods)
    assert all(p.labels["pod-template-hash"] == h for p in c1.pods)
    assert all(p.owner == ("ReplicaSet", f"web-{h}") for p in c1.pods)
    events = [(e.actor, e.action, e.object) for e in c1.events]
    assert ("deployment-controller", "create", f"ReplicaSet/default/web-{h}") in events


def test_template_change_changes_hash():
    a = plan(Inputs(workloads=(workload("Deployment", "web", replicas=1),))).pods[0].name
    b = plan(Inputs(workloads=(workload("Deployment", "web", replicas=1, node_selector=FrozenDict(x="y")),),
                    nodes=(NodeSpec("n", labels=FrozenDict(x="y")),), nodes_given=True)).pods[0].name  # fmt: skip
    assert a.split("-")[1] != b.split("-")[1]


def test_replicaset_and_statefulset_names():
    c = plan(Inputs(workloads=(workload("ReplicaSet", "rs", 2), workload("StatefulSet", "db", 3))))
    rs = [p for p in c.pods if p.owner == ("ReplicaSet", "rs")]
    assert len(rs) == 2 and all(
        re.match(r"^rs-[bcdfghjklmnpqrstvwxz2456789]{5}$", p.name) for p in rs
    )
    sts = [p for p in c.pods if p.owner == ("StatefulSet", "db")]
    assert [p.name for p in sts] == ["db-0", "db-1", "db-2"]
    assert [(p.hostname, p.subdomain) for p in sts] == [
        ("db-0", "db"),
        ("db-1", "db"),
        ("db-2", "db"),
    ]
    assert sts[1].labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert sts[1].labels["controller-revision-hash"].startswith("db-")


def test_daemonset_one_pod_per_node_honouring_taints():
    nodes = (
        NodeSpec("cp", taints=(Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),)),
        NodeSpec("w1"),
        NodeSpec("w2", taints=(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),)),
    )
    c = plan(Inputs(nodes=nodes, nodes_given=True, workloads=(workload("DaemonSet", "agent"),)))
    # the control-plane taint is not tolerated; unschedulable is (AddOrUpdateDaemonPodTolerations)
    assert sorted(p.node for p in c.pods) == ["w1", "w2"]
    assert all(p.name.startswith("agent-") and len(p.name) == 11 for p in c.pods)
    tolerant = workload("DaemonSet", "agent", tolerations=(Toleration(operator="Exists"),))
    c2 = plan(Inputs(nodes=nodes, nodes_given=True, workloads=(tolerant,)))
    assert sorted(p.node for p in c2.pods) == ["cp", "w1", "w2"]


def test_selector_not_matching_template_is_an_error():
    w = Workload("Deployment", Meta("web", "default"), PodTemplate(labels=APP), 1,
                 LabelSelector(FrozenDict(app="other")))  # fmt: skip
    (msg,) = errors_of(Inputs(workloads=(w,)))
    assert "spec.template.metadata.labels: `selector` does not match template `labels`" in msg


# ------------------------------------------------------------------------------------- IPAM


def test_ipam_two_first_and_fixed_addresses_skipped():
    pods = (
        pod("fixed", node="node-1", ip="10.244.1.3"),
        pod("a", node="node-1"),
        pod("b", node="node-1"),
        pod("h", node="node-1", host_network=True),
        pod("c", node="node-1"),
    )
    c = plan(Inputs(pods=pods))
    assert {p.name: str(p.ip) for p in c.pods} == {
        "fixed": "10.244.1.3",
        "a": "10.244.1.2",
        "b": "10.244.1.4",
        "h": "192.168.0.11",
        "c": "10.244.1.5",
    }


def test_fixed_ip_without_node_goes_to_the_node_holding_it():
    c = plan(Inputs(pods=(pod("a", ip="10.244.3.9"),)))
    assert c.pods[0].node == "node-3"
    assert c.schedule[0].via == "podIP"


def test_fixed_ip_errors():
    pods = (
        pod("out", node="node-1", ip="10.244.2.7"),
        pod("gw", node="node-1", ip="10.244.1.1"),
        pod("d1", node="node-2", ip="10.244.2.9"),
        pod("d2", node="node-2", ip="10.244.2.9"),
        pod("nowhere", ip="10.9.9.9"),
    )
    msgs = errors_of(Inputs(pods=pods))
    assert len(msgs) == 4
    assert "Pod default/nowhere: no node's podCIDR holds its podIP 10.9.9.9" in msgs[0]
    assert (
        "Pod default/out: podIP 10.244.2.7 is outside podCIDR 10.244.1.0/24 of its node node-1"
        " (found 10.244.2.7, expected an address in host-local range 10.244.1.2-10.244.1.254)"
    ) in msgs[1]
    assert "podIP 10.244.1.1 is the cni0 gateway of node node-1" in msgs[2]
    assert "Pod default/d2: podIP 10.244.2.9 is already the address of Pod default/d1" in msgs[3]


def test_ipam_exhausted():
    nodes = (NodeSpec("n", pod_cidr=IPv4Network("10.244.1.0/29")),)
    pods = tuple(pod(f"p{i}", node="n") for i in range(6))
    (msg,) = errors_of(Inputs(nodes=nodes, nodes_given=True, pods=pods))
    assert "Pod default/p5: no free address left on node n" in msg
    assert "host-local range 10.244.1.2-10.244.1.6 of podCIDR 10.244.1.0/29 is exhausted" in msg


def test_events_tell_the_story():
    c = plan(Inputs(workloads=(workload("Deployment", "web", replicas=1),)))
    actors = [e.actor for e in c.events]
    for actor in ("kubelet", "api-server", "deployment-controller", "replicaset-controller",
                  "scheduler", "host-local"):  # fmt: skip
        assert actor in actors
    pod_events = [e.actor for e in c.events if e.object == f"Pod/default/{c.pods[0].name}"]
    assert pod_events == ["replicaset-controller", "scheduler", "host-local"]

"""Small clusters for the dataplane tests, made directly as control-plane results."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from podnet.model.base import FrozenDict
from podnet.model.cluster import Cluster, Node, Pod
from podnet.model.spec import ClusterConfig, Container


def make_cluster(
    pods_per_node: tuple[int, ...] = (2, 1, 0),
    backend: str = "vxlan",
    host_network_on: tuple[int, ...] = (),
) -> Cluster:
    """Nodes node-1..node-N (192.168.0.(10+i), 10.244.i.0/24) with ``pods_per_node[i-1]`` Pods
    ``default/p<i>-<j>`` at 10.244.i.(2+j), plus a hostNetwork Pod ``kube-system/h<i>`` on each
    node listed in ``host_network_on``."""
    nodes = tuple(
        Node(f"node-{i}", i, IPv4Address(f"192.168.0.{10 + i}"), IPv4Network(f"10.244.{i}.0/24"))
        for i in range(1, len(pods_per_node) + 1)
    )
    pods = [
        Pod(
            f"p{i}-{j}",
            "default",
            f"node-{i}",
            IPv4Address(f"10.244.{i}.{2 + j}"),
            FrozenDict(),
            (Container("c"),),
        )
        for i, count in enumerate(pods_per_node, start=1)
        for j in range(count)
    ]
    pods += [
        Pod(
            f"h{i}",
            "kube-system",
            f"node-{i}",
            IPv4Address(f"192.168.0.{10 + i}"),
            FrozenDict(),
            (Container("c"),),
            host_network=True,
        )
        for i in host_network_on
    ]
    return Cluster(ClusterConfig(backend=backend), nodes, (), tuple(pods), (), ())

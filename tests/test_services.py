"""Every Service shape of topologies/services.yaml, traced from a Pod, from a node and from
outside, with what kube-proxy does to each (SPEC sections 2-3; dataplane.md section 1)."""

from ipaddress import IPv4Address
from pathlib import Path

import pytest

import podnet

ROOT = Path(__file__).resolve().parent.parent
WEB = {"shop/web-1", "shop/web-2"}


@pytest.fixture(scope="module")
def net():
    return podnet.load(str(ROOT / "topologies" / "services.yaml"))


def chains(path):
    return [s.chain for h in path.hops for s in h.steps if s.chain]


def test_cluster_ip_from_pod_node_and_pod_on_other_node(net):
    for src in ("shop/client", "node/node-3", "node/node-1"):
        t = net.trace(src, "svc/shop/web:80")
        assert t.verdict == "delivered" and set(t.endpoints) == WEB, src
        assert all(p.reply.disposition == "DELIVERED" for p in t.paths)


def test_node_port_cluster_policy_masquerades_outside_clients(net):
    t = net.trace("ext/203.0.113.7@node-1", "192.168.0.11:30080")
    assert set(t.endpoints) == WEB
    for p in t.paths:
        assert p.forward.packet.src != IPv4Address("203.0.113.7")
        assert any(c.startswith("KUBE-EXT-") for c in chains(p))
        assert "KUBE-NODEPORTS" in chains(p)
        assert p.reply.packet.src == IPv4Address("192.168.0.11") and p.reply.packet.sport == 30080


def test_node_port_local_policy_keeps_client_address_and_local_endpoint(net):
    t = net.trace("ext/203.0.113.7@node-1", "192.168.0.11:30081")
    (p,) = t.paths
    assert p.endpoint == "shop/web-1"
    assert p.forward.packet.src == IPv4Address("203.0.113.7")
    assert any(c.startswith("KUBE-SVL-") for c in chains(p))


def test_node_port_local_policy_drops_on_a_node_without_endpoints(net):
    (p,) = net.trace("ext/203.0.113.7@node-3", "192.168.0.13:30081").paths
    assert p.disposition == "DROPPED"
    assert (
        "has no local endpoints" in p.forward.reason
        and "KUBE-EXTERNAL-SERVICES" in p.forward.reason
    )


def test_node_itself_to_local_policy_node_port_is_masqueraded_to_all_endpoints(net):
    t = net.trace("node/node-1", "192.168.0.11:30081")
    assert set(t.endpoints) == WEB


def test_load_balancer_source_ranges(net):
    ok = net.trace("ext/203.0.113.7@node-1", "198.51.100.10:80")
    assert set(ok.endpoints) == WEB
    assert all(any(c.startswith("KUBE-FW-") for c in chains(p)) for p in ok.paths)
    (denied,) = net.trace("ext/192.0.2.1@node-1", "198.51.100.10:80").paths
    assert denied.disposition == "DROPPED" and "KUBE-PROXY-FIREWALL" in denied.forward.reason
    (pod,) = net.trace("shop/client", "198.51.100.10:80").paths  # pods are not in the range either
    assert pod.disposition == "DROPPED"
    # the node port of the same Service is not behind the firewall
    assert net.trace("ext/192.0.2.1@node-1", "192.168.0.11:30082").verdict == "delivered"


def test_external_ip(net):
    t = net.trace("ext/203.0.113.7@node-2", "198.51.100.20:80")
    assert set(t.endpoints) == WEB
    assert all(p.reply.packet.src == IPv4Address("198.51.100.20") for p in t.paths)


def test_session_affinity_rules_set_the_recent_list(net):
    t = net.trace("shop/client", "svc/shop/web-sticky:80")
    assert set(t.endpoints) == WEB
    for p in t.paths:
        rules = [s.rule for h in p.hops for s in h.steps if s.rule and "recent" in s.rule]
        assert any("--set" in r for r in rules)


def test_internal_traffic_policy_local_drops_without_local_endpoint(net):
    (p,) = net.trace("shop/client", "svc/shop/web-itp:80").paths
    assert p.disposition == "DROPPED" and "has no local endpoints" in p.forward.reason
    t = net.trace("shop/web-1", "svc/shop/web-itp:80")
    assert t.endpoints == ("shop/web-1",)


def test_no_endpoints_is_rejected_from_pod_and_node(net):
    for src in ("shop/client", "node/node-2"):
        (p,) = net.trace(src, "svc/shop/nobody:80").paths
        assert p.disposition == "REJECTED" and "has no endpoints" in p.forward.reason


def test_headless_and_external_name_have_no_cluster_ip(net):
    from podnet.errors import UsageError

    for name in ("web-headless", "docs"):
        with pytest.raises(UsageError):
            net.trace("shop/client", f"svc/shop/{name}:80")
    text = net.iptables_save("node-1")
    assert "shop/web-headless" not in text and "shop/docs" not in text


def test_given_endpoint_slice_with_an_address_outside_the_cluster(tmp_path):
    (tmp_path / "c.yaml").write_text(
        """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-1, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: legacy-1
  labels: {kubernetes.io/service-name: legacy}
addressType: IPv4
ports: [{name: https, port: 8443, protocol: TCP}]
endpoints:
- addresses: [203.0.113.50]
"""
    )
    net = podnet.load(str(tmp_path / "c.yaml"))
    (p,) = net.trace("client", "svc/legacy:443").paths
    assert p.disposition == "EXITS_NETWORK"
    nat = [s.text for h in p.hops for s in h.steps if s.type == "nat" and not s.rule]
    assert nat and nat[0].endswith("-> 203.0.113.50:8443")

"""The trace engine on the canonical paths: devices in the order Linux crosses them, NAT,
probabilities, TTL, VXLAN headers, replies."""

from fractions import Fraction
from ipaddress import IPv4Address

import pytest
from trace_fixtures import three_node

from podnet.trace.run import run_trace


@pytest.fixture(scope="module")
def vxlan():
    return three_node("vxlan")


@pytest.fixture(scope="module")
def hostgw():
    return three_node("host-gw")


def devices(leg):
    return [(h.netns.split(":")[0] + ":" + (h.node or ""), h.device, h.direction) for h in leg.hops]


def test_service_with_three_endpoints_gives_three_paths_of_exactly_one_third(vxlan):
    t = run_trace(vxlan, "client", "svc/backend:80")
    assert t.verdict == "delivered"
    assert sorted(p.endpoint for p in t.paths) == ["default/b1", "default/b2", "default/b3"]
    assert [p.probability for p in t.paths] == [Fraction(1, 3)] * 3
    assert sum(p.probability for p in t.paths) == 1


def test_dnat_step_and_reply_restores_cluster_ip(vxlan):
    svc = next(s for s in vxlan.cluster.services if s.key == "default/backend")
    t = run_trace(vxlan, "client", "svc/backend:80")
    for path in t.paths:
        nats = [s.text for h in path.hops for s in h.steps if s.type == "nat" and not s.rule]
        assert len(nats) == 1 and nats[0].startswith(f"dst {svc.cluster_ip}:80 -> ")
        assert nats[0].endswith(":8080")
        assert path.reply.disposition == "DELIVERED"
        last = path.reply.packet
        assert (last.src, last.sport) == (svc.cluster_ip, 80)
        assert last.dst == t.packet.src


def test_kube_proxy_chain_walk_is_reported_with_rule_numbers(vxlan):
    t = run_trace(vxlan, "client", "svc/backend:80")
    steps = [
        s for h in t.paths[0].hops for s in h.steps if s.type in ("netfilter", "nat") and s.rule
    ]
    chains = [s.chain for s in steps]
    assert chains[:3] == ["PREROUTING", "KUBE-SERVICES", chains[2]]
    assert chains[2].startswith("KUBE-SVC-")
    assert (
        steps[0].rule
        == '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    )
    assert all(s.rulenum >= 1 for s in steps if s.rulenum is not None)


def test_cross_node_vxlan_path_crosses_devices_in_linux_order(vxlan):
    t = run_trace(vxlan, "client", "b2:8080")
    (path,) = t.paths
    dev = [(h.netns, h.device, h.direction) for h in path.hops]
    c = [d for d in dev]
    assert c[0] == ("pod:default/client", "eth0", "out")
    assert c[1][0] == "node:node-1" and c[1][1].startswith("veth") and c[1][2] == "in"
    assert c[2:6] == [
        ("node:node-1", "cni0", "in"),
        ("node:node-1", "flannel.1", "out"),
        ("node:node-1", "eth0", "out"),
        ("node:node-2", "eth0", "in"),
    ]
    assert c[6:8] == [("node:node-2", "flannel.1", "in"), ("node:node-2", "cni0", "out")]
    assert c[8][1].startswith("veth") and c[8][2] == "out"
    assert c[9] == ("pod:default/b2", "eth0", "in")
    underlay = path.hops[4].packet.encap
    assert (underlay.src, underlay.dst, underlay.dport, underlay.vni) == (
        IPv4Address("192.168.0.11"),
        IPv4Address("192.168.0.12"),
        8472,
        1,
    )
    assert path.hops[-1].packet.encap is None
    assert path.hops[-1].packet.ttl == 62  # forwarded by two nodes


def test_flannel_route_neighbour_and_fdb_are_shown(vxlan):
    (path,) = run_trace(vxlan, "client", "b2:8080").paths
    texts = [s.text for s in path.hops[3].steps]
    assert "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in [
        s.text for s in path.hops[2].steps
    ]
    assert any(
        t.startswith("10.244.2.0 dev flannel.1 lladdr ") and t.endswith(" PERMANENT") for t in texts
    )
    assert any(t.endswith(" dev flannel.1 dst 192.168.0.12 self permanent") for t in texts)


def test_host_gw_routes_via_the_peer_node_without_encapsulation(hostgw):
    (path,) = run_trace(hostgw, "client", "b2:8080").paths
    assert path.delivered
    assert all(h.packet.encap is None for h in path.hops)
    assert all(h.device != "flannel.1" for h in path.hops)
    routes = [s.text for h in path.hops for s in h.steps if s.type == "route"]
    assert "10.244.2.0/24 via 192.168.0.12 dev eth0" in routes
    assert path.hops[-1].packet.ttl == 62


def test_same_node_pod_to_pod_is_bridged_without_ttl_change(vxlan):
    (path,) = run_trace(vxlan, "client", "b1:8080").paths
    assert path.delivered
    assert [h.netns for h in path.hops] == [
        "pod:default/client",
        "node:node-1",
        "node:node-1",
        "pod:default/b1",
    ]
    assert path.hops[-1].packet.ttl == 64
    assert any(s.type == "bridge" and "forward" in s.text for h in path.hops for s in h.steps)


def test_intra_pod_over_loopback_never_leaves_the_pod(vxlan):
    (path,) = run_trace(vxlan, "duo", "localhost:9090").paths
    assert path.delivered and path.endpoint == "default/duo"
    assert {h.netns for h in path.hops} == {"pod:default/duo"}
    assert [h.device for h in path.hops] == ["lo", "lo"]
    assert path.hops[-1].packet.src == IPv4Address("127.0.0.1")


def test_hairpin_to_own_service_is_masqueraded_to_the_bridge_address(vxlan):
    t = run_trace(vxlan, "b1", "svc/backend:80")
    b1 = next(p for p in vxlan.cluster.pods if p.key == "default/b1")
    own = next(p for p in t.paths if p.endpoint == "default/b1")
    assert own.forward.packet.src == IPv4Address("10.244.1.1")  # cni0's address
    assert own.reply.disposition == "DELIVERED"
    others = [p for p in t.paths if p.endpoint != "default/b1"]
    assert others and all(p.forward.packet.src == b1.ip for p in others)


def test_service_without_endpoints_is_rejected_by_kube_proxy(vxlan):
    (path,) = run_trace(vxlan, "client", "svc/empty:80").paths
    assert path.disposition == "REJECTED"
    assert "has no endpoints" in path.forward.reason
    assert "KUBE-SERVICES" in path.forward.reason


def test_node_to_cluster_ip_is_masqueraded(vxlan):
    t = run_trace(vxlan, "node/node-1", "svc/backend:80")
    assert t.verdict == "delivered"
    for p in t.paths:
        assert p.forward.packet.src != t.packet.src  # KUBE-MARK-MASQ: ! -s clusterCIDR
        assert p.reply.disposition == "DELIVERED"


def test_outside_destinations_leave_the_network_and_service_cidr_has_no_route(vxlan):
    (out,) = run_trace(vxlan, "client", "93.184.216.34:443").paths
    assert out.disposition == "EXITS_NETWORK"
    (lost,) = run_trace(vxlan, "client", "10.96.200.200:80").paths
    assert lost.disposition == "NO_ROUTE"


def test_seed_picks_one_path_deterministically(vxlan):
    a = run_trace(vxlan, "client", "svc/backend:80", seed=7)
    b = run_trace(vxlan, "client", "svc/backend:80", seed=7)
    assert len(a.paths) == 1 and a == b
    picked = {
        run_trace(vxlan, "client", "svc/backend:80", seed=s).paths[0].endpoint for s in range(40)
    }
    assert picked == {"default/b1", "default/b2", "default/b3"}


def test_same_input_same_trace(vxlan):
    assert run_trace(vxlan, "client", "svc/backend:80") == run_trace(
        three_node("vxlan"), "client", "svc/backend:80"
    )

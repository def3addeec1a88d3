"""Tests of podnet.dataplane.build / names / network: the namespaces as Linux would hold them."""

from __future__ import annotations

import re
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import networkx
import pytest
from dataplane_fixtures import make_cluster

from podnet.dataplane import names
from podnet.dataplane.bridge import show_fdb
from podnet.dataplane.build import (
    build_network,
    builtin_tables,
    underlay_gateway,
    underlay_prefix,
    vtep_mac,
    with_external_client,
)
from podnet.dataplane.neigh import show_neighbors
from podnet.dataplane.network import all_routes
from podnet.dataplane.routing import show_routes


@pytest.fixture(scope="module")
def net():
    return build_network(make_cluster(host_network_on=(1,)))


@pytest.fixture(scope="module")
def hostgw():
    return build_network(make_cluster(backend="host-gw"))


def veth_of(net, pod_key):
    return net.netns[net.pod_netns(pod_key)].link("eth0").peer[1]


# ---------------------------------------------------------------------------------- names


def test_veth_names_are_deterministic_and_well_formed():
    a = names.veth_names("node-1", [f"default/p{i}" for i in range(200)])
    b = names.veth_names("node-1", [f"default/p{i}" for i in range(200)])
    assert a == b
    assert all(re.fullmatch(r"veth[0-9a-f]{8}", v) for v in a.values())
    assert len(set(a.values())) == 200
    assert names.veth_names("node-2", ["default/p0"]) != names.veth_names("node-1", ["default/p0"])


def test_veth_name_clash_is_resolved_deterministically(monkeypatch):
    # Every seed without a "#n" suffix gets the same name: the second Pod must draw again.
    real = names.veth_name
    monkeypatch.setattr(names, "veth_name", lambda s: "vethdeadbeef" if "#" not in s else real(s))
    got = names.veth_names("node-1", ["default/a", "default/b"])
    assert got["default/a"] == "vethdeadbeef"
    assert got["default/b"] == real("node-1|default/b#1")


def test_macs_are_unicast_locally_administered_and_stable():
    for seed in ("node:node-1|eth0", "node:node-1|flannel.1", "x"):
        mac = names.mac_from_seed(seed)
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01
        assert mac == names.mac_from_seed(seed)
    assert names.mac_from_seed("a") != names.mac_from_seed("b")
    assert names.pod_mac(A("10.244.1.2")) == "0a:58:0a:f4:01:02"


def test_underlay_prefix_and_gateway():
    assert underlay_prefix([A("192.168.0.11"), A("192.168.0.13")]) == N("192.168.0.0/24")
    assert underlay_prefix([A("192.168.0.11"), A("192.168.1.13")]) == N("192.168.0.0/23")
    assert underlay_prefix([A("10.0.0.1"), A("10.200.0.1")]) == N("10.0.0.0/8")
    assert underlay_gateway(N("192.168.0.0/24"), [A("192.168.0.1")]) == A("192.168.0.2")


# ---------------------------------------------------------------------------------- nodes


def test_node_links(net):
    ns = net.netns["node:node-1"]
    assert (ns.kind, ns.node) == ("node", "node-1")
    lo, eth0, flannel, cni0, *veths = ns.links
    assert [(lk.name, lk.kind, lk.index) for lk in (lo, eth0, flannel, cni0)] == [
        ("lo", "loopback", 1),
        ("eth0", "ether", 2),
        ("flannel.1", "vxlan", 3),
        ("cni0", "bridge", 4),
    ]
    assert (lo.mtu, lo.mac, [str(a) for a in lo.addresses]) == (
        65536,
        "00:00:00:00:00:00",
        ["127.0.0.1/8"],
    )
    assert [str(a) for a in eth0.addresses] == ["192.168.0.11/24"] and eth0.mtu == 1500
    assert [str(a) for a in flannel.addresses] == ["10.244.1.0/32"] and flannel.mtu == 1450
    assert flannel.vxlan.vni == 1 and flannel.vxlan.port == 8472
    assert flannel.vxlan.local == A("192.168.0.11") and not flannel.vxlan.learning
    assert flannel.mac == vtep_mac("node-1")
    assert [str(a) for a in cni0.addresses] == ["10.244.1.1/24"] and cni0.mtu == 1450
    assert [lk.index for lk in veths] == [5, 6]
    for lk, pod in zip(veths, ("default/p1-0", "default/p1-1"), strict=True):
        assert re.fullmatch(r"veth[0-9a-f]{8}", lk.name)
        assert (lk.kind, lk.master, lk.hairpin, lk.mtu) == ("veth", "cni0", True, 1450)
        assert lk.peer == (f"pod:{pod}", "eth0")
    assert ns.sysctls["net.ipv4.ip_forward"] == 1
    assert ns.sysctls["net.bridge.bridge-nf-call-iptables"] == 1


def test_node_main_routes(net):
    assert show_routes(net.netns["node:node-1"]) == (
        "default via 192.168.0.1 dev eth0",
        "10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1",
        "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
        "10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink",
        "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.11",
    )


def test_node_local_routes(net):
    assert show_routes(net.netns["node:node-1"], "local") == (
        "local 10.244.1.0 dev flannel.1 proto kernel scope host src 10.244.1.0",
        "local 10.244.1.1 dev cni0 proto kernel scope host src 10.244.1.1",
        "broadcast 10.244.1.255 dev cni0 proto kernel scope link src 10.244.1.1",
        "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1",
        "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1",
        "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1",
        "local 192.168.0.11 dev eth0 proto kernel scope host src 192.168.0.11",
        "broadcast 192.168.0.255 dev eth0 proto kernel scope link src 192.168.0.11",
    )
    assert "local 10.244.1.1 dev cni0 table local proto kernel scope host src 10.244.1.1" in (
        show_routes(net.netns["node:node-1"], "all")
    )


def test_node_neighbours_and_fdb(net):
    ns = net.netns["node:node-1"]
    m2, m3 = vtep_mac("node-2"), vtep_mac("node-3")
    assert show_neighbors(ns) == (
        f"10.244.2.0 dev flannel.1 lladdr {m2} PERMANENT",
        f"10.244.3.0 dev flannel.1 lladdr {m3} PERMANENT",
    )
    fdb = show_fdb(ns)
    assert f"{m2} dev flannel.1 dst 192.168.0.12 self permanent" in fdb
    assert f"{m3} dev flannel.1 dst 192.168.0.13 self permanent" in fdb
    assert not any(vtep_mac("node-1") in line for line in fdb)  # never its own VTEP
    cni0 = ns.link("cni0").mac
    assert f"{cni0} dev cni0 master cni0 permanent" in fdb
    for pod, ip in (("default/p1-0", "10.244.1.2"), ("default/p1-1", "10.244.1.3")):
        veth = ns.link(veth_of(net, pod))
        assert f"{names.pod_mac(A(ip))} dev {veth.name} master cni0" in fdb
        assert f"{veth.mac} dev {veth.name} master cni0 permanent" in fdb
        assert not any("vlan" in line for line in fdb)  # VLAN filtering is off on cni0
    assert len(fdb) == 2 + 2 * 2 + 1


def test_peer_entries_are_shared_not_copied(net):
    n1, n2 = net.netns["node:node-1"], net.netns["node:node-2"]
    assert n1.peers is n2.peers is net.peers
    assert not any(r.dev == "flannel.1" and r.gateway for r in n1.routes)  # held in peers only
    assert [str(r.dst) for r in all_routes(n2) if r.dev == "flannel.1" and r.table == "main"] == [
        "10.244.1.0/24",
        "10.244.3.0/24",
    ]


def test_node_without_pods_has_no_bridge(net):
    ns = net.netns["node:node-3"]
    assert [lk.name for lk in ns.links] == ["lo", "eth0", "flannel.1"]
    assert ns.fdb == ()
    assert net.owner_of(A("10.244.3.1")) is None
    assert net.owner_of(A("10.244.3.0")) == ("node:node-3", "flannel.1")


def test_host_gw(hostgw):
    ns = hostgw.netns["node:node-1"]
    assert [lk.name for lk in ns.links][:3] == ["lo", "eth0", "cni0"]
    assert ns.link("cni0").mtu == 1500 and ns.link(ns.links[3].name).mtu == 1500
    assert show_routes(ns) == (
        "default via 192.168.0.1 dev eth0",
        "10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1",
        "10.244.2.0/24 via 192.168.0.12 dev eth0",
        "10.244.3.0/24 via 192.168.0.13 dev eth0",
        "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.11",
    )
    assert show_neighbors(ns) == ()
    assert not any("flannel.1" in line for line in show_fdb(ns))
    assert hostgw.netns["pod:default/p1-0"].link("eth0").mtu == 1500


def test_node_tables_have_builtin_chains(net):
    ns = net.netns["node:node-1"]
    for t in ("raw", "mangle", "nat", "filter"):
        assert ns.table(t) is not None
    assert ns.table("filter").chain("FORWARD").policy == "ACCEPT"


# ---------------------------------------------------------------------------------- pods


def test_pod_namespace(net):
    ns = net.netns["pod:default/p1-0"]
    assert (ns.kind, ns.node) == ("pod", "node-1")
    eth0 = ns.link("eth0")
    assert (eth0.kind, eth0.index, eth0.mtu, eth0.mac) == ("veth", 2, 1450, "0a:58:0a:f4:01:02")
    assert [str(a) for a in eth0.addresses] == ["10.244.1.2/24"]
    assert eth0.peer == ("node:node-1", veth_of(net, "default/p1-0"))
    assert show_routes(ns) == (
        "default via 10.244.1.1 dev eth0",
        "10.244.0.0/16 via 10.244.1.1 dev eth0",
        "10.244.1.0/24 dev eth0 proto kernel scope link src 10.244.1.2",
    )
    assert show_routes(ns, "local")[:2] == (
        "local 10.244.1.2 dev eth0 proto kernel scope host src 10.244.1.2",
        "broadcast 10.244.1.255 dev eth0 proto kernel scope link src 10.244.1.2",
    )
    assert ns.sysctls["net.ipv4.ip_forward"] == 0
    assert ns.neighbors == () and ns.fdb == () and ns.peers is None
    assert all(c.rules == () and c.policy == "ACCEPT" for t in ns.tables for c in t.chains)
    assert [t.name for t in ns.tables] == [t.name for t in builtin_tables()]


def test_host_network_pod_lives_in_node_namespace(net):
    assert net.pod_netns("kube-system/h1") == "node:node-1"
    assert "pod:kube-system/h1" not in net.netns
    assert net.pod_netns("default/p2-0") == "pod:default/p2-0"
    assert net.pod_netns("default/nope") is None
    assert net.pod_by_ip(A("192.168.0.11")) is None
    assert net.pod_by_ip(A("10.244.2.2")).key == "default/p2-0"
    assert net.node_by_address(A("192.168.0.12")).name == "node-2"
    assert net.node_netns("node-2") == "node:node-2" and net.node_netns("node-9") is None


# ---------------------------------------------------------------------------------- network


def test_netns_names_and_laziness():
    net = build_network(make_cluster())
    assert net.netns_names() == (
        "node:node-1",
        "node:node-2",
        "node:node-3",
        "pod:default/p1-0",
        "pod:default/p1-1",
        "pod:default/p2-0",
    )
    assert net.netns._memo == {}  # nothing built yet
    assert net.get("pod:default/p2-0").name == "pod:default/p2-0"
    assert net.get("pod:default/zzz") is None
    with pytest.raises(KeyError):
        net.netns["node:node-9"]


def test_owner_of_agrees_with_namespaces(net):
    held = {
        a.ip: (name, lk.name)
        for name in net.netns
        for lk in net.netns[name].links
        for a in lk.addresses
        if not a.ip.is_loopback
    }
    assert held == {ip: net.owner_of(ip) for ip in held}
    assert len(held) == 3 + 3 + 2 + 3  # node IPs, flannel.1, cni0 (2 nodes), Pods
    assert net.owner_of(A("127.0.0.1")) is None


def test_build_is_deterministic():
    def texts(n):
        return [
            (name, show_routes(n.netns[name], "all"), show_fdb(n.netns[name]), n.netns[name].links)
            for name in n.netns
        ]

    assert texts(build_network(make_cluster())) == texts(build_network(make_cluster()))


def test_l2_resolve_on_the_bridge(net):
    p10 = "pod:default/p1-0"
    cni0_mac = net.netns["node:node-1"].link("cni0").mac
    assert net.l2_resolve(p10, "eth0", A("10.244.1.3")) == (
        "pod:default/p1-1",
        "eth0",
        "0a:58:0a:f4:01:03",
    )
    assert net.l2_resolve(p10, "eth0", A("10.244.1.1")) == ("node:node-1", "cni0", cni0_mac)
    # arp_ignore=0: the node answers for its flannel.1 address on cni0, with cni0's MAC
    assert net.l2_resolve(p10, "eth0", A("10.244.1.0")) == ("node:node-1", "cni0", cni0_mac)
    assert net.l2_resolve("node:node-1", "cni0", A("10.244.1.2"))[:2] == (p10, "eth0")
    assert net.l2_resolve(p10, "eth0", A("10.244.2.2")) is None  # a Pod on another node
    assert net.l2_resolve(p10, "eth0", A("10.9.9.9")) is None


def test_l2_resolve_on_the_underlay_vxlan_and_loopback(net):
    eth0_mac = net.netns["node:node-2"].link("eth0").mac
    assert net.l2_resolve("node:node-1", "eth0", A("192.168.0.12")) == (
        "node:node-2",
        "eth0",
        eth0_mac,
    )
    assert net.l2_resolve("node:node-1", "eth0", A("10.244.1.2")) is None  # not on the segment
    assert net.l2_resolve("node:node-1", "eth0", A("192.168.0.1")) is None  # the router: outside
    assert net.l2_resolve("node:node-1", "flannel.1", A("10.244.2.0")) is None  # VXLAN: no ARP
    assert net.l2_resolve("pod:default/p1-0", "lo", A("127.0.0.1"))[1] == "lo"
    assert net.l2_resolve("pod:default/p1-0", "lo", A("10.244.1.2"))[0] == "pod:default/p1-0"
    assert net.l2_resolve("pod:default/p1-0", "lo", A("10.244.1.3")) is None


def test_graph_edges(net):
    g = net.graph
    kinds = {}
    for _, _, k in g.edges(data="kind"):
        kinds[k] = kinds.get(k, 0) + 1
    assert kinds == {"veth": 3, "bridge-port": 3, "underlay": 3, "vxlan": 3}
    v = veth_of(net, "default/p1-0")
    assert g.has_edge(f"node:node-1|{v}", "pod:default/p1-0|eth0")
    assert g.has_edge(f"node:node-1|{v}", "node:node-1|cni0")
    assert g.has_edge("node:node-2|eth0", "underlay")
    assert g.edges["node:node-1|flannel.1", "vxlan:1", 0] == {
        "kind": "vxlan",
        "vni": 1,
        "port": 8472,
    }
    assert g.nodes["pod:default/p1-0|eth0"] == {
        "netns": "pod:default/p1-0",
        "link": "eth0",
        "kind": "veth",
    }


def test_l2_domains_match_graph_components(net):
    g = net.graph
    l2 = networkx.MultiGraph(
        (u, v) for u, v, k in g.edges(data="kind") if k in ("veth", "bridge-port", "underlay")
    )
    l2.add_nodes_from(g.nodes)
    comp = {n: i for i, c in enumerate(networkx.connected_components(l2)) for n in c}
    ends = [n for n, d in g.nodes(data=True) if d["netns"] and d["kind"] != "vxlan"]
    for a in ends:
        for b in ends:
            da = net.l2_domain(*a.split("|"))
            db = net.l2_domain(*b.split("|"))
            assert (da == db) == (comp[a] == comp[b]), (a, b)


def test_external_client(net):
    ext = with_external_client(net, A("203.0.113.2"), "node-2")
    ns = ext.netns["external:203.0.113.2"]
    assert (ns.kind, ns.node) == ("external", None)
    assert [str(a) for a in ns.link("eth0").addresses] == ["203.0.113.2/32"]
    assert show_routes(ns) == ("default via 192.168.0.12 dev eth0 onlink",)
    assert ext.externals[A("203.0.113.2")] == "node-2"
    assert ext.external_netns(A("203.0.113.2")) == "external:203.0.113.2"
    assert ext.owner_of(A("203.0.113.2")) == ("external:203.0.113.2", "eth0")
    assert ext.l2_resolve("external:203.0.113.2", "eth0", A("192.168.0.12"))[:2] == (
        "node:node-2",
        "eth0",
    )
    assert ext.graph.has_edge("external:203.0.113.2|eth0", "underlay")
    # the original network is unchanged, and the rest is shared
    assert "external:203.0.113.2" not in net.netns and net.owner_of(A("203.0.113.2")) is None
    assert ext.netns["node:node-1"] is net.netns["node:node-1"]
    with pytest.raises(ValueError):
        with_external_client(net, A("10.244.1.2"), "node-1")
    with pytest.raises(KeyError):
        with_external_client(net, A("203.0.113.9"), "node-9")

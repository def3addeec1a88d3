"""Tests of podnet.dataplane.bridge and neigh: FDB and neighbour lookups, shared peer entries."""

from __future__ import annotations

from ipaddress import IPv4Address as A

import pytest
from dataplane_fixtures import make_cluster

from podnet.dataplane.bridge import FdbIndex, fdb_lookup, is_bridge_own, vxlan_remote
from podnet.dataplane.build import build_network, vtep_mac
from podnet.dataplane.neigh import NeighIndex, neigh_lookup
from podnet.model.dataplane import FdbEntry, Neighbor, Netns, PeerEntries

POD_MAC = "0a:58:0a:f4:01:02"
PORT_MAC = "02:00:00:00:00:05"
BR_MAC = "02:00:00:00:00:04"


def _netns(peers=None) -> Netns:
    return Netns(
        "node:n1",
        "node",
        "n1",
        (),
        fdb=(
            FdbEntry(BR_MAC, "cni0", master="cni0", permanent=True, vlan=1),
            FdbEntry(BR_MAC, "cni0", master="cni0", permanent=True),
            FdbEntry(POD_MAC, "veth00000001", master="cni0"),
            FdbEntry(PORT_MAC, "veth00000001", master="cni0", permanent=True, vlan=1),
            FdbEntry(PORT_MAC, "veth00000001", master="cni0", permanent=True),
        ),
        peers=peers,
    )


def _peers() -> PeerEntries:
    return PeerEntries(
        owners=("n1", "n2"),
        routes=((), ()),
        neighbors=(
            (Neighbor(A("10.244.1.0"), "flannel.1", "02:aa:00:00:00:01"),),
            (Neighbor(A("10.244.2.0"), "flannel.1", "02:aa:00:00:00:02"),),
        ),
        fdb=(
            (FdbEntry("02:aa:00:00:00:01", "flannel.1", dst=A("192.168.0.11"), self_=True),),
            (FdbEntry("02:aa:00:00:00:02", "flannel.1", dst=A("192.168.0.12"), self_=True),),
        ),
    )


def test_fdb_lookup_finds_the_port():
    ns = _netns()
    assert fdb_lookup(ns, "cni0", POD_MAC).dev == "veth00000001"
    assert fdb_lookup(ns, "cni0", POD_MAC.upper()).dev == "veth00000001"
    assert fdb_lookup(ns, "cni0", "02:ff:ff:ff:ff:ff") is None  # unknown: flood
    assert fdb_lookup(ns, "br1", POD_MAC) is None  # entries of another bridge only


def test_own_macs_are_local_and_the_vid0_entry_is_used():
    ns = _netns()
    assert is_bridge_own(ns, "cni0", BR_MAC)
    assert is_bridge_own(ns, "cni0", PORT_MAC)
    assert not is_bridge_own(ns, "cni0", POD_MAC)
    assert fdb_lookup(ns, "cni0", PORT_MAC).vlan is None


def test_vxlan_remote_and_neighbours_skip_the_own_node():
    ns = _netns(_peers())
    idx = FdbIndex(ns)
    assert vxlan_remote(ns, "flannel.1", "02:aa:00:00:00:02", idx) == A("192.168.0.12")
    assert vxlan_remote(ns, "flannel.1", "02:aa:00:00:00:01", idx) is None  # n1's own VTEP
    assert vxlan_remote(ns, "eth0", "02:aa:00:00:00:02") is None
    nidx = NeighIndex(ns)
    assert neigh_lookup(ns, "flannel.1", A("10.244.2.0"), nidx).mac == "02:aa:00:00:00:02"
    assert neigh_lookup(ns, "flannel.1", A("10.244.1.0"), nidx) is None
    assert neigh_lookup(ns, "cni0", A("10.244.2.0")) is None


def test_own_neighbour_entries():
    ns = Netns(
        "pod:x/y",
        "pod",
        "n1",
        (),
        neighbors=(Neighbor(A("10.244.1.1"), "eth0", BR_MAC, "REACHABLE"),),
    )
    assert neigh_lookup(ns, "eth0", A("10.244.1.1")).state == "REACHABLE"


@pytest.fixture(scope="module")
def net():
    return build_network(make_cluster())


def test_built_node_indexes(net):
    ns = net.netns["node:node-1"]
    fdb = net.fdb_index("node:node-1")
    assert net.fdb_index("node:node-1") is fdb  # cached
    veth = net.netns["pod:default/p1-1"].link("eth0").peer[1]
    assert fdb_lookup(ns, "cni0", "0a:58:0a:f4:01:03", fdb).dev == veth
    assert is_bridge_own(ns, "cni0", ns.link("cni0").mac, fdb)
    assert is_bridge_own(ns, "cni0", ns.link(veth).mac, fdb)
    assert vxlan_remote(ns, "flannel.1", vtep_mac("node-3"), fdb) == A("192.168.0.13")
    assert vxlan_remote(ns, "flannel.1", vtep_mac("node-1"), fdb) is None
    nb = net.neigh_index("node:node-1")
    assert neigh_lookup(ns, "flannel.1", A("10.244.2.0"), nb).mac == vtep_mac("node-2")
    assert neigh_lookup(ns, "flannel.1", A("10.244.1.0"), nb) is None
    rt = net.route_table("node:node-1")
    assert rt is net.route_table("node:node-1")
    assert rt.lookup(A("10.244.3.9")).gateway == A("10.244.3.0")
    # no cni0 on node-3 (no Pods): its own podCIDR follows the default route
    assert net.route_table("node:node-3").lookup(A("10.244.3.9")).gateway == A("192.168.0.1")

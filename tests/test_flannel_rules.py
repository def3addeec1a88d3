"""flannel's iptables rules and where they land among kube-proxy's (flannel-io/flannel
pkg/trafficmngr/iptables/iptables.go masqRules/forwardRules)."""

from __future__ import annotations

from dataclasses import replace

from kubeproxy_fixtures import TEST_NODE, cluster

from podnet.control.flannel import flannel_rules
from podnet.control.iptables import node_tables


def test_flannel_postrtg_and_fwd_rules_in_order():
    c = cluster(
        [], [], cluster_cidr="10.244.0.0/16", nodes=((TEST_NODE, "192.168.0.11", "10.244.1.0/24"),)
    )
    r = flannel_rules(c, TEST_NODE)
    m = '-m comment --comment "flanneld masq"'
    assert r[("nat", "FLANNEL-POSTRTG")] == (
        f"-m mark --mark 0x4000/0x4000 {m} -j RETURN",
        f"-s 10.244.1.0/24 -d 10.244.0.0/16 {m} -j RETURN",
        f"-s 10.244.0.0/16 -d 10.244.1.0/24 {m} -j RETURN",
        f"! -s 10.244.0.0/16 -d 10.244.1.0/24 {m} -j RETURN",
        f"-s 10.244.0.0/16 ! -d 224.0.0.0/4 {m} -j MASQUERADE --random-fully",
        f"! -s 10.244.0.0/16 -d 10.244.0.0/16 {m} -j MASQUERADE --random-fully",
    )
    assert r[("filter", "FLANNEL-FWD")] == (
        '-s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        '-d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    )
    assert flannel_rules(c, TEST_NODE, random_fully=False)[("nat", "FLANNEL-POSTRTG")][4].endswith(
        "-j MASQUERADE"
    )


def test_flannel_jumps_are_appended_after_kube_proxy_jumps():
    c = cluster([], [], cluster_cidr="10.244.0.0/16")
    tables = {t.name: t for t in node_tables(c, TEST_NODE)}
    post = tables["nat"].chain("POSTROUTING").rules
    assert post == (
        '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        '-m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    )
    fwd = tables["filter"].chain("FORWARD").rules
    assert fwd[-1] == '-m comment --comment "flanneld forward" -j FLANNEL-FWD'
    assert fwd[0].endswith("-j KUBE-PROXY-FIREWALL")


def test_no_flannel_rules_for_other_plugins():
    c = cluster([], [])
    c = replace(c, config=replace(c.config, network_plugin="calico"))
    assert flannel_rules(c, TEST_NODE) == {}
    assert node_tables(c, TEST_NODE)[3].chain("FLANNEL-POSTRTG") is None

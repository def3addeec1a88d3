"""iptables-save rendering, parsing, kube-proxy's golden ordering and the kernel round trip.

The kernel_form expectations were taken from iptables v1.8.9 (legacy and nf_tables backends):
``iptables-restore`` of the left-hand text in a scratch network namespace, then ``iptables-save``.
"""

from __future__ import annotations

from kubeproxy_fixtures import TEST_NODE, cluster, ep, eslice, service

from podnet.control.iptables import node_tables
from podnet.render.iptables_save import (
    kernel_form,
    kube_proxy_sorted,
    parse_iptables_save,
    render_tables,
)

ROUND_TRIP = [
    (
        '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
        '-d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
    ),
    (
        '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
        '! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
    ),
    (
        "-m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ",
        '-s 10.180.0.1/32 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ',
    ),
    (
        "-m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80",
        '-p tcp -m comment --comment "ns1/svc1:p80" -m recent --set --name KUBE-SEP-SXIVWICOYRO3J4NJ --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.1:80',
    ),
    (
        '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --rcheck --seconds 10800 --reap -j KUBE-SEP-SXIVWICOYRO3J4NJ',
        '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-SXIVWICOYRO3J4NJ --mask 255.255.255.255 --rsource -j KUBE-SEP-SXIVWICOYRO3J4NJ',
    ),
    (
        '-m comment --comment "x" -m statistic --mode random --probability 0.3333333333 -j X',
        '-m comment --comment "x" -m statistic --mode random --probability 0.33333333349 -j X',
    ),
    ("-j MARK --or-mark 0x4000", "-j MARK --set-xmark 0x4000/0x4000"),
    ("-j MARK --xor-mark 0x4000", "-j MARK --set-xmark 0x4000/0x0"),
    ("-m mark ! --mark 0x4000/0x4000 -j RETURN", "-m mark ! --mark 0x4000/0x4000 -j RETURN"),
    (
        '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
        '! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    ),
    (
        '-m comment --comment "a \\"quoted\\" one" -m sctp -p sctp --dport 53 -j REJECT',
        '-p sctp -m comment --comment "a \\"quoted\\" one" -m sctp --dport 53 -j REJECT --reject-with icmp-port-unreachable',
    ),
    (
        '-s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
        '-s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    ),
    (
        '-m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"',
        '-m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ),
]


def test_kernel_form_matches_real_iptables_round_trip():
    for given, saved in ROUND_TRIP:
        assert kernel_form(given) == saved, given


def test_kernel_form_is_a_fixed_point():
    for _, saved in ROUND_TRIP:
        assert kernel_form(saved) == saved


def sample_cluster():
    return cluster(
        [
            service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP", 30080)], type="NodePort"),
            service("ns1", "empty", "172.30.0.42", [("p80", 80, "TCP")]),
        ],
        [eslice("ns1", "svc1", [ep("10.180.0.1", TEST_NODE), ep("10.180.0.2")])],
        cluster_cidr="10.244.0.0/16",
    )


def test_node_tables_structure():
    tables = node_tables(sample_cluster(), TEST_NODE)
    assert [t.name for t in tables] == ["mangle", "raw", "filter", "nat"]
    for t in tables:
        builtins = [c for c in t.chains if c.policy]
        assert all(c.policy == "ACCEPT" for c in builtins)
        assert t.chains[: len(builtins)] == tuple(builtins)
        users = [c.name for c in t.chains[len(builtins) :]]
        assert users == sorted(users)
    mangle, raw, filt, nat = tables
    assert [c.name for c in mangle.chains] == [
        "PREROUTING",
        "INPUT",
        "FORWARD",
        "OUTPUT",
        "POSTROUTING",
        "KUBE-IPTABLES-HINT",
        "KUBE-KUBELET-CANARY",
        "KUBE-PROXY-CANARY",
    ]
    assert [c.name for c in raw.chains] == ["PREROUTING", "OUTPUT"]
    assert filt.chain("INPUT").rules == (
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        "-j KUBE-FIREWALL",
    )
    assert filt.chain("OUTPUT").rules[-1] == "-j KUBE-FIREWALL"
    assert nat.chain("PREROUTING").rules == (
        '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    )
    assert nat.chain("KUBE-POSTROUTING").rules[-1].endswith("-j MASQUERADE --random-fully")
    assert nat.chain("KUBE-SERVICES").rules[-1].endswith("-j KUBE-NODEPORTS")
    assert filt.chain("KUBE-SERVICES").rules[0].endswith("-j REJECT")


def test_render_parses_back_to_the_same_tables():
    tables = node_tables(sample_cluster(), TEST_NODE)
    text = render_tables(tables)
    assert text.startswith(
        "# Generated by podnet iptables-save\n*mangle\n:PREROUTING ACCEPT [0:0]\n"
    )
    assert ":KUBE-SERVICES - [0:0]" in text and text.rstrip().endswith(
        "COMMIT\n# Completed by podnet iptables-save".rstrip()
    )
    assert parse_iptables_save(text) == tables
    kern = parse_iptables_save(render_tables(tables, kernel=True))
    assert [c.name for c in kern[3].chains] == [c.name for c in tables[3].chains]
    assert any("-d 172.30.0.41/32 -p tcp" in r for r in kern[3].chain("KUBE-SERVICES").rules)


def test_render_is_deterministic_and_shared_between_calls():
    c = sample_cluster()
    assert render_tables(node_tables(c, TEST_NODE)) == render_tables(node_tables(c, TEST_NODE))


def test_kube_order_sorts_services_and_keeps_nodeports_rule_last():
    text = (
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-A - [0:0]\n"
        '-A KUBE-SERVICES -m comment --comment "ns2/b:p cluster IP" -j KUBE-A\n'
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS\n'
        '-A KUBE-SERVICES -m comment --comment "ns1/a:p cluster IP" -j KUBE-A\n'
        "-A KUBE-A -j RETURN\nCOMMIT\n*filter\nCOMMIT\n"
    )
    out = kube_proxy_sorted(text).splitlines()
    assert out[0] == "*filter" and out[3:6] == [
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-A - [0:0]",
    ]
    assert "ns1/a" in out[6] and "ns2/b" in out[7] and "must be the last" in out[8]

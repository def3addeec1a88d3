"""kube-proxy iptables rules: names, endpoint selection and each Service shape.

Expectations follow kubernetes pkg/proxy/iptables/proxier.go and proxier_test.go.
"""

from __future__ import annotations

from kubeproxy_fixtures import FAKE_PROXIER, TEST_NODE, cluster, ep, eslice, service

from podnet.control.kubeproxy import (
    endpoint_chain_name,
    port_proto_hash,
    probability,
    service_port_name,
    service_ports,
    svc_chain_name,
)
from podnet.control.kubeproxy_sync import build_state, proxy_state, restore_text
from podnet.render.iptables_save import parse_iptables_save


def rules_of(c, node=TEST_NODE, options=FAKE_PROXIER):
    """{(table, chain): [rules]} of one sync's restore input."""
    out = {}
    for t in parse_iptables_save(restore_text(c, node, options)):
        for ch in t.chains:
            out[(t.name, ch.name)] = list(ch.rules)
    return out


# ---------------------------------------------------------------------------------------- names


def test_hash_names_match_upstream():
    spn = service_port_name("ns1", "svc1", "p80")
    assert spn == "ns1/svc1:p80"
    assert "KUBE-SVC-" + port_proto_hash(spn, "tcp") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert endpoint_chain_name(spn, "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    # more names from proxier_test.go
    assert svc_chain_name("ns2/svc2:p80", "tcp", "KUBE-FW-") == "KUBE-FW-GNZBNJ2PO5MGZ6GT"
    assert svc_chain_name("ns5/svc5:p80", "tcp", "KUBE-EXT-") == "KUBE-EXT-NUKIZ6OKUXPJNT4C"
    assert (
        endpoint_chain_name("ns4/svc4:p80", "tcp", "10.180.0.5:80") == "KUBE-SEP-C6EBXVWJJZMIWKLZ"
    )


def test_unnamed_port_and_protocol_change_the_hash():
    assert service_port_name("default", "web") == "default/web"
    assert port_proto_hash("default/web", "tcp") != port_proto_hash("default/web", "udp")
    assert len(port_proto_hash("default/web", "sctp")) == 16


# ------------------------------------------------------------------------------- dispatching


def three_endpoint_cluster(**kw):
    return cluster(
        [service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP")], **kw)],
        [eslice("ns1", "svc1", [ep("10.180.0.3"), ep("10.180.0.1"), ep("10.180.0.2")])],
    )


def test_probabilities_for_three_endpoints_sorted_by_ip_port():
    assert [probability(n) for n in (3, 2)] == ["0.3333333333", "0.5000000000"]
    svc = rules_of(three_endpoint_cluster())[("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")]
    assert svc[1] == (
        '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random '
        "--probability 0.3333333333 -j KUBE-SEP-SXIVWICOYRO3J4NJ"
    )
    assert "--probability 0.5000000000" in svc[2] and "10.180.0.2:80" in svc[2]
    assert "statistic" not in svc[3] and "10.180.0.3:80" in svc[3]


def test_session_affinity_adds_recent_checks_first():
    svc = rules_of(
        three_endpoint_cluster(session_affinity="ClientIP", session_affinity_timeout=600)
    )[("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")]
    assert all("--rcheck --seconds 600 --reap" in r for r in svc[1:4])
    assert "statistic" in svc[4]


def test_no_endpoints_rejects_every_entry_point():
    c = cluster(
        [
            service(
                "ns1",
                "svc1",
                "172.30.0.41",
                [("p80", 80, "TCP", 3001)],
                type="LoadBalancer",
                external_ips=["192.168.99.11"],
                load_balancer_ips=["1.2.3.4"],
            )
        ],
        [],
    )
    r = rules_of(c)
    reject = '-m comment --comment "ns1/svc1:p80 has no endpoints"'
    assert r[("filter", "KUBE-SERVICES")] == [
        f"{reject} -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT"
    ]
    assert r[("filter", "KUBE-EXTERNAL-SERVICES")] == [
        f"{reject} -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT",
        f"{reject} -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT",
        f"{reject} -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT",
    ]
    assert not any(c.startswith("KUBE-SVC") for _, c in r)
    assert len(r[("nat", "KUBE-SERVICES")]) == 1  # only the KUBE-NODEPORTS tail call


def test_terminating_endpoints_only_when_no_ready_ones():
    c = cluster(
        [service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP")])],
        [
            eslice(
                "ns1",
                "svc1",
                [
                    ep("10.180.0.1", ready=False, terminating=True),
                    ep("10.180.0.2", ready=False, serving=False, terminating=True),
                ],
            )
        ],
    )
    svc = rules_of(c)[("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")]
    assert len(svc) == 2 and "10.180.0.1:80" in svc[1]
    c2 = cluster(
        [service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP")])],
        [
            eslice(
                "ns1", "svc1", [ep("10.180.0.1", ready=False, terminating=True), ep("10.180.0.9")]
            )
        ],
    )
    svc2 = rules_of(c2)[("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")]
    assert len(svc2) == 2 and "10.180.0.9:80" in svc2[1]


def test_large_cluster_mode_drops_dispatch_comments():
    eps = [ep(f"10.{i // 250}.{i % 250}.1") for i in range(1001)]
    c = cluster(
        [service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP")])], [eslice("ns1", "svc1", eps)]
    )
    assert build_state(c).ctx.large_cluster
    r = rules_of(c)
    svc = r[("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")]
    assert svc[1].startswith("-m statistic --mode random --probability 0.0009990010 -j KUBE-SEP-")
    sep = [v for (t, k), v in r.items() if k.startswith("KUBE-SEP-")][0]
    assert sep[0].startswith("-s 10.") and sep[1].startswith("-m tcp -p tcp -j DNAT")
    # the cluster IP rules keep their comments
    assert '"ns1/svc1:p80 cluster IP"' in svc[0]


# ------------------------------------------------------------------------------ traffic policy


def local_cluster(**kw):
    return cluster(
        [service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP", 3001)], type="NodePort", **kw)],
        [eslice("ns1", "svc1", [ep("10.180.0.1", TEST_NODE), ep("10.180.1.1", "node2")])],
        nodes=(
            ("test-node", "192.168.0.2", "10.0.1.0/24"),
            ("node2", "192.168.0.3", "10.0.2.0/24"),
        ),
    )


def test_external_traffic_policy_local_uses_svl_with_local_endpoints_only():
    c = local_cluster(external_traffic_policy="Local")
    r = rules_of(c)
    h = port_proto_hash("ns1/svc1:p80", "tcp")
    assert r[("nat", f"KUBE-EXT-{h}")] == [
        f'-m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-{h}',
        '-m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" '
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        '-m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" '
        f"-m addrtype --src-type LOCAL -j KUBE-SVC-{h}",
        f"-j KUBE-SVL-{h}",
    ]
    assert r[("nat", f"KUBE-SVL-{h}")] == [
        f'-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j {endpoint_chain_name("ns1/svc1:p80", "tcp", "10.180.0.1:80")}'
    ]
    assert len(r[("nat", f"KUBE-SVC-{h}")]) == 3  # masq rule + 2 endpoints
    # node2 has its own local endpoint; a third node has none and DROPs external traffic
    r2 = rules_of(c, "node2")
    assert "10.180.1.1:80" in r2[("nat", f"KUBE-SVL-{h}")][0]


def test_etp_local_without_local_endpoints_drops_nodeport():
    c = local_cluster(external_traffic_policy="Local")
    r = rules_of(c, "node3")
    assert r[("filter", "KUBE-EXTERNAL-SERVICES")] == [
        '-m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype --dst-type LOCAL '
        "-m tcp -p tcp --dport 3001 -j DROP"
    ]
    h = port_proto_hash("ns1/svc1:p80", "tcp")
    assert f"-j KUBE-SVL-{h}" not in r[("nat", f"KUBE-EXT-{h}")]


def test_internal_traffic_policy_local():
    c = local_cluster(internal_traffic_policy="Local")
    h = port_proto_hash("ns1/svc1:p80", "tcp")
    r = rules_of(c)
    assert r[("nat", "KUBE-SERVICES")][0].endswith(f"-j KUBE-SVL-{h}")
    assert r[("nat", f"KUBE-SVL-{h}")][0].endswith("! -s 10.0.0.0/8 -j KUBE-MARK-MASQ")
    r3 = rules_of(c, "node3")
    assert r3[("filter", "KUBE-SERVICES")] == [
        '-m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 '
        "--dport 80 -j DROP"
    ]


def test_masquerade_all_marks_every_cluster_ip_packet():
    c = cluster(
        [service("ns1", "svc1", "172.30.0.41", [("p80", 80, "TCP")])],
        [eslice("ns1", "svc1", [ep("10.180.0.1")])],
        masquerade_all=True,
    )
    svc = rules_of(c)[("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")]
    assert svc[0] == (
        '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 '
        "-j KUBE-MARK-MASQ"
    )


def test_lb_source_ranges_and_node_ip_allowance():
    def make(ranges):
        return cluster(
            [
                service(
                    "ns1",
                    "svc1",
                    "172.30.0.41",
                    [("p80", 80, "TCP", 3001)],
                    type="LoadBalancer",
                    load_balancer_ips=["1.2.3.4", "5.6.7.8"],
                    load_balancer_source_ranges=ranges,
                )
            ],
            [eslice("ns1", "svc1", [ep("10.180.0.1")])],
        )

    h = port_proto_hash("ns1/svc1:p80", "tcp")
    r = rules_of(make(["192.168.0.0/24", "203.0.113.0/25"]))
    head = '-m comment --comment "ns1/svc1:p80 loadbalancer IP"'
    assert r[("nat", f"KUBE-FW-{h}")] == [
        f"{head} -s 192.168.0.0/24 -j KUBE-EXT-{h}",
        f"{head} -s 203.0.113.0/25 -j KUBE-EXT-{h}",
        f"{head} -s 1.2.3.4 -j KUBE-EXT-{h}",  # the node IP is inside a range
        f"{head} -s 5.6.7.8 -j KUBE-EXT-{h}",
        '-m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ]
    assert len(r[("filter", "KUBE-PROXY-FIREWALL")]) == 2
    r2 = rules_of(make(["203.0.113.0/25"]))
    assert len(r2[("nat", f"KUBE-FW-{h}")]) == 2
    r3 = rules_of(make(["0.0.0.0/0"]))
    assert ("nat", f"KUBE-FW-{h}") not in r3 and not r3[("filter", "KUBE-PROXY-FIREWALL")]


def test_health_check_node_port_only_for_local_load_balancers():
    c = local_cluster(external_traffic_policy="Local", health_check_node_port=32000)
    assert not rules_of(c)[("filter", "KUBE-NODEPORTS")]  # NodePort type: no health check
    c2 = cluster(
        [
            service(
                "ns1",
                "svc1",
                "172.30.0.41",
                [("p80", 80, "TCP", 3001)],
                type="LoadBalancer",
                external_traffic_policy="Local",
                health_check_node_port=32000,
            )
        ],
        [],
    )
    assert rules_of(c2)[("filter", "KUBE-NODEPORTS")] == [
        '-m comment --comment "ns1/svc1:p80 health check node port" -m tcp -p tcp --dport 32000 -j ACCEPT'
    ]


# ------------------------------------------------------------------------------ service shapes


def test_headless_and_external_name_services_have_no_rules():
    c = cluster(
        [
            service("ns1", "headless", "None", [("p80", 80, "TCP")]),
            service("ns1", "ext", None, [], type="ExternalName", external_name="example.com"),
        ],
        [eslice("ns1", "headless", [ep("10.180.0.1")])],
    )
    assert service_ports(c) == ()
    assert len(rules_of(c)[("nat", "KUBE-SERVICES")]) == 1


def test_multi_port_named_ports_and_udp():
    c = cluster(
        [service("ns1", "dns", "172.30.0.10", [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")])],
        [
            eslice(
                "ns1",
                "dns",
                [ep("10.180.0.1")],
                ports=(("dns", 5353, "UDP"), ("dns-tcp", 5353, "TCP")),
                suffix="a",
            ),
            eslice(
                "ns1",
                "dns",
                [ep("10.180.0.2")],
                ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
                suffix="b",
            ),
        ],
    )
    r = rules_of(c)
    udp = r[("nat", svc_chain_name("ns1/dns:dns", "udp"))]
    assert "10.180.0.1:5353" in udp[1] and "10.180.0.2:53" in udp[2]
    svcs = r[("nat", "KUBE-SERVICES")]
    assert "-m udp -p udp -d 172.30.0.10 --dport 53" in svcs[0]
    sep = r[("nat", endpoint_chain_name("ns1/dns:dns", "udp", "10.180.0.1:5353"))]
    assert (
        sep[1]
        == "-m comment --comment ns1/dns:dns -m udp -p udp -j DNAT --to-destination 10.180.0.1:5353"
    )


def test_state_is_shared_between_nodes():
    c = local_cluster(external_traffic_policy="Local")
    s = proxy_state(c, FAKE_PROXIER)
    assert proxy_state(c, FAKE_PROXIER) is s
    assert s.dependent == (0,)
    # nodes without local endpoints share the same block object
    b1 = s.block(0, s.variants("node3", None)[0])
    b2 = s.block(0, s.variants("node4", None)[0])
    assert b1 is b2

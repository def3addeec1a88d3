"""Cluster DNS (podnet.dns), traces by name (podnet.trace.dnsflow), kubeadm's addons
(podnet.control.addons), and the control plane's story (podnet events / explain / dns)."""

from __future__ import annotations

import io
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import podnet
from podnet.cli import run
from podnet.control import plan
from podnet.control.story import story
from podnet.dns.records import Zone
from podnet.dns.resolver import ResolvConf, resolv_conf, resolve, search_names
from podnet.model.spec import Inputs
from podnet.render.trace_json import trace_dict
from podnet.render.trace_text import render_trace

DATA = Path(__file__).parent / "data" / "dns_cluster.yaml"


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


@pytest.fixture(scope="module")
def shop():
    return podnet.load(str(DATA))


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- kubeadm's addons


def test_every_cluster_gets_kubernetes_and_kube_dns_served_by_two_coredns_pods():
    c = plan(Inputs())
    ips = {s.key: str(s.cluster_ip) for s in c.services}
    assert ips == {"default/kubernetes": "10.96.0.1", "kube-system/kube-dns": "10.96.0.10"}
    dns = next(s for s in c.services if s.name == "kube-dns")
    assert [(p.name, p.port, p.protocol) for p in dns.spec.ports] == [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
    ]
    core = [p for p in c.pods if p.name.startswith("coredns-")]
    assert len(core) == 2 and all(p.labels["k8s-app"] == "kube-dns" for p in core)
    # created at kubeadm init, before any user workload: they take the first addresses
    assert {str(p.ip).rsplit(".", 1)[1] for p in core} == {"2"}
    api = next(s for s in c.endpoint_slices if s.service == "kubernetes")
    assert [(str(e.ip), p.port) for e in api.endpoints for p in api.ports] == [
        ("192.168.0.11", 6443)
    ]
    assert plan(Inputs(), cluster_dns=False).services == ()


def test_a_cluster_that_brings_its_own_kube_dns_keeps_it():
    from podnet.model.spec import Meta, ServicePort, ServiceSpec

    own = ServiceSpec(
        Meta("kube-dns", "kube-system"),
        ports=(ServicePort(53, "UDP", "dns"),),
        cluster_ip="10.96.0.53",
    )
    c = plan(Inputs(services=(own,)))
    assert [str(s.cluster_ip) for s in c.services if s.name == "kube-dns"] == ["10.96.0.53"]
    assert not [p for p in c.pods if p.name.startswith("coredns-")]


# ---------------------------------------------------------------------------- records


def test_records_as_the_dns_specification_defines_them(shop):
    z = Zone(shop.cluster)
    api = next(s for s in shop.cluster.services if s.name == "api")
    a = z.lookup("api.shop.svc.cluster.local")
    assert (a.rcode, a.addresses()) == ("NOERROR", (api.cluster_ip,))
    # headless: one A per ready endpoint, and a name per Pod hostname/subdomain
    db = z.lookup("db.shop.svc.cluster.local")
    assert db.addresses() == (IPv4Address("10.244.1.4"), IPv4Address("10.244.3.4"))
    assert z.lookup("db-1.db.shop.svc.cluster.local").addresses() == (IPv4Address("10.244.3.4"),)
    # ExternalName: a CNAME
    ext = z.lookup("ext.shop.svc.cluster.local")
    assert ext.cname() == "db.example.com." and not ext.addresses()
    # SRV for named ports: the Service, or each endpoint of a headless Service
    srv = z.lookup("_pg._tcp.api.shop.svc.cluster.local", "SRV")
    assert [r.data for r in srv.records] == ["0 100 5432 api.shop.svc.cluster.local."]
    hsrv = z.lookup("_pg._tcp.db.shop.svc.cluster.local", "SRV")
    assert [r.data for r in hsrv.records] == [
        "0 50 5432 db-0.db.shop.svc.cluster.local.",
        "0 50 5432 db-1.db.shop.svc.cluster.local.",
    ]
    assert z.lookup("_nope._tcp.api.shop.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    # PTR of a ClusterIP and of a headless endpoint
    assert (
        z.lookup("10.0.96.10.in-addr.arpa", "PTR").records[0].data
        == "kube-dns.kube-system.svc.cluster.local."
    )
    assert (
        z.lookup("4.1.244.10.in-addr.arpa", "PTR").records[0].data
        == "db-0.db.shop.svc.cluster.local."
    )
    # Pod A records (pods insecure)
    assert z.lookup("10-244-1-3.shop.pod.cluster.local").addresses() == (IPv4Address("10.244.1.3"),)
    assert z.lookup("nope.shop.svc.cluster.local").rcode == "NXDOMAIN"
    assert z.lookup("example.com").rcode == "SERVFAIL"
    assert z.lookup("dns-version.cluster.local", "TXT").records[0].data == '"1.0.1"'
    assert z.lookup("api.shop.svc.cluster.local", "SRV").rcode == "NOERROR"  # NODATA


def test_resolv_conf_and_search_order_with_ndots(shop):
    client = next(p for p in shop.cluster.pods if p.name == "client")
    conf = resolv_conf(shop.cluster, client)
    assert conf.text() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    )
    assert search_names("db", conf) == (
        "db.shop.svc.cluster.local.",
        "db.svc.cluster.local.",
        "db.cluster.local.",
        "db.",
    )
    # five dots or more: as is first; a trailing dot: as is only
    assert search_names("a.b.c.d.e.f", conf)[0] == "a.b.c.d.e.f."
    assert search_names("api.shop.svc.cluster.local.", conf) == ("api.shop.svc.cluster.local.",)
    res = resolve(Zone(shop.cluster), "api.shop", conf)
    assert [a.qname for a in res.asked] == [
        "api.shop.shop.svc.cluster.local.",
        "api.shop.svc.cluster.local.",
    ]
    assert [a.rcode for a in res.asked] == ["NXDOMAIN", "NOERROR"]
    assert ResolvConf((), ()).ndots == 5


def test_dns_command_answers_like_dig(demo):
    code, out, _ = _cli("dns", "backend", "--from", "frontend")
    assert code == 0
    assert ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: " in out
    assert ";; QUESTION SECTION:\n;backend.default.svc.cluster.local.\t\t\tIN\tA\n" in out
    ip = next(s.cluster_ip for s in demo.cluster.services if s.name == "backend")
    assert f";; ANSWER SECTION:\nbackend.default.svc.cluster.local.\t\t30\tIN\tA\t{ip}\n" in out
    code, out, _ = _cli("dns", "nope", "--from", "frontend")
    assert code == 1 and out.count("status: NXDOMAIN") == 3 and "status: SERVFAIL" in out
    code, out, _ = _cli("dns", "10.96.0.1", "--from", "frontend", "--type", "PTR")
    assert code == 0 and "IN\tPTR\tkubernetes.default.svc.cluster.local." in out
    code, out, _ = _cli("dns", "x", "--from", "frontend", "--resolv-conf")
    assert out.startswith("search default.svc.cluster.local ")


# ---------------------------------------------------------------------------- traces by name


def test_trace_by_name_resolves_over_a_real_udp_flow_then_connects(demo):
    t = demo.trace("frontend", "backend:80")
    d = t.dns
    assert d is not None and d.ok
    assert [q.name for q in d.queries] == ["backend.default.svc.cluster.local."]
    assert d.flow.packet.dst == IPv4Address("10.96.0.10") and d.flow.packet.proto == "udp"
    assert d.flow.verdict == "delivered"
    assert all(e.startswith("kube-system/coredns-") for e in d.flow.endpoints)
    assert len(t.endpoints) == 3 and t.verdict == "delivered"
    t2 = demo.trace("frontend", "backend.default.svc.cluster.local:80")
    assert [q.rcode for q in t2.dns.queries] == ["NXDOMAIN", "NXDOMAIN", "NXDOMAIN", "NOERROR"]
    text = render_trace(t)
    assert text.index("dns backend: resolved") < text.index("\npath 1/3")
    js = trace_dict(t)
    assert (
        list(js).index("dns") < list(js).index("paths")
        and js["dns"]["flow"]["verdict"] == "delivered"
    )


def test_trace_to_headless_and_external_name(shop):
    t = shop.trace("shop/client", "db:5432")
    assert t.dns.address == IPv4Address("10.244.1.4") and t.endpoints == ("shop/db-0",)
    t = shop.trace("shop/client", "db-1.db:5432")
    assert t.endpoints == ("shop/db-1",)
    t = shop.trace("shop/client", "ext:5432")
    assert (
        t.paths[0].disposition == "EXITS_NETWORK"
        and "leaves the cluster" in t.paths[0].forward.reason
    )
    assert t.dns.queries[-1].answers[0].endswith("CNAME\tdb.example.com.")


def test_unknown_name_fails_the_lookup_and_attempts_nothing(shop):
    t = shop.trace("shop/client", "nope.shop:80")
    assert not t.dns.ok and t.paths == () and t.verdict == "dropped"


def test_policy_that_blocks_dns_is_a_failed_lookup(shop):
    t = shop.trace("shop/picky", "api:5432")
    assert t.dns.flow.paths[0].disposition == "DENIED_EGRESS"
    assert not t.dns.ok and t.paths == () and "times out" in t.dns.reason
    assert t.dns.queries[0].rcode == "TIMEOUT"


# ---------------------------------------------------------------------------- events and explain


def test_demo_events_tell_the_deployment_story_in_order(demo):
    events = list(story(demo.cluster, demo.network))
    assert events == list(story(demo.cluster, demo.network))  # same input, same story

    def first(actor, action, obj_prefix):
        return next(
            i
            for i, e in enumerate(events)
            if e.actor == actor and e.action == action and e.object.startswith(obj_prefix)
        )

    order = [
        first("api-server", "create", "Deployment/default/backend"),
        first("deployment-controller", "create", "ReplicaSet/default/backend-"),
        first("replicaset-controller", "create", "Pod/default/backend-"),
        first("scheduler", "filter", "Pod/default/backend-"),
        first("scheduler", "score", "Pod/default/backend-"),
        first("scheduler", "bind", "Pod/default/backend-"),
        first("kubelet", "start", "Pod/default/backend-"),
        first("cni", "ADD", "Pod/default/backend-"),
        first("endpointslice-controller", "add-endpoint", "EndpointSlice/default/backend-"),
        first("kube-proxy", "sync", "Service/default/backend"),
    ]
    assert order == sorted(order)
    cni = events[order[7]]
    pod = next(p for p in demo.cluster.pods if p.key == cni.object[4:])
    veth = demo.network.get(f"pod:{pod.key}").link("eth0").peer[1]
    assert f"veth {veth} " in cni.detail and f"host-local {pod.ip}/24" in cni.detail
    sync = events[order[9]]
    assert "KUBE-SVC-" in sync.detail and sync.detail.count("KUBE-SEP-") == 3
    code, out, _ = _cli("events")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["#", "ACTOR", "ACTION"]


def test_scheduler_reasons_match_its_filters(shop):
    events = [e for e in story(shop.cluster, shop.network) if e.actor == "scheduler"]
    picky = [e.detail for e in events if e.object == "Pod/shop/picky" and e.action == "filter"]
    assert picky == [
        "node-1: rejected: node(s) didn't match Pod's node affinity/selector",
        "node-2: rejected: node(s) had untolerated taint {dedicated: gpu}",
        "node-3: fits",
    ]
    scores = [e.detail for e in events if e.object == "Pod/shop/picky" and e.action == "score"]
    assert len(scores) == 1 and scores[0].startswith("node-3: LeastAllocated ")
    client = [e.detail for e in events if e.object == "Pod/shop/client" and e.action == "filter"]
    assert client[1] == "node-2: rejected: node(s) had untolerated taint {dedicated: gpu}"


def test_explain_pod_tells_its_story_with_the_scheduler_table():
    code, out, _ = _cli("explain", "pod/shop/picky", "-f", str(DATA))
    assert code == 0
    assert out.startswith("Pod shop/picky on node-3, IP 10.244.3.3\n")
    assert "node-2  node(s) had untolerated taint {dedicated: gpu}" in out
    assert (
        "<- bound"
        in out.splitlines()[
            [i for i, x in enumerate(out.splitlines()) if x.startswith("node-3")][0]
        ]
    )
    assert "10-244-3-3.shop.pod.cluster.local  A  10.244.3.3" in out
    code, out, _ = _cli("explain", "pod/shop/db-0", "-f", str(DATA))
    assert "Service shop/api" in out and "kube-proxy shop/api:pg: KUBE-SEP-" in out

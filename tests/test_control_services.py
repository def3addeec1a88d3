"""podnet.control: Service ClusterIPs and node ports, EndpointSlices."""

from __future__ import annotations

from functools import partial
from ipaddress import IPv4Address, IPv4Network

import pytest

from podnet.control import plan as _plan
from podnet.errors import InputError
from podnet.model.base import FrozenDict
from podnet.model.spec import (
    Container,
    ContainerPort,
    EndpointPortSpec,
    EndpointSliceSpec,
    EndpointSpec,
    Inputs,
    Meta,
    PodSpec,
    PodTemplate,
    ServicePort,
    ServiceSpec,
)

# These tests look at the user's objects alone: no kubeadm addons (podnet.control.addons).
plan = partial(_plan, cluster_dns=False)

APP = FrozenDict(app="web")


def svc(name, ns="default", **kw):
    kw.setdefault("ports", (ServicePort(80, target_port=8080),))
    kw.setdefault("selector", APP)
    return ServiceSpec(Meta(name, ns), **kw)


def pod(name, node="node-1", ports=(), ready=True, deleting=False, phase="Running", **kw):
    t = PodTemplate(labels=APP, containers=(Container("c", ports=ports),), node_name=node, **kw)
    meta = Meta(
        name, "default", APP, deletion_timestamp="2024-01-01T00:00:00Z" if deleting else None
    )
    return PodSpec(meta, t, ready=ready, phase=phase)


def messages(inputs):
    with pytest.raises(InputError) as info:
        plan(inputs)
    return [p.message for p in info.value.problems]


# -------------------------------------------------------------------------------- ClusterIPs


def test_cluster_ip_deterministic_inside_dynamic_band():
    services = tuple(svc(f"s{i}") for i in range(20))
    a, b = plan(Inputs(services=services)), plan(Inputs(services=services))
    ips = [s.cluster_ip for s in a.services]
    assert ips == [s.cluster_ip for s in b.services]
    assert len(set(ips)) == 20
    cidr = IPv4Network("10.96.0.0/12")
    # upper band: the first 256 addresses are kept for static allocation (calculateRangeOffset)
    assert all(ip in cidr and int(ip) >= int(cidr.network_address) + 257 for ip in ips)
    assert all(ip != cidr.broadcast_address for ip in ips)


def test_headless_external_name_and_given_cluster_ip():
    services = (
        svc("h", cluster_ip="None"),
        svc("x", type="ExternalName", external_name="example.com", selector=None),
        svc("g", cluster_ip="10.96.0.50"),
    )
    c = plan(Inputs(services=services))
    assert [(s.name, s.cluster_ip) for s in c.services] == [
        ("h", None),
        ("x", None),
        ("g", IPv4Address("10.96.0.50")),
    ]


def test_cluster_ip_errors():
    services = (
        svc("out", cluster_ip="10.0.0.1"),
        svc("a", cluster_ip="10.96.0.50"),
        svc("b", cluster_ip="10.96.0.50"),
    )
    assert messages(Inputs(services=services)) == [
        "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        " (found 10.0.0.1)",
        "provided IP is already allocated (found 10.96.0.50, the ClusterIP of Service default/a)",
    ]


# -------------------------------------------------------------------------------- node ports


def test_node_ports_allocated_shared_per_port_number_and_health_check():
    ports = (
        ServicePort(53, "UDP", "dns"),
        ServicePort(53, "TCP", "dns-tcp"),
        ServicePort(80, name="web"),
    )
    s = svc("np", type="LoadBalancer", external_traffic_policy="Local", ports=ports)
    (out,) = plan(Inputs(services=(s,))).services
    got = [p.node_port for p in out.spec.ports]
    assert got[0] == got[1] and got[0] != got[2]
    assert all(30086 <= p <= 32767 for p in got)  # dynamic band of 30000-32767
    hc = out.spec.health_check_node_port
    assert hc is not None and 30086 <= hc <= 32767 and hc not in got
    again = plan(Inputs(services=(s,))).services[0]
    assert again.spec == out.spec


def test_node_port_errors():
    services = (
        svc("a", type="NodePort", ports=(ServicePort(80, node_port=40000),)),
        svc("b", type="NodePort", ports=(ServicePort(80, node_port=30080),)),
        svc("c", type="NodePort", ports=(ServicePort(81, node_port=30080),)),
        svc("d", ports=(ServicePort(80, node_port=30081),)),
    )
    assert messages(Inputs(services=services)) == [
        "provided port is not in the valid range. The range of valid ports is 30000-32767"
        " (found 40000)",
        "provided port is already allocated (found 30080, the node port of Service default/b)",
        "may not be used when `type` is 'ClusterIP'",
    ]


def test_load_balancer_without_node_ports():
    s = svc("lb", type="LoadBalancer", allocate_load_balancer_node_ports=False)
    assert plan(Inputs(services=(s,))).services[0].spec.ports[0].node_port is None


# ---------------------------------------------------------------------------- EndpointSlices


def test_endpoint_slice_selector_readiness_terminating():
    pods = (
        pod("a"),
        pod("b", ready=False),
        pod("c", deleting=True),
        pod("done", phase="Succeeded"),
    )
    other = PodSpec(
        Meta("o", "default", FrozenDict(app="db")), PodTemplate(labels=FrozenDict(app="db"))
    )
    c = plan(Inputs(pods=pods + (other,), services=(svc("web"),)))
    (sl,) = c.endpoint_slices
    assert sl.service == "web" and sl.name.startswith("web-") and len(sl.name) == 9
    assert [(p.name, p.port, p.protocol) for p in sl.ports] == [("", 8080, "TCP")]
    eps = {e.pod: (str(e.ip), e.ready, e.serving, e.terminating, e.node_name) for e in sl.endpoints}
    assert eps == {
        "default/a": ("10.244.1.2", True, True, False, "node-1"),
        "default/b": ("10.244.1.3", False, False, False, "node-1"),
        "default/c": ("10.244.1.4", False, True, True, "node-1"),
    }
    assert [str(e.ip) for e in sl.endpoints] == sorted(str(e.ip) for e in sl.endpoints)


def test_publish_not_ready_addresses():
    c = plan(
        Inputs(
            pods=(pod("b", ready=False),), services=(svc("web", publish_not_ready_addresses=True),)
        )
    )
    assert c.endpoint_slices[0].endpoints[0].ready is True


def test_named_target_port_per_pod():
    pods = (
        pod("a", ports=(ContainerPort(80, "http"),)),
        pod("b", ports=(ContainerPort(8080, "http"),)),
        pod("c", ports=(ContainerPort(9090, "metrics"),)),
    )
    s = svc("web", ports=(ServicePort(80, target_port="http", name="http"),))
    c = plan(Inputs(pods=pods, services=(s,)))
    by_port = {
        tuple(p.port for p in sl.ports): [e.pod for e in sl.endpoints] for sl in c.endpoint_slices
    }
    assert by_port == {(80,): ["default/a"], (8080,): ["default/b"], (): ["default/c"]}
    assert len({sl.name for sl in c.endpoint_slices}) == 3


def test_warnings_for_empty_selection_and_unknown_port_name():
    s1 = svc("none", selector=FrozenDict(app="nothing"))
    s2 = svc("web", ports=(ServicePort(80, target_port="nope"),))
    c = plan(Inputs(pods=(pod("a"),), services=(s1, s2)))
    texts = [w.message for w in c.warnings]
    assert "Service default/none: selector app=nothing selects no Pod in namespace default" in texts
    assert any("no selected Pod declares a container port named 'nope'" in t for t in texts)
    assert all(w.severity == "warning" for w in c.warnings)
    placeholder = [sl for sl in c.endpoint_slices if sl.service == "none"]
    assert len(placeholder) == 1 and placeholder[0].endpoints == ()


def test_given_endpoint_slices_are_used_as_they_are():
    given = EndpointSliceSpec(
        Meta("web-manual", "default"),
        "web",
        ports=(EndpointPortSpec(8443, "https"),),
        endpoints=(EndpointSpec((IPv4Address("10.244.2.77"),), ready=False, node_name="node-2"),),
    )
    c = plan(Inputs(pods=(pod("a"),), services=(svc("web"),), endpoint_slices=(given,)))
    (sl,) = c.endpoint_slices
    assert (sl.name, sl.given, sl.ports[0].port) == ("web-manual", True, 8443)
    assert [(str(e.ip), e.ready, e.node_name) for e in sl.endpoints] == [
        ("10.244.2.77", False, "node-2")
    ]


def test_hostname_for_matching_subdomain():
    p = pod("db-0", hostname="db-0", subdomain="db")
    c = plan(Inputs(pods=(p,), services=(svc("db", cluster_ip="None"), svc("web"))))
    hosts = {sl.service: sl.endpoints[0].hostname for sl in c.endpoint_slices}
    assert hosts == {"db": "db-0", "web": None}

"""The indexes at scale never change an answer: on kube-proxy's own rules for generated clusters
(KUBE-SERVICES, KUBE-NODEPORTS, per-Service chains, policy chains with their ipsets), the indexed
walk gives the same verdicts, matched rules and rule numbers as the rule-by-rule walk; and node
namespaces share the rules that are the same on every node."""

from __future__ import annotations

import functools
import os
import tempfile
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.dataplane.netfilter import HookContext, traverse
from podnet.dataplane.ruleset import Ruleset
from podnet.generate import Size, generate, write_yaml
from podnet.model.trace import Packet
from podnet.trace.view import view_of

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


@functools.lru_cache(maxsize=16)
def _network(nodes: int, ppn: int, services: int, endpoints: int, policies: int, seed: int):
    import podnet

    size = Size(
        nodes=nodes, pods_per_node=ppn, services=services, endpoints=endpoints, policies=policies
    )
    fd, path = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            write_yaml(generate(size, seed), f)
        return podnet.api.load(path).network
    finally:
        os.unlink(path)


def _key(outcomes):
    return [
        (o.probability, o.verdict, o.packet, o.steps, o.trace, o.nat, o.recent_set)
        for o in outcomes
    ]


@st.composite
def case(draw, networks=None):
    """A generated network (``networks``: drawn from these parameters of ``_network``), one
    of its nodes, a packet and a hook."""
    if networks is not None:
        params = draw(st.sampled_from(networks))
    else:
        params = (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 5)),
            draw(st.integers(1, 25)),
            draw(st.integers(1, 12)),
            draw(st.integers(0, 6)),
            draw(st.integers(0, 3)),
        )
    net = _network(*params)
    cluster = net.cluster
    node = draw(st.sampled_from([n.name for n in cluster.nodes]))
    svc_ips = [s.cluster_ip for s in cluster.services if s.cluster_ip is not None]
    pod_ips = [p.ip for p in cluster.pods]
    node_ips = [n.ip for n in cluster.nodes]
    ports = sorted(
        {p.port for s in cluster.services for p in s.spec.ports}
        | {p.node_port for s in cluster.services for p in s.spec.ports if p.node_port}
        | {8080, 9999}
    )
    dst = draw(st.sampled_from(svc_ips + pod_ips + node_ips + [IPv4Address("203.0.113.9")]))
    src = draw(st.sampled_from(pod_ips + node_ips + [IPv4Address("198.51.100.4")]))
    proto = draw(st.sampled_from(("tcp", "udp", "sctp")))
    dport = draw(st.sampled_from(ports))
    mark = draw(st.sampled_from((0, 0x4000)))
    hook = draw(st.sampled_from(HOOKS))
    new = draw(st.booleans())
    return net, node, Packet(src, dst, proto, 40000, dport, mark=mark), hook, new


def hook_context(view, name: str, hook: str, new: bool) -> HookContext:
    """The context of a walk through ``hook`` of namespace ``name`` (eth0 in, cni0 out)."""
    return HookContext(
        in_iface=None if hook in ("OUTPUT",) else "eth0",
        out_iface=None if hook in ("PREROUTING", "INPUT") else "cni0",
        ctstate="NEW" if new else "ESTABLISHED",
        ct_new=new,
        local_addrs=view.local_addrs(name),
        masq_addr=view.primary_addr(name, "eth0"),
        ipsets=view.ipsets(name),
    )


@settings(max_examples=150, deadline=None)
@given(case())
def test_kube_proxy_rules_indexed_walk_equals_linear_walk(c):
    net, node, packet, hook, new = c
    view = view_of(net)
    name = f"node:{node}"
    tables = net.get(name).tables
    indexed = Ruleset.from_tables(tables, index_threshold=0)
    linear = Ruleset.from_tables(tables, index_threshold=None)
    ctx = hook_context(view, name, hook, new)
    a = traverse(indexed, hook, ctx, packet, record_returns=True)
    b = traverse(linear, hook, ctx, packet, record_returns=True)
    assert _key(a) == _key(b)
    assert sum(o.probability for o in a) == 1


def test_the_service_chains_are_indexed_at_scale():
    net = _network(3, 110, 300, 5, 0, 1)
    rs = view_of(net).ruleset("node:node-1")
    chain = rs.chain("nat", "KUBE-SERVICES")
    assert chain is not None and chain.index is not None
    assert len(chain.rules) >= 300


def test_nodes_share_identical_rules():
    """A node without local endpoints of a Service has the very same chain objects as another."""
    net = _network(3, 2, 40, 3, 0, 2)
    a = {c.name: c for t in net.get("node:node-1").tables for c in t.chains if t.name == "nat"}
    b = {c.name: c for t in net.get("node:node-2").tables for c in t.chains if t.name == "nat"}
    svc_chains = [n for n in a if n.startswith("KUBE-SVC-") and n in b]
    assert svc_chains
    shared = [n for n in svc_chains if a[n] is b[n]]
    assert shared  # at least the Services without a local endpoint on either node

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
def case(draw):
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


@settings(max_examples=150, deadline=None)
@given(case())
def test_kube_proxy_rules_indexed_walk_equals_linear_walk(c):
    net, node, packet, hook, new = c
    view = view_of(net)
    name = f"node:{node}"
    tables = net.get(name).tables
    indexed = Ruleset.from_tables(tables, index_threshold=0)
    linear = Ruleset.from_tables(tables, index_threshold=None)
    ctx = HookContext(
        in_iface=None if hook in ("OUTPUT",) else "eth0",
        out_iface=None if hook in ("PREROUTING", "INPUT") else "cni0",
        ctstate="NEW" if new else "ESTABLISHED",
        ct_new=new,
        local_addrs=view.local_addrs(name),
        masq_addr=view.primary_addr(name, "eth0"),
        ipsets=view.ipsets(name),
    )
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


def test_nodes_compiled_over_a_reference_equal_their_full_build():
    """Ruleset sharing between nodes (podnet.dataplane.ruleset._shared_build) gives each node
    exactly the chains a build of its own tables gives."""
    from podnet.dataplane import ruleset as rsmod

    net = _network(4, 60, 300, 8, 6, 4)
    view = view_of(net)
    layered = 0
    for n in net.cluster.nodes:
        name = f"node:{n.name}"
        shared = view.ruleset(name)
        full = rsmod._full_build(tuple(net.get(name).tables), rsmod.DEFAULT_INDEX_THRESHOLD)
        layered += isinstance(shared.chains, rsmod._Layered)
        assert sorted(shared.chains) == sorted(full.chains)
        for key, cc in full.chains.items():
            other = shared.chain(*key)
            assert (
                other.rules,
                other.policy,
                other.index,
                other.port_index,
                other.always,
                other.labels,
            ) == (cc.rules, cc.policy, cc.index, cc.port_index, cc.always, cc.labels)
    assert layered >= 3  # all but the first node were built over a reference


def test_a_broken_own_chain_is_reported_as_by_a_full_build():
    from podnet.dataplane import ruleset as rsmod
    from podnet.dataplane.rulevalues import RuleError
    from podnet.model.dataplane import Chain, Table

    many = tuple(Chain(f"C{i}", ("-j RETURN",)) for i in range(400))
    jumps = Chain("INPUT", tuple(f"-j C{i}" for i in range(400)), "ACCEPT")
    good = (Table("filter", (jumps,) + many),)
    assert Ruleset.from_tables(good).chain("filter", "C7") is not None
    loop = (
        Table(
            "filter",
            (jumps,)
            + tuple(Chain("C3", ("-j C399",)) if c.name == "C3" else c for c in many[:-1])
            + (Chain("C399", ("-j C3",)),),
        ),
    )
    try:
        Ruleset.from_tables(loop)
    except RuleError as exc:
        assert "jump loop C3 -> C399 -> C3" in str(exc)
    else:
        raise AssertionError("the loop was not found")
    missing = (Table("filter", (jumps,) + many[:-1] + (Chain("C399", ("-j NOWHERE",)),)),)
    try:
        Ruleset.from_tables(missing)
    except RuleError as exc:
        assert "NOWHERE" in str(exc)
    else:
        raise AssertionError("the missing chain was not found")
    assert rsmod._REFS[("filter", rsmod.DEFAULT_INDEX_THRESHOLD)] is not None


def test_tables_with_fewer_or_more_chains_than_the_reference():
    from podnet.dataplane import ruleset as rsmod
    from podnet.dataplane.rulevalues import RuleError
    from podnet.model.dataplane import Chain, Table

    many = [Chain(f"D{i}", ("-j RETURN",)) for i in range(400)]
    ref = (
        Table("filter", (Chain("INPUT", tuple(f"-j D{i}" for i in range(400)), "ACCEPT"), *many)),
    )
    Ruleset.from_tables(ref)
    # D5 gone (INPUT, an own chain, no longer jumps there), E1 new
    fewer = (
        Table(
            "filter",
            (
                Chain(
                    "INPUT", tuple(f"-j D{i}" for i in range(400) if i != 5) + ("-j E1",), "ACCEPT"
                ),
                *[c for c in many if c.name != "D5"],
                Chain("E1", ("-j DROP",)),
            ),
        ),
    )
    rs = Ruleset.from_tables(fewer)
    assert isinstance(rs.chains, rsmod._Layered)
    assert rs.chain("filter", "D5") is None and rs.chain("filter", "E1").rules[0].text == "-j DROP"
    assert (
        rs.chain("filter", "D6") is not None and len(rs.chains) == 1 + 399 + 1 + 2
    )  # INPUT, D*, E1, FORWARD, OUTPUT
    full = rsmod._full_build(fewer, rsmod.DEFAULT_INDEX_THRESHOLD)
    assert sorted(rs.chains) == sorted(full.chains)
    # D5 gone but the reference's INPUT (shared) still jumps there: refused as a full build does
    dangling = (Table("filter", (ref[0].chains[0], *[c for c in many if c.name != "D5"])),)
    try:
        Ruleset.from_tables(dangling)
    except RuleError as exc:
        assert "D5" in str(exc)
    else:
        raise AssertionError("the jump to a missing chain was not found")

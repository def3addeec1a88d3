"""A node's Ruleset compiled chain by chain (podnet.dataplane.lazy_ruleset) is the Ruleset of its
tables built in full: the same chains, each with the same rules, policy, index and labels; the
full build also proves the rules podnet writes hold no jump cycle and no chain twice. Bad chains
are refused when first entered, with the messages a full build gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from test_scale_index import _key, _network, case, hook_context

import podnet
from podnet.control.iptables import NodeTables, node_rules, node_tables
from podnet.dataplane import ruleset as rsmod
from podnet.dataplane.lazy_ruleset import lazy_ruleset
from podnet.dataplane.netfilter import traverse
from podnet.dataplane.rulevalues import RuleError
from podnet.model.dataplane import BUILTIN_CHAINS, Chain, Table
from podnet.trace.view import view_of

CLUSTERS = [
    ("topologies", "demo.yaml"),
    ("topologies", "demo-host-gw.yaml"),
    ("topologies", "services.yaml"),
]


def _same(a, b) -> bool:
    """The same rules, policy and labels; the same index unless ``a`` is compiled rule by rule
    (then its walks are compared with the full build's in test_lazy_walks_equal_linear_walks)."""
    if (tuple(a.rules), a.policy, a.builtin, tuple(a.labels)) != (
        b.rules,
        b.policy,
        b.builtin,
        b.labels,
    ):
        return False
    if isinstance(a.rules, tuple):
        return (a.index, a.port_index, a.always, a.dst_index, a.src_index) == (
            b.index,
            b.port_index,
            b.always,
            b.dst_index,
            b.src_index,
        )
    return True


def _assert_lazy_equals_full(cluster, node: str) -> None:
    rules = node_rules(cluster, node)
    full = rsmod._full_build(rules.tables(), rsmod.DEFAULT_INDEX_THRESHOLD)  # checks loops too
    lazy = lazy_ruleset(rules, rules.table_names)
    assert sorted(lazy.chains) == sorted(full.chains)
    for key, cc in full.chains.items():
        assert _same(lazy.chain(*key), cc), key
    assert lazy.chain("nat", "KUBE-NO-SUCH") is None


@pytest.mark.parametrize("parts", CLUSTERS, ids=lambda p: p[1])
def test_bundled_clusters_lazy_equals_full(parts):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cluster = podnet.api.load(str(root.joinpath(*parts))).cluster
    for n in cluster.nodes:
        _assert_lazy_equals_full(cluster, n.name)


def test_generated_clusters_lazy_equals_full():
    for params in ((3, 5, 25, 12, 6, 3), (4, 60, 300, 8, 6, 4)):
        net = _network(*params)
        for n in net.cluster.nodes:
            _assert_lazy_equals_full(net.cluster, n.name)


def _assert_has_chain_agrees(cluster) -> None:
    """NodeRules.has_chain, asked before any chain is written, says what chain() finds, for
    every chain of every node (a node is asked of the others' chains too: another node's Pod
    firewall chain, which its agent does not hold) and for chains nobody holds."""
    asked = {node.name: node_rules(cluster, node.name) for node in cluster.nodes}
    names = {("nat", "KUBE-NO-SUCH"), ("filter", "KUBE-POD-FW-NO0SUCH0CHAIN00")}
    for rules in [node_rules(cluster, node.name) for node in cluster.nodes]:
        names |= {(t.name, c.name) for t in rules.tables() for c in t.chains}
    for node, rules in asked.items():
        has = {key: rules.has_chain(*key) for key in sorted(names)}
        assert has == {key: rules.chain(*key) is not None for key in sorted(names)}, node
        assert any(has.values()) and not all(has.values())


@pytest.mark.parametrize("parts", CLUSTERS, ids=lambda p: p[1])
def test_has_chain_is_what_chain_finds(parts):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    _assert_has_chain_agrees(podnet.api.load(str(root.joinpath(*parts))).cluster)


def test_has_chain_is_what_chain_finds_in_generated_clusters():
    for params in ((3, 5, 25, 12, 6, 3), (4, 60, 300, 8, 6, 4)):
        _assert_has_chain_agrees(_network(*params).cluster)


def test_a_node_netns_has_its_tables_and_the_view_compiles_lazily():
    net = _network(4, 60, 300, 8, 6, 4)
    ns = net.get("node:node-2")
    assert isinstance(ns.tables, NodeTables)
    assert tuple(ns.tables) == node_tables(net.cluster, "node-2")
    rs = view_of(net).ruleset("node:node-2")
    assert isinstance(rs.chains, type(lazy_ruleset(ns.tables.rules, ("nat",)).chains))
    assert rs.chain("nat", "KUBE-SERVICES").index is not None  # big enough to be indexed


def test_nodes_share_compiled_chains():
    """kube-proxy's chains are one object on every node, so compiled once for all of them."""
    net = _network(4, 60, 300, 8, 6, 4)
    view = view_of(net)
    a, b = view.ruleset("node:node-1"), view.ruleset("node:node-3")
    assert a.chain("nat", "KUBE-SERVICES") is b.chain("nat", "KUBE-SERVICES")
    assert a.chain("nat", "FLANNEL-POSTRTG") is not b.chain("nat", "FLANNEL-POSTRTG")  # own


class _Source:
    """A hand-made ChainSource: one filter table, no sharing."""

    def __init__(self, chains):
        self._t = Table("filter", tuple(chains))

    def chain(self, table, name):
        return self._t.chain(name) if table == "filter" else None

    def has_chain(self, table, name):
        return self.chain(table, name) is not None

    def shared(self, table, name):
        return None

    def host_index(self, table, name, head_of):
        return None

    def tables(self):
        return (self._t,)


def _builtins(**rules):
    return [Chain(c, tuple(rules.get(c, ())), "ACCEPT") for c in BUILTIN_CHAINS["filter"]]


@pytest.mark.parametrize(
    ("chains", "message"),
    [
        (
            [*_builtins(INPUT=("-j NOWHERE",))],
            "error: filter INPUT rule 1: jump to chain 'NOWHERE' that does not exist in table filter",
        ),
        (
            [*_builtins(INPUT=("-j MASQUERADE",))],
            "error: filter INPUT rule 1: target MASQUERADE is only valid in the nat table",
        ),
        (
            [*_builtins(INPUT=("-j FORWARD",))],
            "error: filter INPUT rule 1: cannot jump to built-in chain 'FORWARD'",
        ),
        (
            [*_builtins(INPUT=("-m frob --x 1",))],
            "error: filter INPUT rule 1: unknown match module 'frob' in rule '-m frob --x 1'",
        ),
    ],
)
def test_bad_chains_are_refused_when_entered(chains, message):
    rs = lazy_ruleset(_Source(chains), ("filter",))
    assert rs.chain("filter", "OUTPUT") is not None  # the good chains compile
    with pytest.raises(RuleError) as info:
        rs.chain("filter", "INPUT")
    assert [p.render() for p in info.value.problems] == [message]
    with pytest.raises(RuleError) as full:
        rsmod._full_build((Table("filter", tuple(chains)),), rsmod.DEFAULT_INDEX_THRESHOLD)
    assert message in [p.render() for p in full.value.problems]


# Enough Pods per node for the policy agent's chains to be compiled rule by rule.
BIG = ((2, 40, 20, 6, 6, 1), (3, 35, 30, 8, 4, 2))


@settings(max_examples=150, deadline=None)
@given(case(BIG))
def test_lazy_walks_equal_linear_walks(c):
    """A node's lazy Ruleset (big own chains compiled rule by rule, indexed by their texts'
    host addresses) walks every hook as the rule-by-rule walk of its full tables does."""
    net, node, packet, hook, new = c
    view = view_of(net)
    name = f"node:{node}"
    lazy = view.ruleset(name)
    linear = rsmod.Ruleset.from_tables(tuple(net.get(name).tables), index_threshold=None)
    ctx = hook_context(view, name, hook, new)
    a = traverse(lazy, hook, ctx, packet, record_returns=True)
    b = traverse(linear, hook, ctx, packet, record_returns=True)
    assert _key(a) == _key(b)


def test_own_big_chains_compile_rule_by_rule():
    net = _network(4, 60, 300, 8, 6, 4)
    rs = view_of(net).ruleset("node:node-1")
    fwd = rs.chain("filter", "KUBE-ROUTER-FORWARD")
    assert not isinstance(fwd.rules, tuple) and len(fwd.rules) > 60
    assert fwd.dst_index and fwd.src_index  # four rules per local Pod, by its address
    pod = next(p for p in net.cluster.pods if p.node == "node-1" and not p.host_network)
    hits = fwd.dst_index[int(pod.ip)]
    assert [fwd.rules[i].text.split()[1] for i in hits] == [f"{pod.ip}/32"] * len(hits)


def _assert_host_index_is_the_parse(cluster) -> int:
    """The policy agent's index of its top chains (written with the rules, one local Pod at a
    time) is the one read back from their texts, on every node; gives the chains compared."""
    from podnet.dataplane.lazy_ruleset import _by_rule, head_of

    compared = 0
    for node in cluster.nodes:
        rules = node_rules(cluster, node.name)
        for t in rules.tables():
            for c in t.chains:
                hint = rules.host_index(t.name, c.name, head_of)
                if hint is None:
                    assert t.name != "filter" or not c.name.startswith("KUBE-ROUTER-"), c.name
                    continue
                parsed = _by_rule(t.name, c, None)
                assert hint == (parsed.dst_index, parsed.src_index, parsed.always), c.name
                hinted = _by_rule(t.name, c, None, hint)
                assert (hinted.dst_index, hinted.src_index, hinted.always) == hint
                compared += 1
    return compared


def test_agent_host_index_is_the_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    total = 0
    for parts in CLUSTERS:
        total += _assert_host_index_is_the_parse(
            podnet.api.load(str(root.joinpath(*parts))).cluster
        )
    for params in ((3, 5, 25, 12, 6, 3), (4, 60, 300, 8, 6, 4)):
        total += _assert_host_index_is_the_parse(_network(*params).cluster)
    assert total >= 3 * 7  # three top chains on each node of clusters with policies

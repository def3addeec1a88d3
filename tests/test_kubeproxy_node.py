"""kube-proxy's chains on a node with each Service port's own chains written on demand
(podnet.control.kubeproxy_node) are the chains written in full: the same names, the same rules,
``in`` true of exactly the chains that exist; and asking for one port's chain writes that port's
chains alone."""

from __future__ import annotations

import doctest
import io

import pytest

import podnet
import podnet.control.kubeproxy_node as kn
from podnet.control.iptables import proxy_options
from podnet.control.kubeproxy_sync import build_state
from podnet.generate import SIZES, generate, write_yaml


def test_doctests():
    result = doctest.testmod(kn)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module", params=["services.yaml", "demo.yaml", "generated-S"])
def cluster(request, tmp_path_factory):
    if request.param == "generated-S":
        path = tmp_path_factory.mktemp("kpn") / "s.yaml"
        out = io.StringIO()
        write_yaml(generate(SIZES["S"], seed=3), out)
        path.write_text(out.getvalue())
        return podnet.load(str(path)).cluster
    return podnet.load(f"topologies/{request.param}").cluster


def _variants(state, cluster):
    """Every node's variant, each once (in node order)."""
    seen = {}
    for n in cluster.nodes:
        seen.setdefault(state.variants(n.name, n.ip), n.name)
    return list(seen)


def test_on_demand_equals_full(cluster):
    opts = proxy_options(cluster)
    full_state = build_state(cluster, opts)
    for variants in _variants(full_state, cluster):
        full = kn.kube_chains(full_state, variants)
        written = {(t, c.name): c for t in ("filter", "nat") for c in full.sorted_chains(t)}
        assert len(written) == len(full)
        # a state of its own: nothing written yet but the shared chains
        lazy = kn.kube_chains(build_state(cluster, opts), variants)
        for key, chain in written.items():
            assert key in lazy, key
            assert lazy[key].rules == chain.rules, key
        for t in ("filter", "nat"):
            assert lazy.sorted_chains(t) == full.sorted_chains(t)


def test_in_is_exact(cluster):
    """``in`` answers from the declared names without writing chains, and is false of a
    port's chain it does not declare (a Service without endpoints declares no KUBE-SVC-)."""
    opts = proxy_options(cluster)
    state = build_state(cluster, opts)
    variants = _variants(state, cluster)[0]
    lazy = kn.kube_chains(state, variants)
    names = {(t, c.name) for t in ("filter", "nat") for c in lazy.sorted_chains(t)}
    fresh_state = build_state(cluster, opts)
    fresh = kn.kube_chains(fresh_state, variants)
    for p in fresh_state.ports:
        for name in (p.svc_chain, p.svl_chain, p.ext_chain, p.fw_chain):
            assert (("nat", name) in fresh) == (("nat", name) in names), name
    assert fresh_state.blocks == {}  # nothing written by asking
    assert ("nat", "KUBE-SVC-AAAAAAAAAAAAAAAA") not in fresh
    assert ("filter", "KUBE-SERVICES") in fresh and ("raw", "KUBE-SERVICES") not in fresh


def test_one_port_written_when_asked(cluster):
    opts = proxy_options(cluster)
    state = build_state(cluster, opts)
    lazy = kn.kube_chains(state, _variants(state, cluster)[0])
    port = next(p for p in state.ports if ("nat", p.svc_chain) in lazy)
    chain = lazy["nat", port.svc_chain]
    assert [i for i, _ in state.blocks] == [state.ports.index(port)]
    # its endpoints' chains came with it; no other port's
    seps = [r.split("-j ")[-1] for r in chain.rules if "-j KUBE-SEP-" in r]
    assert seps and all(("nat", s) in lazy._own for s in seps)
    assert {k for k in lazy._own} == {
        ("nat", c.name)
        for c in state.block(
            state.ports.index(port), lazy.variants.get(state.ports.index(port))
        ).chains
    }

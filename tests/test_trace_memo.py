"""The trace engine's memos are exact: a question asked of a cluster that has answered others
(other connections, so that hook walks, steps and resolutions come from memos) gets the same
answer, byte for byte in every output, as the same question asked of a fresh cluster."""

from pathlib import Path

import pytest

import podnet
from podnet.render.iptables_trace import render_iptables_trace
from podnet.render.trace_json import render_trace_json
from podnet.render.trace_text import render_trace

ROOT = Path(__file__).resolve().parent.parent


def _questions(loaded) -> list[tuple[str, str]]:
    """Pod -> Pod on the same and on other nodes, Pod -> Service, node -> Service."""
    pods = [p for p in loaded.cluster.pods if not p.host_network]
    services = [s for s in loaded.cluster.services if s.cluster_ip is not None and s.spec.ports]
    out = []
    for a in pods[:4]:
        for b in pods:
            if b is not a and b.containers and b.containers[0].ports:
                out.append((a.key, f"{b.key}:{b.containers[0].ports[0].container_port}"))
        for s in services:
            out.append((a.key, f"svc/{s.key}:{s.spec.ports[0].port}"))
    node = loaded.cluster.nodes[0].name
    out += [(f"node/{node}", f"svc/{s.key}:{s.spec.ports[0].port}") for s in services]
    return out


def _outputs(trace) -> tuple[str, str, str, tuple]:
    return (
        render_trace(trace),
        render_trace_json(trace),
        render_iptables_trace(trace),
        tuple(
            (p.probability, tuple(sorted(p.conntrack)), [repr(t) for t in p.conntrack.values()])
            for p in trace.paths
        ),
    )


@pytest.mark.parametrize("topology", ["demo.yaml", "demo-host-gw.yaml", "services.yaml"])
def test_warm_answers_equal_fresh_ones(topology):
    warm = podnet.load(str(ROOT / "topologies" / topology))
    questions = _questions(warm)
    assert len(questions) > 5
    for src, dst in questions:  # fill the memos with other connections first
        warm.trace(src, dst, sport=41000)
        warm.trace(src, dst, sport=41001)
    fresh = podnet.load(str(ROOT / "topologies" / topology))
    for src, dst in questions:
        for sport in (40000, 41001):
            # a fresh view of the network (the engine's memos live in it): nothing remembered
            fresh.network._memo.pop("trace-view", None)
            expected = _outputs(fresh.trace(src, dst, sport=sport))
            assert _outputs(warm.trace(src, dst, sport=sport)) == expected, (src, dst, sport)
